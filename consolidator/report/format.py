"""Small, dependency-free formatters shared by every report view.

They accept ``None`` (the plan has many optional measurements) and return an em dash, so a
missing number reads as "not measured" rather than as zero.
"""

from __future__ import annotations

import math

MISSING = "—"
_IEC_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_SI_SUFFIXES = ("", "k", "M", "G", "T", "P")


def _is_missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def human_bytes(n: float | None) -> str:
    """Bytes in IEC units with one decimal: ``1610612736 -> "1.5 GiB"``, ``512 -> "512 B"``."""
    if _is_missing(n):
        return MISSING
    assert n is not None
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    if value < 1024:
        return f"{sign}{round(value)} B"
    unit = 0
    while value >= 1024 and unit < len(_IEC_UNITS) - 1:
        value /= 1024
        unit += 1
    if round(value, 1) >= 1024 and unit < len(_IEC_UNITS) - 1:  # 1023.97 KiB reads as 1.0 MiB
        value /= 1024
        unit += 1
    return f"{sign}{value:.1f} {_IEC_UNITS[unit]}"


def human_duration(seconds: float | None) -> str:
    """A duration a human can compare at a glance: ``"< 1s"``, ``"45s"``, ``"2m 05s"``, ``"1h 02m"``.

    Precision drops as the duration grows, because an estimate of hours is not accurate to the
    second; zero (or a negative estimate) is ``"0s"``.
    """
    if _is_missing(seconds):
        return MISSING
    assert seconds is not None
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return "< 1s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes}m {secs:02d}s"
    minutes = round(seconds / 60)
    if minutes < 24 * 60:
        hours, mins = divmod(minutes, 60)
        return f"{hours}h {mins:02d}m"
    hours = round(seconds / 3600)
    days, hrs = divmod(hours, 24)
    return f"{days}d {hrs:02d}h"


def human_number(x: float | None) -> str:
    """Three significant digits with an SI suffix: ``0.25``, ``12.3``, ``1.23k``, ``4.5M``."""
    if _is_missing(x):
        return MISSING
    assert x is not None
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    value = abs(float(x))
    if value < 0.01:
        return "> -0.01" if sign else "< 0.01"
    index = 0
    while index < len(_SI_SUFFIXES) - 1 and float(f"{value:.3g}") >= 1000:
        value /= 1000
        index += 1
    text = f"{value:.3g}" if value >= 1 else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{sign}{text}{_SI_SUFFIXES[index]}"


def human_rate(x: float | None, unit: str = "/s") -> str:
    """A per-second rate: ``human_rate(1234.5) -> "1.23k/s"``, ``human_rate(0) -> "0/s"``."""
    if _is_missing(x):
        return MISSING
    return f"{human_number(x)}{unit}"


def human_byte_rate(x: float | None) -> str:
    """Bytes per second in IEC units, e.g. WAL generation: ``"1.5 MiB/s"``."""
    if _is_missing(x):
        return MISSING
    return f"{human_bytes(x)}/s"


def human_percent(ratio: float | None) -> str:
    """A 0..1 ratio as a percentage with one decimal: ``0.987 -> "98.7%"``."""
    if _is_missing(ratio):
        return MISSING
    assert ratio is not None
    return f"{ratio * 100:.1f}%"
