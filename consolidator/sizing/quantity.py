"""Kubernetes quantities and PostgreSQL memory settings, both ways.

Sizing works in plain numbers (cores, bytes, kB); plan files and manifests hold strings. Parsing is
strict so a typo in a hand-edited plan fails with a message that quotes the bad text instead of
turning into a surprising size.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

KI = 1024
MI = 1024**2
GI = 1024**3
TI = 1024**4

_BINARY_SUFFIXES = {"Ki": KI, "Mi": MI, "Gi": GI, "Ti": TI, "Pi": 1024**5, "Ei": 1024**6}
_DECIMAL_SUFFIXES = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}
# Kubernetes quantity grammar: signed decimal number, then a binary suffix, a decimal suffix or a
# decimal exponent (``1e3``). ``E`` alone is exa, ``E3``/``e3`` is an exponent.
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?\d+)|(?P<dec>[mkMGTPE]?))$"
)
# PostgreSQL memory units are powers of 1024 and case-sensitive (guc.c memory_unit_conversion_table).
PG_MEMORY_UNITS = {"B": 1, "kB": KI, "MB": MI, "GB": GI, "TB": TI}
_PG_MEMORY = re.compile(r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))\s*(?P<unit>[A-Za-z]*)$")


def _not_a(text: object, what: str) -> ValueError:
    return ValueError(f'"{text}" is not a {what}')


def _quantity_decimal(q: str | int | float) -> Decimal:
    """Parse any Kubernetes quantity into an exact decimal number of base units."""
    if isinstance(q, bool):
        raise _not_a(q, "quantity")
    if isinstance(q, int):
        return Decimal(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise _not_a(q, "quantity")
        return Decimal(repr(q))
    if not isinstance(q, str):
        raise _not_a(q, "quantity")
    match = _QUANTITY.match(q.strip())
    if not match:
        raise _not_a(q, "quantity")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets numbers through
        raise _not_a(q, "quantity") from exc
    if match["bin"]:
        return number * _BINARY_SUFFIXES[match["bin"]]
    if match["exp"]:
        return number * Decimal(10) ** int(match["exp"][1:])
    return number * _DECIMAL_SUFFIXES[match["dec"] or ""]


def parse_cpu(q: str | int | float) -> float:
    """CPU quantity → cores: ``"500m"`` → 0.5, ``"2"`` → 2.0, ``1.5`` → 1.5."""
    return float(_quantity_decimal(q))


def parse_memory(q: str | int | float) -> int:
    """Memory quantity → bytes (fractions round up, as the kubelet does): ``"768Mi"``, ``"2G"``, ``512``."""
    return math.ceil(_quantity_decimal(q))


def format_cpu(cores: float) -> str:
    """Cores → canonical Kubernetes form: whole cores as ``"2"``, anything else in millicores (``"1500m"``).

    The API server stores 1.5 as ``1500m``; emitting the canonical form avoids false diffs.
    """
    if cores < 0 or not math.isfinite(cores):
        raise ValueError(f"{cores} is not a CPU amount")
    milli = round(cores * 1000)
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"


def format_memory(n_bytes: int) -> str:
    """Bytes → binary Kubernetes quantity, largest exact unit: ``"1Gi"``, ``"1536Mi"``, ``"1000Ki"``, ``"999"``."""
    if n_bytes < 0:
        raise ValueError(f"{n_bytes} is not a memory amount")
    if n_bytes == 0:
        return "0"
    for suffix, factor in (("Ti", TI), ("Gi", GI), ("Mi", MI), ("Ki", KI)):
        if n_bytes % factor == 0:
            return f"{n_bytes // factor}{suffix}"
    return str(n_bytes)


def parse_pg_memory(s: str | int, *, unit: str = "kB") -> int:
    """PostgreSQL memory setting → bytes; ``-1`` (auto/unlimited/use default) comes back as ``-1``.

    ``unit`` is the setting's base unit for bare numbers: ``"kB"`` for work_mem, ``"8kB"`` for
    shared_buffers/wal_buffers, ``"MB"`` for max_wal_size and max_slot_wal_keep_size.
    """
    base = _pg_base_unit(unit)
    if isinstance(s, bool):
        raise _not_a(s, "PostgreSQL memory setting")
    text = str(s).strip()
    match = _PG_MEMORY.match(text)
    if not match:
        raise _not_a(s, "PostgreSQL memory setting")
    number = Decimal(match["num"])
    suffix = match["unit"]
    if not suffix:
        if number == -1:
            return -1
        factor = base
    elif suffix in PG_MEMORY_UNITS:
        factor = PG_MEMORY_UNITS[suffix]
    else:
        raise ValueError(f'"{s}" is not a PostgreSQL memory setting (units are case-sensitive: B, kB, MB, GB, TB)')
    if number < 0:
        raise _not_a(s, "PostgreSQL memory setting")
    return math.floor(number * factor)


def _pg_base_unit(unit: str) -> int:
    match = re.match(r"^(\d*)([A-Za-z]+)$", unit)
    if not match or match[2] not in PG_MEMORY_UNITS:
        raise ValueError(f'"{unit}" is not a PostgreSQL memory unit')
    return int(match[1] or 1) * PG_MEMORY_UNITS[match[2]]


def format_pg_memory(kb: int) -> str:
    """kB → pgtune's display: a multiple of 1048576 kB prints as GB, of 1024 as MB, else kB (``983kB``)."""
    if kb < 0:
        raise ValueError(f"{kb} is not a memory amount in kB")
    if kb == 0:
        return "0kB"
    if kb % (1024 * 1024) == 0:
        return f"{kb // (1024 * 1024)}GB"
    if kb % 1024 == 0:
        return f"{kb // 1024}MB"
    return f"{kb}kB"


def ceil_to(n_bytes: float, step: int) -> int:
    """Round ``n_bytes`` up to a whole multiple of ``step`` (volume and WAL sizes)."""
    if isinstance(n_bytes, int):
        return -(-n_bytes // step) * step
    return math.ceil(round(n_bytes / step, 9)) * step  # round: 3.0000000001 steps is float noise
