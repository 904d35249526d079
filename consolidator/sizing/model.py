"""Our sizing model (shared/notes/sizing.md §5): pgtune's fractions on the container limit, corrected
by what was measured on the legacy server.

Every number comes back as a :class:`Value` whose reason names the evidence and the formula with the
numbers plugged in, so a reviewer can redo the arithmetic. Choices the note leaves open:

* **Idle app**: measured over a real window (> 0 s), commits < 0.1/s and peak connections ≤ 1. An
  app without any sampling window is *not* idle (no evidence is no reason to drop replicas).
* **shared_buffers** = M/4, never above the memory request and *not* capped at the database size:
  untouched buffers are never charged to the cgroup, the database grows, and changing the value
  later restarts the pods.
* **work_mem**: the §5.3 budget, but not above PostgreSQL's 4MB default unless temp spill was
  measured; then lowered until the worst-case check (§5.2) holds, floor 1MB; only then one memory
  rung up (the open point of §5.2).
* **Growth**: the evidence carries no growth rate, so storage always reserves ``storage_headroom``
  (+50 %) of the size; temp peak = max(256Mi, 5 minutes of the measured temp spill rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from consolidator.cnpg_facts import is_fixed_parameter
from consolidator.errors import PlanValidationError
from consolidator.plan.model import PoolerSizing, Sizing, SizingEvidence, Value
from consolidator.sizing.overrides import SizingOverrides, validate_overrides
from consolidator.sizing.policy import (
    AUTOVACUUM_WORK_MEM_FROM,
    AUTOVACUUM_WORK_MEM_KB,
    AUTOVACUUM_WORKERS,
    BASE_OVERHEAD,
    BLOAT_FACTOR,
    CACHE_FACTOR,
    CHECK_FRACTION,
    COMPLETION_TARGET,
    CONNECTION_FLOOR,
    CPU_LADDER,
    CPU_LADDER_STEP_ABOVE,
    DEV_FLOOR_MEMORY,
    FILL_TARGET,
    GROWTH_WINDOW_S,
    HASH_FACTOR,
    IDLE_COMMITS_PER_S,
    IDLE_PEAK_CONNECTIONS,
    MAINTENANCE_CAP_KB,
    MAX_CLIENT_CONN_MIN,
    MAX_MAX_WAL,
    MEMORY_RUNGS,
    MEMORY_STEP_ABOVE,
    MIN_CACHE,
    MIN_MAX_WAL,
    MIN_MIN_WAL,
    MIN_SLOT_KEEP,
    MIN_VOLUME,
    PEAK_FACTOR,
    PER_ACTIVE,
    PER_CONNECTION,
    POOL_SIZE_MIN,
    POOLER_AGE_CHURN,
    POOLER_AGE_S,
    POOLER_CHURN,
    POOLER_IDLE_FRACTION,
    POOLER_IDLE_MIN_PEAK,
    POOLER_PEAK_FLOOR,
    POOLER_PEAK_PER_CORE,
    RESERVED_CONNECTIONS,
    STORAGE_KINDS,
    TEMP_BURST_S,
    TEMP_FLOOR,
    WAL_HOUR_S,
    WAL_KEEP_SIZE,
    WAL_STEP,
    WAL_WINDOW_S,
    WORK_MEM_DEFAULT_KB,
    WORK_MEM_MAX_KB,
    WORK_MEM_MIN_KB,
    SizingOptions,
    bytes_to_kb,
    check_options,
    show_duration,
    show_mi,
    show_num,
    show_pg,
    show_rate,
)
from consolidator.sizing.quantity import (
    GI,
    KI,
    ceil_to,
    format_cpu,
    format_memory,
    format_pg_memory,
    parse_pg_memory,
)

# --- instances and CPU -------------------------------------------------------------------------


def is_idle(evidence: SizingEvidence) -> bool:
    """Idle = measured over a real window, commits < 0.1/s and peak connections ≤ 1."""
    return (
        evidence.window_seconds > 0
        and evidence.commits_per_s < IDLE_COMMITS_PER_S
        and evidence.peak_connections <= IDLE_PEAK_CONNECTIONS
    )


def _instances(evidence: SizingEvidence, options: SizingOptions, ov: SizingOverrides) -> Value:
    c, peak = show_num(evidence.commits_per_s), evidence.peak_connections
    if evidence.window_seconds <= 0:
        n = options.active_instances
        derived = f"no sampling window: not provably idle → {n} instances"
    elif is_idle(evidence):
        n = options.idle_instances
        derived = (
            f"idle: {c} commits/s < {show_num(IDLE_COMMITS_PER_S)} and peak {peak} connections ≤ "
            f"{IDLE_PEAK_CONNECTIONS} over {show_duration(evidence.window_seconds)} → {n} instance(s)"
        )
    else:
        n = options.active_instances
        derived = (
            f"active: {c} commits/s, peak {peak} connections over {show_duration(evidence.window_seconds)} "
            f"(idle needs < {show_num(IDLE_COMMITS_PER_S)} commits/s and ≤ {IDLE_PEAK_CONNECTIONS} "
            f"connection) → {n} instances"
        )
    if ov.instances is not None:
        return Value(ov.instances, f"override in plan file: {ov.instances} (derived: {derived})")
    if options.instances is not None:
        return Value(options.instances, f"override --instances {options.instances} (derived: {derived})")
    return Value(n, derived)


def round_up_tenth(x: float) -> float:
    """roundup_0.1 without float noise (1.5·0.2 + 0.1 must stay 0.4)."""
    return math.ceil(round(x * 10, 6)) / 10


def cpu_rung(cores: float) -> float:
    """Smallest CPU_LADDER step ≥ cores; beyond it, multiples of 16."""
    for rung in CPU_LADDER:
        if cores <= rung + 1e-9:
            return rung
    return math.ceil(cores / CPU_LADDER_STEP_ABOVE) * CPU_LADDER_STEP_ABOVE


def memory_rung(n_bytes: float) -> int:
    """Smallest MEMORY_RUNGS step ≥ n_bytes; beyond it, multiples of 8Gi."""
    for rung in MEMORY_RUNGS:
        if n_bytes <= rung:
            return rung
    return ceil_to(n_bytes, MEMORY_STEP_ABOVE)


def _next_memory_rung(current: int) -> int:
    return memory_rung(current + 1)


def _cpu(evidence: SizingEvidence, ov: SizingOverrides) -> tuple[float, Value]:
    signal = max(evidence.cpu_cores, 0.0)
    raw = max(0.1, round_up_tenth(1.5 * signal + 0.1))
    rung = cpu_rung(raw)
    if evidence.cpu_source == "none" and signal == 0:
        measured = "no CPU measurement (source none)"
    else:
        measured = f"CPU {show_num(signal)} cores ({evidence.cpu_source}) over {show_duration(evidence.window_seconds)}"
    derived = (
        f"{measured} → max(0.1, roundup_0.1(1.5·{show_num(signal)} + 0.1)) = {show_num(raw)} → ladder "
        f"{format_cpu(rung)}; request = limit (Guaranteed QoS)"
    )
    if ov.cpu is not None:
        return ov.cpu, Value(format_cpu(ov.cpu), f"override in plan file: {format_cpu(ov.cpu)} (derived: {derived})")
    return rung, Value(format_cpu(rung), derived)


# --- pooler and connections --------------------------------------------------------------------


def _connection_rules(evidence: SizingEvidence, cpu: float) -> tuple[list[str], list[str]]:
    """§5.5 pooler rules from connection behaviour → (rules that fired, why the others did not)."""
    fired: list[str] = []
    quiet: list[str] = []
    peak = evidence.peak_connections
    threshold = max(POOLER_PEAK_FLOOR, POOLER_PEAK_PER_CORE * cpu)
    many = peak > threshold
    (fired if many else quiet).append(
        f"peak {peak} connections {'>' if many else '≤'} max({POOLER_PEAK_FLOOR}, "
        f"{POOLER_PEAK_PER_CORE}·{show_num(cpu)}) = {show_num(threshold)}"
    )

    idle = evidence.idle_fraction
    if idle is None:
        quiet.append("idle fraction not measured")
    elif idle > POOLER_IDLE_FRACTION and peak >= POOLER_IDLE_MIN_PEAK:
        fired.append(
            f"idle fraction {show_num(idle)} > {POOLER_IDLE_FRACTION} with peak {peak} ≥ "
            f"{POOLER_IDLE_MIN_PEAK} connections"
        )
    else:
        quiet.append(
            f"idle fraction {show_num(idle)} with peak {peak} (needs > {POOLER_IDLE_FRACTION} and ≥ "
            f"{POOLER_IDLE_MIN_PEAK})"
        )

    churn = evidence.sessions_per_s
    if churn is None:
        quiet.append("session churn not measured")
    elif churn >= POOLER_CHURN:
        fired.append(f"churn {show_num(churn)} sessions/s ≥ {show_num(POOLER_CHURN)}/s")
    else:
        quiet.append(f"churn {show_num(churn)} sessions/s < {show_num(POOLER_CHURN)}/s")

    age = evidence.avg_connection_age_s
    if age is None:
        quiet.append("connection age not measured")
    elif age < POOLER_AGE_S and churn is not None and churn >= POOLER_AGE_CHURN:
        fired.append(
            f"average connection age {show_num(age)} s < {POOLER_AGE_S} s with churn {show_num(churn)} "
            f"sessions/s ≥ {show_num(POOLER_AGE_CHURN)}/s"
        )
    else:
        quiet.append(f"average connection age {show_num(age)} s (needs < {POOLER_AGE_S} s with churn)")
    return fired, quiet


@dataclass
class _Pool:
    enabled: bool
    reason: str
    instances: int
    size: int
    size_reason: str
    pairs: int
    overridden: bool

    @property
    def server_connections(self) -> int:
        return self.instances * self.size * self.pairs if self.enabled else 0


def _pool(evidence: SizingEvidence, cpu: float, options: SizingOptions, ov: SizingOverrides) -> _Pool:
    fired, quiet = _connection_rules(evidence, cpu)
    if ov.pooler_enabled is not None:
        enabled = ov.pooler_enabled
        reason = f"override in plan file: pooler {'on' if enabled else 'off'}"
    elif fired:
        enabled, reason = True, "rule fired: " + "; ".join(fired)
    else:
        enabled, reason = False, "no rule fired: " + "; ".join(quiet)
    p95 = evidence.active_p95
    wanted = max(POOL_SIZE_MIN, math.ceil(round(HASH_FACTOR * p95, 6)))
    cap = max(POOL_SIZE_MIN, math.floor(2 * cpu) + 1)
    size = min(wanted, cap)
    size_reason = (
        f"default_pool_size = min(max({POOL_SIZE_MIN}, ceil(1.5·active p95 {show_num(p95)})), "
        f"max({POOL_SIZE_MIN}, 2·{show_num(cpu)} cores + 1)) = {size}"
    )
    if ov.default_pool_size is not None:
        size, size_reason = ov.default_pool_size, f"default_pool_size {ov.default_pool_size}: override in plan file"
    instances = ov.pooler_instances or options.pooler_instances
    pairs = max(1, len(evidence.databases))
    return _Pool(enabled, reason, instances, size, size_reason, pairs, ov.pooler_enabled is not None)


def _max_connections(evidence: SizingEvidence, pool: _Pool, ov: SizingOverrides, path: str) -> tuple[int, str]:
    peak = evidence.peak_connections
    if pool.enabled:
        n = max(CONNECTION_FLOOR, pool.server_connections + RESERVED_CONNECTIONS)
        derived = (
            f"pooler {pool.instances} instances × pool {pool.size} × {pool.pairs} user/db pair(s) + "
            f"{RESERVED_CONNECTIONS} reserved → max({CONNECTION_FLOOR}, {pool.instances}·{pool.size}·"
            f"{pool.pairs}+{RESERVED_CONNECTIONS}) = {n} (peak {peak} client connections measured "
            f"over {show_duration(evidence.window_seconds)} go through the pooler)"
        )
    else:
        n = max(CONNECTION_FLOOR, math.ceil(PEAK_FACTOR * peak) + RESERVED_CONNECTIONS)
        derived = (
            f"peak {peak} connections measured over {show_duration(evidence.window_seconds)} → "
            f"max({CONNECTION_FLOOR}, ceil({PEAK_FACTOR}·{peak})+{RESERVED_CONNECTIONS}) = {n}"
        )
    if ov.max_connections is None:
        return n, derived
    needed = pool.server_connections + RESERVED_CONNECTIONS
    if pool.enabled and ov.max_connections < needed:
        raise PlanValidationError(
            f"{path}.max_connections",
            f"{ov.max_connections} is below the pooler's {pool.server_connections} server connections "
            f"+ {RESERVED_CONNECTIONS} reserved",
            hint=f"raise max_connections to at least {needed} or lower pooler.default_pool_size",
        )
    return ov.max_connections, f"override in plan file: {ov.max_connections} (derived: {derived})"


# --- memory ------------------------------------------------------------------------------------


@dataclass
class _Memory:
    """Memory limit M and the memory parameters that depend on it (kB)."""

    limit: int
    shared_buffers_kb: int
    maintenance_kb: int
    autovacuum_kb: int | None
    work_mem_kb: int
    work_mem_reason: str
    check_ok: bool


def _maintenance_kb(limit: int, profile: str) -> int:
    return min(bytes_to_kb(limit / (8 if profile == "dw" else 16)), MAINTENANCE_CAP_KB)


def _autovacuum_kb(limit: int) -> int | None:
    return AUTOVACUUM_WORK_MEM_KB if limit >= AUTOVACUUM_WORK_MEM_FROM else None


def _memory_at(limit: int, max_conn: int, conc: int, profile: str, spill: float) -> _Memory:
    """§5.3 memory parameters for limit M, work_mem lowered until the §5.2 worst-case check holds."""
    sb_kb = bytes_to_kb(limit / 4)
    maint_kb = _maintenance_kb(limit, profile)
    av_kb = _autovacuum_kb(limit)
    budget = (limit - BASE_OVERHEAD - max_conn * PER_CONNECTION - sb_kb * KI) / (conc * 2 * 3)
    budget_kb = min(max(bytes_to_kb(budget), WORK_MEM_MIN_KB), WORK_MEM_MAX_KB)
    text = (
        f"budget ({show_mi(limit)} − 192Mi − {max_conn}·4Mi − {format_pg_memory(sb_kb)}) / ({conc} active·2·3) "
        f"= {show_pg(max(budget, 0))}, clamp 1MB..64MB → {format_pg_memory(budget_kb)}"
    )
    if spill > 0:
        wm_kb = budget_kb
        text += f"; temp spill {show_rate(spill)} measured → budget used"
    else:
        wm_kb = min(budget_kb, WORK_MEM_DEFAULT_KB)
        text += f"; no temp spill measured → at most PostgreSQL's 4MB default → {format_pg_memory(wm_kb)}"
    av_mem_kb = av_kb if av_kb is not None else maint_kb
    cap = (CHECK_FRACTION * limit - sb_kb * KI - AUTOVACUUM_WORKERS * av_mem_kb * KI - BASE_OVERHEAD) / (
        max_conn * HASH_FACTOR
    )
    cap_kb = bytes_to_kb(cap) if cap > 0 else 0
    check_ok = cap_kb >= WORK_MEM_MIN_KB
    if wm_kb > cap_kb:
        wm_kb = max(cap_kb, WORK_MEM_MIN_KB)
        text += (
            f"; worst-case check (0.9·{show_mi(limit)} − {format_pg_memory(sb_kb)} − {AUTOVACUUM_WORKERS}·"
            f"{format_pg_memory(av_mem_kb)} − 192Mi) / ({max_conn}·{HASH_FACTOR}) = {show_pg(max(cap, 0))} → "
            f"{format_pg_memory(wm_kb)}"
        )
    return _Memory(limit, sb_kb, maint_kb, av_kb, wm_kb, text, check_ok)


def _working_set(evidence: SizingEvidence) -> tuple[int, str]:
    size = evidence.size_bytes
    if evidence.working_set_bytes is None:
        return size, f"working set not measured → size {show_mi(size)}"
    ws = min(evidence.working_set_bytes, size) if size > 0 else evidence.working_set_bytes
    return ws, f"W = min(working set {show_mi(evidence.working_set_bytes)}, size {show_mi(size)}) = {show_mi(ws)}"


def _raw_memory(w: int, max_conn: int, conc: int) -> int:
    return BASE_OVERHEAD + max(MIN_CACHE, math.ceil(CACHE_FACTOR * w)) + max_conn * PER_CONNECTION + conc * PER_ACTIVE


def _memory(
    evidence: SizingEvidence,
    max_conn: int,
    conc: int,
    options: SizingOptions,
    ov: SizingOverrides,
    *,
    may_move: bool,
) -> tuple[_Memory, str]:
    """Pick M: the overridden limit, or the rung above M_raw, moving up while the check fails."""
    w, w_text = _working_set(evidence)
    raw = _raw_memory(w, max_conn, conc)
    formula = f"{w_text}; M_raw = 192Mi + max(64Mi, 1.2·{show_mi(w)}) + {max_conn}·4Mi + {conc}·2·4Mi = {show_mi(raw)}"
    spill = evidence.temp_bytes_per_s
    if ov.memory is not None:
        mem = _memory_at(ov.memory, max_conn, conc, options.profile, spill)
        return mem, (
            f"override in plan file: {format_memory(ov.memory)} (derived: {formula} → rung "
            f"{format_memory(memory_rung(raw))})"
        )
    limit = memory_rung(raw)
    first = limit
    mem = _memory_at(limit, max_conn, conc, options.profile, spill)
    while not mem.check_ok and may_move:
        limit = _next_memory_rung(limit)
        mem = _memory_at(limit, max_conn, conc, options.profile, spill)
    text = f"{formula} → rung {format_memory(first)}"
    if limit != first:
        text += f"; worst-case check fails even at work_mem 1MB → up to {format_memory(limit)}"
    return mem, text + "; request = limit"


# --- WAL and volumes ---------------------------------------------------------------------------


@dataclass
class _Wal:
    max_wal: int
    min_wal: int
    slot_keep: int
    rate: float
    raw_text: str


def _wal(evidence: SizingEvidence) -> _Wal:
    rate = max(evidence.wal_bytes_per_s, 0.0)
    raw = 3 * (1 + COMPLETION_TARGET) * rate * WAL_WINDOW_S
    max_wal = min(max(ceil_to(raw, WAL_STEP), MIN_MAX_WAL), MAX_MAX_WAL)
    text = (
        f"WAL {show_rate(rate)} measured over {show_duration(evidence.window_seconds)} → clamp(roundup_64MB(3·1.9·"
        f"{show_rate(rate)}·300 s = {show_mi(raw)}), 256MB, 16GB) = {show_pg(max_wal)}"
    )
    return _Wal(max_wal, max(MIN_MIN_WAL, max_wal // 4), max(MIN_SLOT_KEEP, 2 * max_wal), rate, text)


def _wal_volume_raw(max_wal: int, slot_keep: int, rate: float) -> float:
    return max_wal + WAL_KEEP_SIZE + max(slot_keep, 0) + rate * WAL_HOUR_S


def _ceil_gi(n_bytes: float) -> int:
    return max(MIN_VOLUME, ceil_to(n_bytes, GI))


# --- parameters --------------------------------------------------------------------------------


def _parameters(mem: _Memory, max_conn: Value, cpu: float, wal: _Wal, options: SizingOptions) -> dict[str, Value]:
    """The derived postgresql.parameters (never a CNPG-fixed one, never io_method)."""
    limit, profile = show_mi(mem.limit), options.profile
    p: dict[str, Value] = {
        "shared_buffers": Value(
            format_pg_memory(mem.shared_buffers_kb),
            f"memory {limit} / 4 = {format_pg_memory(mem.shared_buffers_kb)} (pgtune's 25 % of "
            "the container limit; always ≤ the memory request)",
        ),
        "effective_cache_size": Value(
            show_pg(3 * mem.limit / 4),
            f"3·{limit} / 4 = {show_pg(3 * mem.limit / 4)} (pgtune's 75 %: shared_buffers + page cache in the limit)",
        ),
        "maintenance_work_mem": Value(
            format_pg_memory(mem.maintenance_kb),
            f"{limit} / {8 if profile == 'dw' else 16} ({profile}), cap 2GB = {format_pg_memory(mem.maintenance_kb)}",
        ),
        "work_mem": Value(format_pg_memory(mem.work_mem_kb), mem.work_mem_reason),
        "max_connections": Value(str(max_conn.value), max_conn.reason),
        "wal_buffers": Value(
            "-1", f"auto: 1/32 of shared_buffers {format_pg_memory(mem.shared_buffers_kb)}, 64kB..16MB (≈ pgtune's 3 %)"
        ),
        "checkpoint_completion_target": Value(
            str(COMPLETION_TARGET), "spread checkpoint writes over 90 % of the interval"
        ),
    }
    if mem.autovacuum_kb is not None:
        p["autovacuum_work_mem"] = Value(
            format_pg_memory(mem.autovacuum_kb), f"memory {limit} ≥ 16Gi: vacuum's dead-tuple store uses at most 1GB"
        )
    rpc, eio = STORAGE_KINDS[options.storage_kind]
    kind = options.storage_kind
    p["random_page_cost"] = Value(rpc, f"storage {kind}: random reads cost {rpc}× a sequential read")
    p["effective_io_concurrency"] = Value(eio, f"storage {kind}: {eio} concurrent prefetch requests (pgtune)")
    p["default_statistics_target"] = Value(
        "500" if profile == "dw" else "100", f"profile {profile} (pgtune: 500 for dw, else 100)"
    )
    if profile in ("web", "oltp"):
        p["jit"] = Value("off", f"profile {profile}: short queries, JIT compilation costs more than it saves")
    p.update(_parallel(cpu, profile))
    p["max_wal_size"] = Value(show_pg(wal.max_wal), wal.raw_text)
    p["min_wal_size"] = Value(
        show_pg(wal.min_wal), f"max(80MB, max_wal_size {show_pg(wal.max_wal)} / 4) = {show_pg(wal.min_wal)}"
    )
    p["max_slot_wal_keep_size"] = Value(
        show_pg(wal.slot_keep),
        f"max(1GB, 2·max_wal_size {show_pg(wal.max_wal)}) = {show_pg(wal.slot_keep)}: HA slots cannot "
        f"fill the WAL volume",
    )
    return p


def _parallel(cpu: float, profile: str) -> dict[str, Value]:
    """§5.3 parallelism from the CPU request; max_worker_processes stays CNPG's 32."""
    c = show_num(cpu)
    workers = max(1, math.floor(cpu))
    maint = min(math.ceil(cpu / 2), 4)
    half = math.ceil(cpu / 2)
    gather = 0 if cpu < 2 else (half if profile == "dw" else min(half, 4))
    return {
        "max_parallel_workers": Value(str(workers), f"max(1, floor({c} cores)) = {workers}"),
        "max_parallel_workers_per_gather": Value(
            str(gather), f"{c} cores < 2 → 0" if cpu < 2 else f"min(ceil({c}/2), 4) = {gather}"
        ),
        "max_parallel_maintenance_workers": Value(str(maint), f"min(ceil({c}/2), 4) = {maint}"),
    }


