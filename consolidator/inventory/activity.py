"""Activity over a sampling window: counter deltas at both ends, session samples in between.

Counters are cumulative since ``stats_reset``, so only deltas mean anything; sessions are sampled
about once a second to catch peaks. Our own sessions (application_name ``consolidator*``) are
excluded from the session samples.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from consolidator.inventory.model import Activity

COUNTERS = """
SELECT d.datname, extract(epoch FROM clock_timestamp())::float8, d.numbackends,
       d.xact_commit, d.xact_rollback, d.blks_read, d.blks_hit, d.tup_returned, d.tup_fetched,
       d.tup_inserted, d.tup_updated, d.tup_deleted, d.temp_bytes, {session_cols}
  FROM pg_stat_database d JOIN pg_database db ON db.oid = d.datid
 WHERE db.datallowconn AND NOT db.datistemplate
"""
SESSION_COLS_14 = "d.session_time, d.active_time, d.idle_in_transaction_time, d.sessions"
SESSION_COLS_OLD = "NULL::float8, NULL::float8, NULL::float8, NULL::bigint"

STATEMENTS = """
SELECT db.datname, sum(s.total_exec_time + s.total_plan_time), sum(s.wal_bytes)
  FROM {schema}.pg_stat_statements s JOIN pg_database db ON db.oid = s.dbid GROUP BY db.datname
"""
STATEMENTS_OLD = """
SELECT db.datname, sum(s.total_time), NULL::numeric
  FROM {schema}.pg_stat_statements s JOIN pg_database db ON db.oid = s.dbid GROUP BY db.datname
"""

SESSIONS = """
SELECT datname, usename, count(*), count(*) FILTER (WHERE state = 'active'),
       count(*) FILTER (WHERE state = 'active' AND wait_event IS NULL),
       extract(epoch FROM avg(clock_timestamp() - backend_start))::float8
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND datname IS NOT NULL AND pid <> pg_backend_pid()
   AND coalesce(application_name, '') NOT LIKE 'consolidator%%'
 GROUP BY datname, usename
