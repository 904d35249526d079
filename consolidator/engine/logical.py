"""The ``logical`` strategy (online, also across majors): publication → subscription → fenced drain.

The schema is restored first (pre- and post-data: the apply needs the key indexes), the source
publishes the app's tables, and one subscription per database makes the initial copy and then
streams changes while the app keeps writing. At cutover the source is fenced, the target is
drained to the exact fence LSN (never a byte tolerance), and what replication does not carry —
unlogged and small key-less tables, large objects, sequences — is copied while writes are blocked.

The replication objects themselves (names, slots, subscriptions, the publication, replica
identities, the subscription's source passfile) and their removal by ``finalize`` / ``rollback`` live
in ``engine/replication.py``; which tables are published or copied at cutover is decided in
``engine/logical_tables.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from consolidator.engine.copy import CopyResult, CopyTask, TableCopier, plan_tasks
from consolidator.engine.logical_tables import TableSplit, read_leaf_tables, split_tables
from consolidator.engine.replication import (
    SUBSCRIPTION,
    binary_safe,
    create_publication_sql,
    drop_slot,
    drop_subscription,
    drop_sync_slots,
    finalize_logical,
    identity_sql,
    merge_identities,
    object_name,
    publication_record,
    rollback_logical,
    slot_info,
    slot_positions,
    subscription_conninfo,
    subscription_options,
    subscription_state,
)
from consolidator.engine.run import AppRun
from consolidator.engine.schema import dump_schema, restore_section
from consolidator.engine.strategy import Strategy
from consolidator.errors import PreconditionError, StepFailed
from consolidator.events import emit
from consolidator.pg.binaries import find_client
from consolidator.pg.connect import connect, redact
from consolidator.plan.model import App, Plan

PLUGIN = "pgoutput"
CAUGHT_UP_BYTES = 16 * 1024 * 1024  # pre-gate before fencing: lag at most this…
CAUGHT_UP_SAMPLES = 2  # …in this many consecutive samples
REPLICATE_TIMEOUT = 300.0
DRAIN_TIMEOUT = 120.0
COPY_STALL_SECONDS = 600.0  # no progress at all for this long fails the copy step…
COPY_ERROR_STALL_SECONDS = 60.0  # …or this long while the subscription reports errors
POLL_SECONDS = 0.5
DRAIN_POLL_SECONDS = 0.02
FACTS_KEY = "logical"


# -- facts -------------------------------------------------------------------------------------


def _facts(run: AppRun) -> dict[str, Any]:
    return dict(run.journal.app(run.app.name).facts.get(FACTS_KEY) or {})


def _db_facts(run: AppRun, source_db: str) -> dict[str, Any]:
    return dict((_facts(run).get("databases") or {}).get(source_db) or {})


def _record(run: AppRun, source_db: str | None = None, **values: Any) -> None:
    """Journal strategy facts (app-wide, or for one source database)."""

    def apply(state: Any) -> None:
        facts = state.apps[run.app.name].facts.setdefault(FACTS_KEY, {})
        target = facts if source_db is None else facts.setdefault("databases", {}).setdefault(source_db, {})
        target.update(values)

    run.journal.update(apply)


def _pairs(items: Iterable[Iterable[str]]) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b in items]


def _qualified(pair: Iterable[str]) -> str:
    schema, name = pair
    return f"{schema}.{name}"


# -- preflight ---------------------------------------------------------------------------------


def preflight_source(source_dsn: str, app: App) -> None:
    """wal_level, the REPLICATION privilege, free slots and WAL senders: refuse before changing anything."""
    ours = [object_name(app, i) for i in range(len(app.databases))]
    with connect(source_dsn, dbname="postgres") as conn:
        row = conn.execute(
            """SELECT current_setting('server_version_num')::int, current_setting('wal_level'),
                      r.rolname, r.rolsuper OR r.rolreplication,
                      current_setting('max_replication_slots')::int,
                      (SELECT count(*) FROM pg_replication_slots WHERE NOT slot_name = ANY(%s)),
                      current_setting('max_wal_senders')::int,
                      (SELECT count(*) FROM pg_stat_activity
                        WHERE backend_type = 'walsender' AND NOT application_name = ANY(%s))
                 FROM pg_roles r WHERE r.rolname = current_user""",
            (ours, ours),
        ).fetchone()
    assert row is not None
    version, wal_level, role, may_replicate, max_slots, used_slots, max_senders, senders = row
    need = len(app.databases) + 1  # one slot/sender per database, plus one for a table-sync worker
    if version < 100000:
        raise PreconditionError(f"the source runs PostgreSQL {version // 10000}: no logical replication",
                                hint=f"use --strategy {app.name}=dump in a new plan")  # fmt: skip
    if wal_level != "logical":
        raise PreconditionError(
            f"wal_level is {wal_level!r} on the source; the logical strategy of {app.name} needs 'logical'",
            hint="ALTER SYSTEM SET wal_level = logical, restart the source, then execute --resume "
            "(or plan this app with the dump strategy)",
        )
    if not may_replicate:
        raise PreconditionError(f"role {role!r} has neither REPLICATION nor SUPERUSER on the source",
                                hint=f"ALTER ROLE {role} REPLICATION, then execute --resume")  # fmt: skip
    if max_slots - used_slots < need:
        raise PreconditionError(
            f"the source has {max_slots - used_slots} free replication slots; {app.name} needs {need}",
            hint=f"raise max_replication_slots to at least {used_slots + need} (restart) or drop unused slots",
        )
    if max_senders - senders < need:
        raise PreconditionError(
            f"the source has {max_senders - senders} free WAL senders; {app.name} needs {need}",
            hint=f"raise max_wal_senders to at least {senders + need} (restart)",
        )


def preflight_target(conninfo: str, app: App) -> None:
    """One apply worker per database plus one table-sync worker, or the initial copy never ends."""
    need = len(app.databases) + 1
    with connect(conninfo, dbname="postgres") as conn:
        row = conn.execute("SELECT current_setting('max_logical_replication_workers')::int, "
                           "current_setting('max_worker_processes')::int").fetchone()  # fmt: skip
    assert row is not None
    workers, processes = row
    if workers < need or processes < need + 1:
        raise PreconditionError(
            f"target of {app.name}: max_logical_replication_workers {workers} / max_worker_processes "
            f"{processes}; the subscriptions need {need} / {need + 1}",
            hint="raise them in the plan's postgresql parameters for this app, then execute --restart",
        )


# -- the strategy --------------------------------------------------------------------------------


class LogicalStrategy(Strategy):
    name = "logical"
    reset_after_rollback = (
        "publication", "copy", "replicate", "fence", "drain", "cutover_copy", "sequences", "matviews", "verify",
        "cutover",
    )  # fmt: skip

    def remove_replication(self, plan: Plan, app: App, source_dsn: str, target_conninfo: str | None,
                           facts: dict[str, Any], *, final: bool) -> list[str]:  # fmt: skip
        remove = finalize_logical if final else rollback_logical
        return remove(plan, app, source_dsn, target_conninfo, facts=facts.get("logical"))

    def preflight(self, plan: Plan, app: App, source_dsn: str) -> None:
        """Source checks an executor may run before any step (they also run in provision and publication)."""
        preflight_source(source_dsn, app)

    def _databases(self, run: AppRun) -> list[tuple[int, Any, str]]:
        return [(i, db, object_name(run.app, i)) for i, db in enumerate(run.app.databases)]

    def step_provision(self, run: AppRun) -> None:
        """Refuse an unfit source before a target even exists."""
        preflight_source(run.source_dsn, run.app)
        super().step_provision(run)

    # -- schema ----------------------------------------------------------------------------------

    def step_schema(self, run: AppRun) -> None:
        """Pre-data then post-data: the apply needs key indexes; FK and ordinary triggers do not fire
        under the subscription's session_replication_role=replica."""
        preflight_target(run.target.conninfo, run.app)  # before anything exists on the source
        binaries = find_client(run.target.major)
        for index, db, name in self._databases(run):
            done = _db_facts(run, db.source).get("schema", [])
            if "post-data" in done:
                continue
            dump = dump_schema(binaries, run.source_dsn, db.source, run.work_dir / f"db{index}.schema")
            if "pre-data" not in done:
                # a retry may find objects from an attempt that crashed: --clean before post-data exists
                retry = run.journal.step(run.app.name, "schema").attempts > 1
                restore_section(binaries, dump, run.target.conninfo, db.target, "pre-data", clean=retry)
                _record(run, db.source, schema=["pre-data"])
            restore_section(binaries, dump, run.target.conninfo, db.target, "post-data", jobs=run.options.jobs,
                            clean=True)  # fmt: skip
            with connect(run.target.conninfo, dbname=db.target) as conn:  # a stale run's publication came along
                conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
            _record(run, db.source, schema=["pre-data", "post-data"])

    # -- publication -------------------------------------------------------------------------------

    def step_publication(self, run: AppRun) -> None:
        preflight_source(run.source_dsn, run.app)
        options = run.app.strategy.options
        listed = set(options.get("copy_at_cutover") or [])
        splits: dict[str, TableSplit] = {}
        for _, db, _ in self._databases(run):
            with connect(run.source_dsn, dbname=db.source) as conn:
                splits[db.source] = split_tables(read_leaf_tables(conn), db.source, listed)
        missing = [f"{db}.{t.schema}.{t.name}" for db, s in splits.items() for t in s.need_full]
        if missing and not options.get("replica_identity_full"):
            raise StepFailed(
                f"{run.app.name}: {len(missing)} table(s) without primary key or replica identity are too large "
                f"to copy at cutover: {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""),
                hint="add a primary key, or opt in with strategy.options.replica_identity_full: true in the plan "
                "(sets REPLICA IDENTITY FULL on the source until finalize) and execute --restart, or use the dump "
                "strategy",
            )
        for _, db, name in self._databases(run):
            identities = self._publish(run, db.source, name, splits[db.source])
            self._mirror_identities(run, db.target, identities)

    def _mirror_identities(self, run: AppRun, target_db: str, identities: list[dict[str, Any]]) -> None:
        """The target gets the FULL identity too, so it matches the source until finalize reverts both."""
        if not identities:
            return
        with connect(run.target.conninfo, dbname=target_db) as conn:
            for rec in identities:
                conn.execute(identity_sql(rec["schema"], rec["name"], "f", None))

    def _publish(self, run: AppRun, source_db: str, name: str, split: TableSplit) -> list[dict[str, Any]]:
        """(Re)create the publication, record and set REPLICA IDENTITY FULL where opted in — one transaction."""
        with connect(run.source_dsn, dbname=source_db) as conn:
            if drop_slot(conn, name):  # a slot older than this publication could not decode it
                emit(run.sink, "log", f"{run.app.name}: dropped stale replication slot {name} on the source")
            earlier = publication_record(conn, name).get("replica_identity", [])
            now = [{"schema": t.schema, "name": t.name, "replident": t.replident, "index": t.identity_index}
                   for t in split.need_full]  # fmt: skip
            identities = merge_identities(_db_facts(run, source_db).get("replica_identity", []), earlier, now)
            _record(run, source_db, publication=name, slot=name, subscription=name,
                    published=split.published, at_cutover=split.at_cutover,
                    bytes={_qualified(k): v for k, v in split.bytes.items()}, replica_identity=identities)  # fmt: skip
            comment = json.dumps({"consolidator": {"app": run.app.name, "replica_identity": identities}})
            pub = sql.Identifier(name)
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '30s'")
                conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(pub))
                conn.execute(create_publication_sql(conn, name, split.published))
                conn.execute(sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(pub, sql.Literal(comment)))
                for table in split.need_full:
                    conn.execute(identity_sql(table.schema, table.name, "f", None))
        full = ", ".join(f"{t.schema}.{t.name}" for t in split.need_full)
        message = f"{run.app.name}: publication {name} on {source_db!r} with {len(split.published)} tables; "
        message += f"{len(split.at_cutover)} copied at cutover"
        emit(run.sink, "log", message + (f"; REPLICA IDENTITY FULL on {full}" if full else ""))
        return identities

    # -- copy --------------------------------------------------------------------------------------

    def step_copy(self, run: AppRun) -> None:
        """Slot, then subscription with the initial copy; wait until every table is ready."""
        preflight_target(run.target.conninfo, run.app)
        for _, db, name in self._databases(run):
            created = self._ensure_slot(run, db.source, name)
            self._ensure_subscription(run, db.source, db.target, name, recreate=created)
        self._wait_ready(run)

    def _ensure_slot(self, run: AppRun, source_db: str, name: str) -> bool:
        """Reuse our slot on resume; replace one that is lost or not ours. True when created now."""
        with connect(run.source_dsn, dbname=source_db) as conn:
            row = slot_info(conn, name)
            dbname = conn.execute("SELECT current_database()").fetchone()[0]
            if row is not None and row[0] == dbname and row[1] == PLUGIN and row[2] != "lost":
                return False
            if row is not None:
                emit(run.sink, "log", f"{run.app.name}: replication slot {name} is unusable; creating it again",
                     level="warning")  # fmt: skip
                drop_slot(conn, name)
            conn.execute("SET statement_timeout = '300s'")
            try:
                conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (name, PLUGIN))
            except psycopg.errors.DuplicateObject:
                return False  # a killed run's backend finished creating it meanwhile
            except psycopg.errors.QueryCanceled:
                raise StepFailed(f"creating replication slot {name} on {source_db!r} waited 300s for running "
                                 "transactions to end", hint="end long transactions on the source, then execute "
                                 "--resume") from None  # fmt: skip
        emit(run.sink, "log", f"{run.app.name}: created replication slot {name} on {source_db!r}")
        return True

    def _ensure_subscription(self, run: AppRun, source_db: str, target_db: str, name: str, *, recreate: bool) -> None:
        """Reuse a healthy subscription; drop a broken one, empty its tables and create it again."""
        facts = _db_facts(run, source_db)
        published = _pairs(facts.get("published", []))
        with connect(run.target.conninfo, dbname=target_db) as conn:
            row = conn.execute(SUBSCRIPTION, (name,)).fetchone()
            healthy = row is not None and row[1] and row[2] == name and list(row[3]) == [name]
            if healthy and not recreate:
                emit(run.sink, "log", f"{run.app.name}: subscription {name} on {target_db!r} resumes")
                return
            if row is not None:
                emit(run.sink, "log", f"{run.app.name}: subscription {name} is not usable; creating it again",
                     level="warning")  # fmt: skip
                old = drop_subscription(conn, name)
                if old is not None:
                    with connect(run.source_dsn, dbname=source_db) as src:
                        drop_sync_slots(src, old)
            if published:
                conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(*t) for t in published)))  # fmt: skip
            conninfo = subscription_conninfo(run, source_db)
            with connect(run.source_dsn, dbname=source_db) as src:
                source_major = src.info.server_version // 10000
                binary = binary_safe(src, published)
            target_major = conn.info.server_version // 10000
            create = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (slot_name = {}, {})")
            options = subscription_options(source_major, target_major, binary)
            try:
                conn.execute(create.format(sql.Identifier(name), sql.Literal(conninfo), sql.Identifier(name),
                                           sql.Literal(name), options))  # fmt: skip
            except psycopg.OperationalError as exc:
                raise StepFailed(
                    f"the target server cannot reach the source for subscription {name}: "
                    f"{redact(str(exc).strip().splitlines()[0])}",
                    hint=f"the target connects to the source itself: the source's pg_hba.conf must accept it for "
                    f"database {source_db!r} (not the 'replication' keyword); then execute --resume",
                ) from None
        emit(run.sink, "log", f"{run.app.name}: subscription {name} on {target_db!r} copies {len(published)} tables")

    def _wait_ready(self, run: AppRun) -> None:
        """Poll pg_subscription_rel until every table is 'r'; progress events, journaled tables."""
        step_id = run.step_id("copy")
        started = time.monotonic()
        last_change, last_seen = started, None
        baseline: dict[str, int] = {}
        while True:
            ready = total = copied = done_bytes = bytes_total = errors_new = 0
            for _, db, name in self._databases(run):
                facts = _db_facts(run, db.source)
                sizes: dict[str, int] = facts.get("bytes", {})
                published = _pairs(facts.get("published", []))
                with connect(run.target.conninfo, dbname=db.target) as conn:
                    oid, enabled, states, copying, errors = subscription_state(conn, name)
                if oid is None or not enabled:
                    raise StepFailed(f"subscription {name} on {db.target!r} is missing or disabled",
                                     hint="execute --resume creates it again")  # fmt: skip
                baseline.setdefault(name, errors)
                errors_new += errors - baseline[name]
                total += len(published)
                bytes_total += sum(sizes.values())
                copied += copying
                for table in published:
                    size = sizes.get(_qualified(table), 0)
                    if states.get(table) == "r":
                        ready += 1
                        done_bytes += size
                self._journal_tables(run, db.target, published, states, sizes)
            seen = (ready, done_bytes + copied)
            now = time.monotonic()
            if seen != last_seen:
                last_change, last_seen = now, seen
            elapsed = now - started
            emit(run.sink, "step_progress", f"copy {run.app.name}: {ready}/{total} tables ready", step_id=step_id,
                 tables_ready=ready, tables_total=total, bytes=min(done_bytes + copied, bytes_total),
                 bytes_total=bytes_total, elapsed_seconds=round(elapsed, 1),
                 rate=round((done_bytes + copied) / elapsed) if elapsed > 0 else 0)  # fmt: skip
            if ready == total:
                return
            stall = COPY_ERROR_STALL_SECONDS if errors_new else COPY_STALL_SECONDS
            if now - last_change > stall:
                raise StepFailed(
                    f"initial copy of {run.app.name} made no progress for {stall:.0f}s ({ready}/{total} tables "
                    f"ready, {errors_new} subscription errors)",
                    hint=f"see the target's server log ({self._log_hint(run)}); fix the cause, then execute --resume",
                )
            run.wait(POLL_SECONDS)

    def _journal_tables(self, run: AppRun, target_db: str, published: list[tuple[str, str]],
                        states: dict[tuple[str, str], str], sizes: dict[str, int]) -> None:  # fmt: skip
        app = run.app.name
        state = run.journal.app(app)
        changes = []
        for table in published:
            key = _qualified(table)
            now = "done" if states.get(table) == "r" else "copying"
            recorded = state.tables.get(f"{target_db}/{key}")
            if recorded is None or recorded.state != now:
                changes.append((key, now))
        if not changes:
            return

        def apply(_: Any) -> None:
            for key, now in changes:
                table = run.journal.table(app, target_db, key)
                table.state = now
                table.bytes = sizes.get(key, 0) if now == "done" else 0

        run.journal.update(apply)
        for key, now in changes:
            if now == "done":
                emit(run.sink, "log", f"{app}: {target_db}/{key} ready (initial copy done, streaming)")

    def _log_hint(self, run: AppRun) -> str:
        if run.plan.target.provider == "local" and run.target.passfile:
            return str(Path(run.target.passfile).parent / "server.log")
        return "kubectl logs of the cluster's primary"

    # -- replicate / drain ---------------------------------------------------------------------------

    def _ensure_enabled(self, run: AppRun) -> None:
        for _, db, name in self._databases(run):
            with connect(run.target.conninfo, dbname=db.target) as conn:
                row = conn.execute(SUBSCRIPTION, (name,)).fetchone()
                if row is None:
                    raise StepFailed(f"subscription {name} on {db.target!r} does not exist",
                                     hint="execute --restart: the initial copy must be made again")  # fmt: skip
                if not row[1]:
                    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))

    def _confirm_promptly(self, run: AppRun) -> None:
        """Apply with synchronous_commit on from here: the source then sees the target's confirmation
        within milliseconds instead of ~150 ms, which is most of the drain's time inside the fence."""
        for _, db, name in self._databases(run):
            with connect(run.target.conninfo, dbname=db.target) as conn:
                stmt = sql.SQL("ALTER SUBSCRIPTION {} SET (synchronous_commit = on)")
                conn.execute(stmt.format(sql.Identifier(name)))

    def _lags(self, run: AppRun) -> dict[str, tuple[str | None, int | None]]:
        slots = [name for _, _, name in self._databases(run)]
        positions = slot_positions(run.source_dsn, slots)
        missing = [s for s in slots if s not in positions]
        if missing:
            raise StepFailed(f"replication slot {missing[0]} is gone from the source",
                             hint="execute --restart: the initial copy must be made again")  # fmt: skip
        return positions

    def step_replicate(self, run: AppRun) -> None:
        """Report lag until it stayed small twice: a pre-gate only, the exact gate is the drain."""
        self._ensure_enabled(run)
        step_id = run.step_id("replicate")
        started = time.monotonic()
        good = 0
        while True:
            lag = max((p[1] or 0 for p in self._lags(run).values()), default=0)
            elapsed = time.monotonic() - started
            emit(run.sink, "step_progress", f"replicate {run.app.name}: lag {lag} bytes", step_id=step_id,
                 lag_bytes=lag, elapsed_seconds=round(elapsed, 1))  # fmt: skip
            good = good + 1 if lag <= CAUGHT_UP_BYTES else 0
            if good >= CAUGHT_UP_SAMPLES:
                self._confirm_promptly(run)
                _record(run, lag_bytes=lag)
                emit(run.sink, "log", f"{run.app.name}: caught up (lag {lag} bytes)")
                return
            if elapsed > REPLICATE_TIMEOUT:
                raise StepFailed(
                    f"{run.app.name}: replication lag still {lag} bytes after {REPLICATE_TIMEOUT:.0f}s "
                    f"(pre-gate {CAUGHT_UP_BYTES} bytes)",
                    hint=f"the target applies slower than the source writes; see {self._log_hint(run)}, "
                    "then execute --resume to keep waiting",
                )
            run.wait(POLL_SECONDS)

    def step_drain(self, run: AppRun) -> None:
        """Fence LSN taken after the fence; wait until every slot confirmed it — exactly, no tolerance."""
        self._ensure_enabled(run)
        fence_lsn = _facts(run).get("fence_lsn")
        if fence_lsn is None:
            with connect(run.source_dsn, dbname="postgres") as conn:
                fence_lsn = str(conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])
            _record(run, fence_lsn=fence_lsn)
            emit(run.sink, "log", f"{run.app.name}: fence LSN {fence_lsn}")
        for _, db, _ in self._databases(run):
            with connect(run.source_dsn, dbname=db.source) as conn:
                conn.execute("SET synchronous_commit = on")  # flushed: the walsender can send past it
                conn.execute("SELECT pg_logical_emit_message(true, 'consolidator', 'cutover')")
        started = last_report = time.monotonic()
        while True:
            behind = self._behind(run, fence_lsn)
            if not behind:
                break
            now = time.monotonic()
            if now - last_report >= POLL_SECONDS:
                last_report = now
                emit(run.sink, "step_progress", f"drain {run.app.name} to {fence_lsn}", step_id=run.step_id("drain"),
                     lag_bytes=max(lag for _, lag in behind.values()), fence_lsn=fence_lsn)  # fmt: skip
            if now - started > DRAIN_TIMEOUT:
                slot, (lsn, _) = next(iter(behind.items()))
                raise StepFailed(
                    f"{run.app.name}: slot {slot} confirmed {lsn}, not yet the fence LSN {fence_lsn} "
                    f"after {DRAIN_TIMEOUT:.0f}s",
                    hint=f"the source stays fenced; see {self._log_hint(run)}; execute --resume keeps waiting, "
                    "rollback reopens the source",
                )
            time.sleep(DRAIN_POLL_SECONDS)
        seconds = round(time.monotonic() - started, 3)
        _record(run, drained_seconds=seconds)
        emit(run.sink, "log", f"{run.app.name}: target applied past the fence LSN {fence_lsn} ({seconds}s)")

    def _behind(self, run: AppRun, fence_lsn: str) -> dict[str, tuple[str | None, int]]:
        """slot → (confirmed_flush_lsn, bytes short of the fence LSN) for slots not yet past it."""
        slots = [name for _, _, name in self._databases(run)]
        with connect(run.source_dsn, dbname="postgres") as conn:
            rows = conn.execute(
                "SELECT slot_name, confirmed_flush_lsn::text, coalesce(confirmed_flush_lsn >= %s::pg_lsn, false), "
                "coalesce(pg_wal_lsn_diff(%s::pg_lsn, confirmed_flush_lsn), 0)::bigint "
                "FROM pg_replication_slots WHERE slot_name = ANY(%s)", (fence_lsn, fence_lsn, slots)
            ).fetchall()  # fmt: skip
        found = {r[0]: r for r in rows}
        missing = [s for s in slots if s not in found]
        if missing:
            raise StepFailed(f"replication slot {missing[0]} is gone from the source",
                             hint="rollback, then execute --restart")  # fmt: skip
        return {r[0]: (r[1], int(r[3])) for r in rows if not r[2]}

    # -- cutover copy ------------------------------------------------------------------------------

    def step_cutover_copy(self, run: AppRun) -> None:
        """While fenced: tables replication skips (TRUNCATE + COPY), large objects, then stop the apply."""
        for _, db, _ in self._databases(run):
            wanted = set(_pairs(_db_facts(run, db.source).get("at_cutover", [])))
            if wanted:
                self._copy_tables(run, db.source, db.target, wanted)
        self.step_large_objects(run)
        for _, db, name in self._databases(run):
            with connect(run.target.conninfo, dbname=db.target) as conn:
                row = conn.execute(SUBSCRIPTION, (name,)).fetchone()
                if row is not None and row[1]:
                    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(name)))
        emit(run.sink, "log", f"{run.app.name}: subscriptions disabled (slots and subscriptions kept until finalize)")

    def _copy_tables(self, run: AppRun, source_db: str, target_db: str, wanted: set[tuple[str, str]]) -> None:
        app, journal = run.app.name, run.journal
        with connect(run.source_dsn, dbname=source_db) as src:
            tasks = [t for t in plan_tasks(src) if (t.schema, t.name) in wanted]

        def reset(_: Any) -> None:
            for task in tasks:
                table = journal.table(app, target_db, task.qualified)
                table.rows, table.bytes, table.parts_done, table.state = 0, 0, [], "copying"

        journal.update(reset)
        copier = TableCopier(run.source_dsn, run.target.conninfo, source_db, target_db, snapshot=None,
                             jobs=run.options.jobs, fmt=run.options.copy_format, sink=run.sink,
                             step_id=run.step_id("cutover_copy"))  # fmt: skip
        for task in {(t.schema, t.name): t for t in tasks if t.parts > 1}.values():
            copier.truncate(task)
        copier.run(tasks, done=self._copied(run, target_db))

    def _copied(self, run: AppRun, target_db: str) -> Callable[[CopyTask, CopyResult], None]:
        app, journal = run.app.name, run.journal

        def done(task: CopyTask, result: CopyResult) -> None:
            journal.record_copied(app, target_db, task.qualified, part=task.part, parts=task.parts,
                                  rows=result.rows, size=result.bytes, seconds=result.seconds)  # fmt: skip
            emit(run.sink, "step_progress", f"copied {app} {task.qualified} at cutover",
                 step_id=run.step_id("cutover_copy"), table=task.qualified, rows=result.rows, bytes=result.bytes,
                 seconds=round(result.seconds, 3))  # fmt: skip

        return done