def _apply_parameter_overrides(params: dict[str, Value], ov: SizingOverrides, limit: int, path: str) -> None:
    sb = ov.parameter_bytes.get("shared_buffers")
    if sb is not None and sb > limit:
        raise PlanValidationError(
            f"{path}.parameters.shared_buffers",
            f"{ov.parameters['shared_buffers']} is above the memory request {format_memory(limit)}; "
            "CNPG's webhook rejects it",
            hint=f"use at most {show_pg(limit / 4)} (a quarter of the memory) or raise {path}.memory",
        )
    for name, text in ov.parameters.items():
        derived = params.get(name)
        suffix = f" (derived: {derived.value})" if derived else ""
        params[name] = Value(text, f"override in plan file{suffix}")


def _worst_case_note(params: dict[str, Value], max_conn: int, limit: int) -> str | None:
    """postgresqltuner's worst case on the final parameters (after overrides)."""
    sb = parse_pg_memory(params["shared_buffers"].value, unit="8kB")
    wm = parse_pg_memory(params["work_mem"].value, unit="kB")
    maint = parse_pg_memory(params["maintenance_work_mem"].value, unit="kB")
    av = parse_pg_memory(params["autovacuum_work_mem"].value, unit="kB") if "autovacuum_work_mem" in params else -1
    av_mem = maint if av == -1 else av
    worst = sb + max_conn * wm * HASH_FACTOR + AUTOVACUUM_WORKERS * av_mem + BASE_OVERHEAD
    if worst <= CHECK_FRACTION * limit:
        return None
    return (
        f"worst-case memory {show_mi(worst)} (shared_buffers + {max_conn}·work_mem·1.5 + 3·autovacuum memory "
        f"+ 192Mi) exceeds 90 % of the {format_memory(limit)} limit: risk of OOM kills under load"
    )


