"""pgtune's published rules as a pure function: the baseline our model starts from.

Follows le0pard/pgtune as built between commit ``41077d5`` (2022-10, parallel settings from 4 CPUs) and
the work_mem change in ``7d204bd`` (2025-04-30): the "v2019" work_mem formula, checkpoint target 0.9,
huge_pages from 32 GB, maintenance_work_mem capped at 2 GB, storage types hdd/ssd/san. That is the
era whose output matches the published homelab example (128 MB, web → work_mem 81kB); see
``shared/notes/sizing.md`` §1 and §1.1. Only Linux is modelled: every CNPG pod runs on Linux.
"""

from __future__ import annotations

import math

from consolidator.sizing.quantity import KI, format_pg_memory

DB_TYPES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGE_TYPES = ("hdd", "ssd", "san")

DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# (min_wal_size, max_wal_size) in kB
WAL_SIZES_KB = {
    "web": (1024 * KI, 4096 * KI),
    "oltp": (2048 * KI, 8192 * KI),
    "dw": (4096 * KI, 16384 * KI),
    "desktop": (100 * KI, 2048 * KI),
    "mixed": (1024 * KI, 4096 * KI),
}
EFFECTIVE_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300}
MAINTENANCE_CAP_KB = 2 * KI * KI  # 2GB
HUGE_PAGES_FROM_KB = 32 * KI * KI  # 32GB
WAL_BUFFERS_MAX_KB = 16 * KI
WAL_BUFFERS_NEAR_KB = 14 * KI
WAL_BUFFERS_MIN_KB = 32
WORK_MEM_MIN_KB = 64
PG_DEFAULT_PER_GATHER = 2  # PostgreSQL's max_parallel_workers_per_gather default (PG 10+)
PARALLEL_MIN_CPUS = 4


def _check_inputs(
    ram_kb: int, db_type: str, connections: int | None, cpus: int | None, pg_major: int, storage: str
) -> None:
    if ram_kb < 1:
        raise ValueError("pgtune needs at least 1 kB of RAM")
    if db_type not in DB_TYPES:
        raise ValueError(f'"{db_type}" is not a pgtune DB type (one of {", ".join(DB_TYPES)})')
    if storage not in STORAGE_TYPES:
        raise ValueError(f'"{storage}" is not a pgtune storage type (one of {", ".join(STORAGE_TYPES)})')
    if connections is not None and connections < 1:
        raise ValueError(f"connections must be at least 1, not {connections}")
    if cpus is not None and cpus < 1:
        raise ValueError(f"cpus must be at least 1, not {cpus}")
    if pg_major < 10:
        raise ValueError(f"pgtune() models PostgreSQL 10 and later, not {pg_major}")


def _wal_buffers_kb(shared_buffers_kb: int) -> int:
    """3 % of shared_buffers (PG's own auto-tuning), at most 16MB, snapped to 16MB above 14MB, at least 32kB."""
    value = min(math.floor(3 * shared_buffers_kb / 100), WAL_BUFFERS_MAX_KB)
    if WAL_BUFFERS_NEAR_KB < value < WAL_BUFFERS_MAX_KB:
        value = WAL_BUFFERS_MAX_KB
    return max(value, WAL_BUFFERS_MIN_KB)


def _parallel(cpus: int | None, db_type: str, pg_major: int) -> dict[str, int]:
    """Parallel settings only from 4 CPUs (post-2022-10 builds); per-gather capped at 4 except dw."""
    if not cpus or cpus < PARALLEL_MIN_CPUS:
        return {}
    per_gather = math.ceil(cpus / 2)
    if db_type != "dw":
        per_gather = min(per_gather, 4)
    out = {"max_worker_processes": cpus, "max_parallel_workers_per_gather": per_gather}
    if pg_major >= 10:
        out["max_parallel_workers"] = cpus
    if pg_major >= 11:
        out["max_parallel_maintenance_workers"] = min(math.ceil(cpus / 2), 4)
    return out


def _work_mem_kb(ram_kb: int, shared_buffers_kb: int, connections: int, per_gather: int, db_type: str) -> int:
    """v2019: (RAM − shared_buffers) / (connections·3) / per-gather workers, split by type, ≥ 64kB."""
    base = (ram_kb - shared_buffers_kb) / (connections * 3) / per_gather
    divisor = {"web": 1, "oltp": 1, "dw": 2, "mixed": 2, "desktop": 6}[db_type]
    return max(math.floor(base / divisor), WORK_MEM_MIN_KB)


def pgtune(
    ram_bytes: int,
    *,
    db_type: str = "web",
    connections: int | None = None,
    cpus: int | None = None,
    pg_major: int = 15,
    storage: str = "ssd",
) -> dict[str, str]:
    """pgtune's postgresql.conf for a Linux machine with ``ram_bytes`` of RAM, as strings.

    ``connections``/``cpus`` None mean "left blank" in pgtune's form. 128 MB, web, defaults →
    shared_buffers 32MB, effective_cache_size 96MB, maintenance_work_mem 8MB, wal_buffers 983kB,
    work_mem 81kB. pgtune itself warns that it is not optimal below 256 MB or above 100 GB.
    """
    ram_kb = ram_bytes // KI
    _check_inputs(ram_kb, db_type, connections, cpus, pg_major, storage)
    max_connections = connections or DEFAULT_CONNECTIONS[db_type]
    shared_buffers = ram_kb // 16 if db_type == "desktop" else ram_kb // 4
    effective_cache = ram_kb // 4 if db_type == "desktop" else 3 * ram_kb // 4
    maintenance = min(ram_kb // 8 if db_type == "dw" else ram_kb // 16, MAINTENANCE_CAP_KB)
    parallel = _parallel(cpus, db_type, pg_major)
    per_gather = parallel.get("max_parallel_workers_per_gather", PG_DEFAULT_PER_GATHER)
    min_wal, max_wal = WAL_SIZES_KB[db_type]

    conf: dict[str, str] = {
        "max_connections": str(max_connections),
        "shared_buffers": format_pg_memory(shared_buffers),
        "effective_cache_size": format_pg_memory(effective_cache),
        "maintenance_work_mem": format_pg_memory(maintenance),
        "checkpoint_completion_target": "0.9",
        "wal_buffers": format_pg_memory(_wal_buffers_kb(shared_buffers)),
        "default_statistics_target": "500" if db_type == "dw" else "100",
        "random_page_cost": "4" if storage == "hdd" else "1.1",
        "effective_io_concurrency": str(EFFECTIVE_IO_CONCURRENCY[storage]),
        "work_mem": format_pg_memory(_work_mem_kb(ram_kb, shared_buffers, max_connections, per_gather, db_type)),
        "huge_pages": "try" if ram_kb >= HUGE_PAGES_FROM_KB else "off",
    }
    if db_type == "desktop":
        conf["wal_level"] = "minimal"
        conf["max_wal_senders"] = "0"
    conf["min_wal_size"] = format_pg_memory(min_wal)
    conf["max_wal_size"] = format_pg_memory(max_wal)
    conf.update({key: str(value) for key, value in parallel.items()})
    return conf
