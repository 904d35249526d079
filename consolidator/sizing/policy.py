"""Policy of the sizing model: ladders, thresholds and options (tunable defaults, not laws),
plus the number formatting every reason uses."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from consolidator.errors import ConfigError
from consolidator.sizing.quantity import (
    GI,
    KI,
    MI,
    format_pg_memory,
)

# --- ladders and thresholds (sizing.md §5; tunable defaults, not laws) ---------------------------

CPU_LADDER = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
CPU_LADDER_STEP_ABOVE = 16.0  # beyond the ladder: multiples of 16 cores
MEMORY_RUNGS = tuple(
    mi * MI
    for mi in (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536)
)
MEMORY_STEP_ABOVE = 8 * GI  # beyond the ladder: multiples of 8Gi

IDLE_COMMITS_PER_S = 0.1  # idle: fewer commits per second than this …
IDLE_PEAK_CONNECTIONS = 1  # … and at most this many connections at peak

BASE_OVERHEAD = 192 * MI  # instance manager, postmaster, autovacuum, WAL writers, shm slack
MIN_CACHE = 64 * MI
CACHE_FACTOR = 1.2  # working set + 20 % in shared_buffers + page cache
PER_CONNECTION = 4 * MI
PER_ACTIVE = 2 * 4 * MI  # two work areas of ~4Mi per active backend
CONNECTION_FLOOR = 25
RESERVED_CONNECTIONS = 10  # superuser, CNPG, monitoring, walsenders
PEAK_FACTOR = 1.25

WORK_MEM_MIN_KB = 1024  # 1MB
WORK_MEM_MAX_KB = 64 * 1024  # 64MB
WORK_MEM_DEFAULT_KB = 4 * 1024  # PostgreSQL's default: not exceeded without measured spill
HASH_FACTOR = 1.5
AUTOVACUUM_WORKERS = 3
CHECK_FRACTION = 0.9
MAINTENANCE_CAP_KB = 2 * 1024 * 1024  # 2GB
AUTOVACUUM_WORK_MEM_FROM = 16 * GI
AUTOVACUUM_WORK_MEM_KB = 1024 * 1024  # 1GB: vacuum's dead-tuple store cannot use more before PG 17

COMPLETION_TARGET = 0.9
WAL_WINDOW_S = 300  # peak 5-minute window
WAL_STEP = 64 * MI
MIN_MAX_WAL = 256 * MI
MAX_MAX_WAL = 16 * GI
MIN_MIN_WAL = 80 * MI
MIN_SLOT_KEEP = 1 * GI
WAL_KEEP_SIZE = 512 * MI  # CNPG's wal_keep_size
WAL_HOUR_S = 3600  # one hour of archive backlog on the WAL volume
FILL_TARGET = 0.8
BLOAT_FACTOR = 1.2
TEMP_FLOOR = 256 * MI
TEMP_BURST_S = 300  # temp peak proxy: five minutes of the measured spill rate
MIN_VOLUME = 1 * GI
GROWTH_WINDOW_S = 7 * 86400

POOLER_PEAK_FLOOR = 50
POOLER_PEAK_PER_CORE = 8
POOLER_IDLE_FRACTION = 0.7
POOLER_IDLE_MIN_PEAK = 20
POOLER_CHURN = 1.0  # sessions/s
POOLER_AGE_S = 600
POOLER_AGE_CHURN = 0.1  # "with churn": at least one new session every 10 s
POOL_SIZE_MIN = 5
MAX_CLIENT_CONN_MIN = 100
POOL_MODES = ("session", "transaction")

# override limits
MIN_MEMORY_OVERRIDE = 128 * MI
DEV_FLOOR_MEMORY = 256 * MI
MIN_INSTANCES, MAX_INSTANCES = 1, 10
MIN_MAX_CONNECTIONS = 10

PROFILES = ("web", "oltp", "dw", "mixed")
STORAGE_KINDS = {"ssd": ("1.1", "200"), "network": ("1.1", "300"), "hdd": ("4", "2")}

OVERRIDE_KEYS = ("instances", "cpu", "memory", "storage", "wal_storage", "max_connections", "pooler", "parameters")
POOLER_OVERRIDE_KEYS = ("enabled", "instances", "pool_mode", "default_pool_size", "max_client_conn")
#: Memory-typed parameters we parse in overrides: base unit for bare numbers, whether -1 is allowed.
PG_MEMORY_PARAMETERS = {
    "shared_buffers": ("8kB", False),
    "effective_cache_size": ("8kB", False),
    "work_mem": ("kB", False),
    "maintenance_work_mem": ("kB", False),
    "autovacuum_work_mem": ("kB", True),
    "wal_buffers": ("8kB", True),
    "max_wal_size": ("MB", False),
    "min_wal_size": ("MB", False),
    "max_slot_wal_keep_size": ("MB", True),
}
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass
class SizingOptions:
    """Policy knobs of the model (not measurements); defaults follow sizing.md §5."""

    instances: int | None = None  # --instances: replaces the active/idle rule for every app
    profile: str = "web"  # web | oltp | dw | mixed: maintenance_work_mem, statistics target, jit
    storage_kind: str = "ssd"  # ssd | network | hdd: random_page_cost, effective_io_concurrency
    active_instances: int = 3  # primary + 2 standbys for apps with traffic
    idle_instances: int = 1  # idle apps: one instance (and enablePDB: false)
    pooler_instances: int = 2  # PgBouncer pods when a pooler is proposed
    wal_volume: bool = True  # separate walStorage (it cannot be removed later)
    storage_headroom: float = 0.5  # growth reserve as a fraction of the size (no growth rate known)
    offline_import: bool = False  # dump restored inside PGDATA: storage ≥ 2 × size during bootstrap


# --- formatting helpers ------------------------------------------------------------------------


def show_num(x: float) -> str:
    """Compact number for reasons: 42, 0.826, 1.5, 12000."""
    if float(x).is_integer():
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def show_mi(n_bytes: float) -> str:
    """Bytes as mebibytes with one decimal when needed: 768Mi, 292.8Mi."""
    return f"{show_num(round(n_bytes / MI, 1))}Mi"


def show_rate(bytes_per_s: float) -> str:
    return f"{show_num(round(bytes_per_s / MI, 3))} MiB/s"


def show_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{show_num(round(seconds, 1))} s"
    if seconds < 7200:
        return f"{show_num(round(seconds / 60, 1))} min"
    if seconds < 2 * 86400:
        return f"{show_num(round(seconds / 3600, 1))} h"
    return f"{show_num(round(seconds / 86400, 1))} d"


def bytes_to_kb(n_bytes: float) -> int:
    return max(0, math.floor(n_bytes / KI))


def show_pg(n_bytes: float) -> str:
    """Bytes → pgtune's display (floored to kB)."""
    return format_pg_memory(bytes_to_kb(n_bytes))


def check_options(options: SizingOptions) -> None:
    if options.instances is not None and not MIN_INSTANCES <= options.instances <= MAX_INSTANCES:
        raise ConfigError(f"--instances {options.instances} is out of range", hint="use 1 to 10")
    if options.profile not in PROFILES:
        raise ConfigError(f'unknown sizing profile "{options.profile}"', hint=f"use one of {', '.join(PROFILES)}")
    if options.storage_kind not in STORAGE_KINDS:
        raise ConfigError(
            f'unknown storage kind "{options.storage_kind}"', hint=f"use one of {', '.join(STORAGE_KINDS)}"
        )
    if options.pooler_instances < 1 or options.active_instances < 1 or options.idle_instances < 1:
        raise ConfigError("instance counts in the sizing options must be at least 1")
    if options.storage_headroom < 0:
        raise ConfigError("storage_headroom must not be negative")