# --- storage -----------------------------------------------------------------------------------


def _storage(evidence: SizingEvidence, options: SizingOptions, wal_raw: float, with_wal: bool) -> Value:
    size = evidence.size_bytes
    growth = options.storage_headroom * size
    temp_peak = max(TEMP_FLOOR, evidence.temp_bytes_per_s * TEMP_BURST_S)
    data = ((size + growth) * BLOAT_FACTOR + temp_peak) / FILL_TARGET
    text = (
        f"size {show_mi(size)}, growth unknown → +{show_num(options.storage_headroom * 100)} % = "
        f"{show_mi(growth)}, temp "
        f"peak max(256Mi, temp {show_rate(evidence.temp_bytes_per_s)}·300 s) = {show_mi(temp_peak)} → "
        f"(({show_mi(size)} + {show_mi(growth)})·1.2 + {show_mi(temp_peak)}) / 0.8 = {show_mi(data)}"
    )
    if not with_wal:
        data += wal_raw / FILL_TARGET
        text += f" + WAL {show_mi(wal_raw)} / 0.8 (no walStorage)"
    if options.offline_import and data < 2 * size:
        data = 2 * size
        text += f"; offline import inside PGDATA → ≥ 2·size = {show_mi(data)}"
    volume = _ceil_gi(data)
    return Value(format_memory(volume), f"{text} → ceil_Gi, min 1Gi = {format_memory(volume)}")


