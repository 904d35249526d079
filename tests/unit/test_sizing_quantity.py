"""Kubernetes quantities and PostgreSQL memory settings: parse, format, round-trip, reject."""

from __future__ import annotations

import pytest

from consolidator.sizing.quantity import (
    GI,
    KI,
    MI,
    ceil_to,
    format_cpu,
    format_memory,
    format_pg_memory,
    parse_cpu,
    parse_memory,
    parse_pg_memory,
)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("500m", 0.5),
        ("100m", 0.1),
        ("1", 1.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("2", 2.0),
        (2, 2.0),
        (0.75, 0.75),
        ("1500m", 1.5),
        (" 250m ", 0.25),
    ],
)
def test_parse_cpu(text: str | float, cores: float) -> None:
    assert parse_cpu(text) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [
        ("768Mi", 768 * MI),
        ("1Gi", GI),
        ("1.5Gi", 1536 * MI),
        ("2G", 2_000_000_000),
        ("512M", 512_000_000),
        ("1k", 1000),
        ("4096", 4096),
        (4096, 4096),
        ("1e3", 1000),
        ("1Ki", KI),
        ("2Ti", 2 * 1024 * GI),
        ("100m", 1),  # milli-bytes round up to whole bytes
    ],
)
def test_parse_memory(text: str | int, n_bytes: int) -> None:
    assert parse_memory(text) == n_bytes


@pytest.mark.parametrize("bad", ["12 potatoes", "Mi", "", "1GiB", "1 Gi", "one", "1.2.3", "--1"])
def test_parse_memory_rejects_with_quoted_text(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity") as info:
        parse_memory(bad)
    assert f'"{bad}"' in str(info.value)


def test_parse_rejects_non_quantities() -> None:
    with pytest.raises(ValueError, match='"12 potatoes" is not a quantity'):
        parse_cpu("12 potatoes")
    for bad in (True, None, [1], float("nan")):
        with pytest.raises(ValueError, match="is not a quantity"):
            parse_memory(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cores", "text"),
    [(0.5, "500m"), (2, "2"), (1.0, "1"), (1.5, "1500m"), (0.1, "100m"), (0.25, "250m"), (16, "16")],
)
def test_format_cpu(cores: float, text: str) -> None:
    assert format_cpu(cores) == text
    assert parse_cpu(text) == pytest.approx(cores)


def test_format_cpu_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_cpu(-1)


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (768 * MI, "768Mi"),
        (GI, "1Gi"),
        (1536 * MI, "1536Mi"),
        (1000 * KI, "1000Ki"),
        (999, "999"),
        (0, "0"),
        (3 * 1024 * GI, "3Ti"),
    ],
)
def test_format_memory(n_bytes: int, text: str) -> None:
    assert format_memory(n_bytes) == text
    assert parse_memory(text) == n_bytes


@pytest.mark.parametrize(
    ("text", "unit", "n_bytes"),
    [
        ("128MB", "kB", 128 * MI),
        ("983kB", "kB", 983 * KI),
        ("8GB", "kB", 8 * GI),
        ("1TB", "kB", 1024 * GI),
        ("64 MB", "kB", 64 * MI),
        ("1.5GB", "kB", 1536 * MI),
        ("100B", "kB", 100),
        ("4096", "kB", 4 * MI),  # bare number in the base unit
        ("16384", "8kB", 128 * MI),  # shared_buffers counts 8kB pages
        ("1024", "MB", GI),  # max_wal_size counts MB
        (2048, "kB", 2 * MI),
    ],
)
def test_parse_pg_memory(text: str | int, unit: str, n_bytes: int) -> None:
    assert parse_pg_memory(text, unit=unit) == n_bytes


def test_parse_pg_memory_minus_one_is_a_sentinel() -> None:
    assert parse_pg_memory("-1") == -1
    assert parse_pg_memory(-1, unit="MB") == -1


@pytest.mark.parametrize("bad", ["128mb", "1Gb", "12 potatoes", "MB", "-5MB", "1Mi", "-2"])
def test_parse_pg_memory_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a PostgreSQL memory setting"):
        parse_pg_memory(bad)


def test_parse_pg_memory_explains_case_sensitive_units() -> None:
    with pytest.raises(ValueError, match="case-sensitive"):
        parse_pg_memory("128mb")


@pytest.mark.parametrize(
    ("kb", "text"),
    [
        (983, "983kB"),
        (32768, "32MB"),
        (98304, "96MB"),
        (8192, "8MB"),
        (1048576, "1GB"),
        (1572864, "1536MB"),
        (4194304, "4GB"),
        (81, "81kB"),
        (0, "0kB"),
        (1025, "1025kB"),
    ],
)
def test_format_pg_memory_uses_pgtunes_display_rule(kb: int, text: str) -> None:
    assert format_pg_memory(kb) == text
    assert parse_pg_memory(text) == kb * KI


def test_format_pg_memory_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_pg_memory(-1)


def test_ceil_to() -> None:
    assert ceil_to(1, GI) == GI
    assert ceil_to(GI, GI) == GI
    assert ceil_to(GI + 1, GI) == 2 * GI
    assert ceil_to(1631 * MI, 64 * MI) == 1664 * MI
