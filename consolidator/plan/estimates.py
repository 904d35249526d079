"""Duration estimates for plan steps, from sizes and documented throughput assumptions.

The figures are conservative single-machine rates (measured on a 2-vCPU PostgreSQL 15 host, see
the migration notes): one COPY stream moves ~50 MB/s, an index build ~40 MB/s of index, and
content verification renders ~90 MB/s of rows per core on each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Throughput:
    copy_bytes_per_s: float = 50 * MB  # per COPY stream
    index_bytes_per_s: float = 40 * MB  # per index build
    verify_bytes_per_s: float = 90 * MB  # per core, row-to-text rendering dominates
    jobs: int = 4  # parallel table/index jobs
    fixed_step_seconds: float = 2.0  # connection, catalog and bookkeeping per step


DEFAULT_THROUGHPUT = Throughput()


@dataclass(frozen=True)
class SizeFacts:
    """What estimates need from an app's inventory."""

    data_bytes: int  # heap + TOAST of tables
    index_bytes: int
    largest_table_bytes: int
    tables: int
    large_object_bytes: int = 0


def copy_seconds(f: SizeFacts, tp: Throughput = DEFAULT_THROUGHPUT) -> float:
    """Parallel COPY: bounded by the total over ``jobs`` streams and by the largest table."""
    streams = max(1, min(tp.jobs, f.tables))
    spread = f.data_bytes / (tp.copy_bytes_per_s * streams)
    largest = f.largest_table_bytes / tp.copy_bytes_per_s
    return tp.fixed_step_seconds + max(spread, largest) + f.large_object_bytes / tp.copy_bytes_per_s


def index_seconds(f: SizeFacts, tp: Throughput = DEFAULT_THROUGHPUT) -> float:
    return tp.fixed_step_seconds + f.index_bytes / (tp.index_bytes_per_s * max(1, min(tp.jobs, f.tables)))


def verify_seconds(f: SizeFacts, tp: Throughput = DEFAULT_THROUGHPUT) -> float:
    """Both sides scan at once; ``jobs`` tables in parallel, the largest table bounds it."""
    spread = f.data_bytes / (tp.verify_bytes_per_s * max(1, tp.jobs // 2))
    return tp.fixed_step_seconds + max(spread, f.largest_table_bytes / tp.verify_bytes_per_s)


def round_seconds(value: float) -> float:
    """Whole seconds above 10 s, one decimal below: estimates, not measurements."""
    return float(math.ceil(value)) if value >= 10 else round(value, 1)