def _wal_storage(wal: _Wal, ov: SizingOverrides, path: str, with_wal: bool) -> tuple[Value, float]:
    max_wal = ov.parameter_bytes.get("max_wal_size", wal.max_wal)
    slot = ov.parameter_bytes.get("max_slot_wal_keep_size", wal.slot_keep)
    raw = _wal_volume_raw(max_wal, slot, wal.rate)
    slot_text = "unlimited (not counted)" if slot == -1 else show_pg(slot)
    text = (
        f"(max_wal_size {show_pg(max_wal)} + wal_keep_size 512MB + max_slot_wal_keep_size {slot_text} + "
        f"WAL {show_rate(wal.rate)}·3600 s) / 0.8 = {show_mi(raw / FILL_TARGET)}"
    )
    if not with_wal:
        why = "override in plan file" if ov.wal_storage_disabled else "option"
        return Value(None, f"{why}: no separate WAL volume; {text} added to storage"), raw
    derived = _ceil_gi(raw / FILL_TARGET)
    text = f"{text} → ceil_Gi, min 1Gi = {format_memory(derived)}"
    if ov.wal_storage is None:
        return Value(format_memory(derived), text), raw
    floor = max_wal + WAL_KEEP_SIZE
    if ov.wal_storage < floor:
        raise PlanValidationError(
            f"{path}.wal_storage",
            f"{format_memory(ov.wal_storage)} cannot hold max_wal_size {show_pg(max_wal)} + wal_keep_size 512MB",
            hint=f"use at least {format_memory(_ceil_gi(floor))} (derived: {format_memory(derived)})",
        )
    return Value(format_memory(ov.wal_storage), f"override in plan file (derived: {text})"), raw