"""


@dataclass
class Reading:
    at: float
    lsn_bytes: int | None
    counters: dict[str, tuple[Any, ...]]
    statements: dict[str, tuple[float, float | None]] | None


@dataclass
class SessionStats:
    samples: int = 0
    peak: int = 0
    active_peak: int = 0
    active: list[int] = field(default_factory=list)
    on_cpu: list[int] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    current: int = 0


def read_counters(conn: psycopg.Connection[Any], version_num: int, pgss_schema: str | None) -> Reading:
    cols = SESSION_COLS_14 if version_num >= 140000 else SESSION_COLS_OLD
    counters = {r[0]: tuple(r[1:]) for r in conn.execute(COUNTERS.format(session_cols=cols))}
    statements = None
    if pgss_schema:
        query = STATEMENTS if version_num >= 130000 else STATEMENTS_OLD
        try:
            statements = {
                r[0]: (float(r[1] or 0), float(r[2]) if r[2] is not None else None)
                for r in conn.execute(query.format(schema=pgss_schema))
            }
        except psycopg.Error:
            statements = None
    lsn = None
    try:
        row = conn.execute(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END"
        ).fetchone()
        lsn = int(row[0]) if row and row[0] is not None else None
    except psycopg.Error:
        lsn = None
    return Reading(at=time.monotonic(), lsn_bytes=lsn, counters=counters, statements=statements)


class SessionSampler:
    """Samples pg_stat_activity in a thread until stopped; peaks and p95 per database."""

    def __init__(self, conn: psycopg.Connection[Any], interval: float) -> None:
        self.conn = conn
        self.interval = interval
        self.stats: dict[str, SessionStats] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consolidator-sampler", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample_once(self) -> None:
        per_db: dict[str, list[tuple[Any, ...]]] = {}
        for row in self.conn.execute(SESSIONS):
            per_db.setdefault(row[0], []).append(row)
        for stats in self.stats.values():
            stats.samples += 1
            stats.current = 0
        for dbname, rows in per_db.items():
            stats = self.stats.setdefault(dbname, SessionStats())
            if stats.samples == 0:
                stats.samples = 1
            conns = sum(int(r[2]) for r in rows)
            active = sum(int(r[3]) for r in rows)
            stats.current = conns
            stats.peak = max(stats.peak, conns)
            stats.active_peak = max(stats.active_peak, active)
            stats.active.append(active)
            stats.on_cpu.append(sum(int(r[4]) for r in rows))
            stats.ages.extend(float(r[5]) for r in rows if r[5] is not None)
            stats.users.update(r[1] for r in rows if r[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except psycopg.Error as exc:  # keep the window going; report what failed
                self.error = str(exc).strip().splitlines()[0]
                return
            self._stop.wait(self.interval)


def p95(values: list[int], samples: int) -> float:
    """95th percentile over ``samples`` readings (missing readings count as zero)."""
    if samples <= 0:
        return 0.0
    padded = sorted(values + [0] * max(0, samples - len(values)))
    return float(padded[min(len(padded) - 1, math.ceil(0.95 * len(padded)) - 1)])


def derive_activity(dbname: str, start: Reading, end: Reading, sessions: SessionStats | None) -> Activity:
    """Rates for one database from two readings and the session samples."""
    act = Activity()
    a, b = start.counters.get(dbname), end.counters.get(dbname)
    if a is None or b is None:
        return act
    dt = max(1e-6, float(b[0]) - float(a[0]))
    act.window_seconds = round(dt, 3)

    def rate(i: int) -> float:
        return max(0.0, (float(b[i] or 0) - float(a[i] or 0)) / dt)

    act.commits_per_s = rate(2)
    act.rollbacks_per_s = rate(3)
    hits, reads = rate(5), rate(4)
    act.blocks_per_s = hits + reads
    act.cache_hit_ratio = hits / (hits + reads) if hits + reads > 0 else None
    act.rows_read_per_s = rate(6) + rate(7)
    act.rows_written_per_s = rate(8) + rate(9) + rate(10)
    act.temp_bytes_per_s = rate(11)
    act.backends_current = int(b[1] or 0)
    if b[12] is not None and a[12] is not None:
        session_ms = float(b[12]) - float(a[12])
        active_ms = float(b[13]) - float(a[13])
        idle_tx_ms = float(b[14]) - float(a[14])
        act.active_time_share = max(0.0, active_ms / 1000.0 / dt)
        act.sessions_per_s = rate(15)
        if session_ms > 0:
            act.idle_fraction = min(1.0, max(0.0, 1 - (active_ms + idle_tx_ms) / session_ms))
    if start.statements is not None and end.statements is not None:
        busy_a, _ = start.statements.get(dbname, (0.0, None))
        busy_b, _ = end.statements.get(dbname, (0.0, None))
        act.statements_busy_per_s = max(0.0, (busy_b - busy_a) / 1000.0 / dt)
    if sessions is not None:
        act.backends_peak = max(sessions.peak, act.backends_current)
        act.active_peak = sessions.active_peak
        act.active_p95 = p95(sessions.active, sessions.samples)
        if sessions.ages:
            act.avg_connection_age_s = sum(sessions.ages) / len(sessions.ages)
    else:
        act.backends_peak = act.backends_current
    return act


def attribute_wal(activities: dict[str, Activity], start: Reading, end: Reading) -> float:
    """Cluster WAL rate, split over databases by pg_stat_statements WAL share or rows written."""
    if start.lsn_bytes is None or end.lsn_bytes is None:
        return 0.0
    dt = max(1e-6, end.at - start.at)
    cluster_rate = max(0.0, (end.lsn_bytes - start.lsn_bytes) / dt)
    shares: dict[str, float] = {}
    if start.statements is not None and end.statements is not None:
        for name in activities:
            wal_a = start.statements.get(name, (0.0, 0.0))[1] or 0.0
            wal_b = end.statements.get(name, (0.0, 0.0))[1] or 0.0
            shares[name] = max(0.0, wal_b - wal_a)
    if sum(shares.values()) <= 0:
        shares = {name: act.rows_written_per_s for name, act in activities.items()}
    total = sum(shares.values())
    for name, act in activities.items():
        act.wal_bytes_per_s = cluster_rate * shares.get(name, 0.0) / total if total > 0 else 0.0
    total_busy = sum(a.statements_busy_per_s or 0.0 for a in activities.values())
    for act in activities.values():
        if act.statements_busy_per_s is not None and total_busy > 0:
            act.statements_time_share = act.statements_busy_per_s / total_busy
    return cluster_rate