def _storage_override(value: Value, evidence: SizingEvidence, ov: SizingOverrides, path: str) -> Value:
    if ov.storage is None:
        return value
    if ov.storage < evidence.size_bytes:
        raise PlanValidationError(
            f"{path}.storage",
            f"{format_memory(ov.storage)} is smaller than the {show_mi(evidence.size_bytes)} of data",
            hint=f"use at least {value.value} (the derived size) or remove the override",
        )
    return Value(format_memory(ov.storage), f"override in plan file (derived: {value.value}: {value.reason})")


# --- notes -------------------------------------------------------------------------------------


def _notes(evidence: SizingEvidence, instances: int, ov: SizingOverrides, with_wal: bool) -> list[str]:
    notes: list[str] = []
    window = evidence.window_seconds
    if window <= 0:
        notes.append("no sampling window: rates, peaks and CPU are unknown; sizes fall back to floors")
    elif window < GROWTH_WINDOW_S:
        notes.append(f"sampling window of {show_duration(window)}: growth unknown, +50 % headroom")
    else:
        notes.append(f"sampling window of {show_duration(window)} but no growth rate in the evidence: +50 % headroom")
    if 0 < window < 86400:
        notes.append(
            f"window of {show_duration(window)} is under 24 h: business peaks may be missing; "
            "WAL and CPU rates are window averages, not 5-minute peaks"
        )
    if evidence.cpu_source == "none":
        notes.append("no CPU measurement: cpu comes from the 100m floor of the formula")
    if evidence.working_set_bytes is None:
        notes.append("working set not measured: the whole database size is assumed hot")
    if instances == 1:
        notes.append("1 instance: no failover; set enablePDB: false so node drains are not blocked")
    if ov.memory is not None and ov.memory < DEV_FLOOR_MEMORY:
        notes.append("memory below the 256Mi dev floor: only shared_buffers 32MB and ~20 connections fit")
    if ov.cpu is not None and ov.cpu < 0.1:
        notes.append("cpu below the 100m dev floor: startup and vacuum will be slow")
    if not with_wal:
        notes.append("no walStorage: WAL shares the data volume, so a data volume that fills up also stops WAL")
    return notes


# --- entry point -------------------------------------------------------------------------------


def _pooler_sizing(pool: _Pool, evidence: SizingEvidence, ov: SizingOverrides) -> PoolerSizing:
    if not pool.enabled:
        return PoolerSizing(enabled=False, reason=pool.reason, instances=pool.instances)
    peak = evidence.peak_connections
    max_client = max(MAX_CLIENT_CONN_MIN, 2 * peak)
    client_reason = f"max_client_conn = max({MAX_CLIENT_CONN_MIN}, 2·peak {peak}) = {max_client}"
    if ov.max_client_conn is not None:
        max_client, client_reason = ov.max_client_conn, f"max_client_conn {ov.max_client_conn}: override in plan file"
    mode = ov.pool_mode or "session"
    mode_reason = (
        "pool_mode session (transaction only if the app keeps no session state)"
        if ov.pool_mode is None
        else f"pool_mode {mode}: override in plan file"
    )
    reason = f"{pool.reason}; {pool.size_reason}; {client_reason}; {mode_reason}"
    return PoolerSizing(
        enabled=True,
        reason=reason,
        instances=pool.instances,
        pool_mode=mode,
        default_pool_size=pool.size,
        max_client_conn=max_client,
    )


def _connections_and_memory(
    evidence: SizingEvidence, pool: _Pool, options: SizingOptions, ov: SizingOverrides, path: str
) -> tuple[_Pool, Value, _Memory, str]:
    """max_connections and M together: the §5.5 memory rule may switch the pooler on once."""
    max_conn, conn_reason = _max_connections(evidence, pool, ov, path)
    conc = max(evidence.active_peak, pool.server_connections, 1)
    pooled = max(CONNECTION_FLOOR, pool.instances * pool.size * pool.pairs + RESERVED_CONNECTIONS)
    may_switch = not pool.enabled and not pool.overridden and ov.max_connections is None and pooled < max_conn
    mem, mem_reason = _memory(evidence, max_conn, conc, options, ov, may_move=not may_switch)
    if may_switch and not mem.check_ok:
        rule = (
            f"rule fired: the memory budget would force work_mem below 1MB with {max_conn} direct "
            f"connections at {format_memory(mem.limit)}"
        )
        pool.enabled, pool.reason = True, rule
        return _connections_and_memory(evidence, pool, options, ov, path)
    if not mem.check_ok and ov.memory is None:  # pragma: no cover - the rung loop always converges
        raise AssertionError("memory rung search did not converge")
    return pool, Value(max_conn, conn_reason), mem, mem_reason


def derive_sizing(
    evidence: SizingEvidence,
    *,
    overrides: dict[str, Any] | None = None,
    options: SizingOptions | None = None,
    path: str = "overrides",
) -> Sizing:
    """Propose resources and postgresql.conf for one app from its evidence and plan-file overrides.

    ``path`` prefixes the key path of every :class:`PlanValidationError` (``apps[2].overrides``).
    """
    opts = options or SizingOptions()
    check_options(opts)
    ov = validate_overrides(overrides, path=path)
    instances = _instances(evidence, opts, ov)
    cpu, cpu_value = _cpu(evidence, ov)
    pool = _pool(evidence, cpu, opts, ov)
    pool, max_conn, mem, mem_reason = _connections_and_memory(evidence, pool, opts, ov, path)
    wal = _wal(evidence)
    params = _parameters(mem, max_conn, cpu, wal, opts)
    _apply_parameter_overrides(params, ov, mem.limit, path)
    params = {k: v for k, v in params.items() if not is_fixed_parameter(k)}
    with_wal = opts.wal_volume and not ov.wal_storage_disabled
    if ov.wal_storage is not None:
        with_wal = True
    wal_storage, wal_raw = _wal_storage(wal, ov, path, with_wal)
    storage = _storage_override(_storage(evidence, opts, wal_raw, with_wal), evidence, ov, path)
    notes = _notes(evidence, instances.value, ov, with_wal)
    worst = _worst_case_note(params, max_conn.value, mem.limit)
    if worst:
        notes.append(worst)
    return Sizing(
        instances=instances,
        cpu=cpu_value,
        memory=Value(format_memory(mem.limit), mem_reason),
        storage=storage,
        wal_storage=wal_storage,
        max_connections=max_conn,
        pooler=_pooler_sizing(pool, evidence, ov),
        parameters=params,
        notes=notes,
    )
