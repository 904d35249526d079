"""The ``physical`` strategy: a pg_basebackup standby of the whole legacy instance, promoted at cutover.

Same major (and CPU architecture) only; the plan refuses it otherwise. The standby streams until the
fence, then the drain waits until it replayed the exact fence LSN, it is promoted (unlogged tables and
sequences, which WAL does not carry, are copied from the fenced source), and every database that is
not the app's is dropped. Steps: provision (nothing: the clone *is* the target, built by copy),
copy (preflight + base backup), replicate (lag pre-gate), fence (shared), drain, promote, drop_foreign,
verify and cutover (shared).

Credentials: the clone carries the source's roles and password hashes, so the tool logs into it as the
source DSN's superuser; the provider keeps that password only in 0600 pgpass files of the target (see
``engine/local.py``), never in argv, the plan, the journal or a configuration file.

ACLs: the standby replays the fence (REVOKE CONNECT) before the drain, so the promoted databases are
closed to app roles already; promote records the source's pre-fence ACL as the target's, and the shared
cutover step restores it, opening the target.

Roles after drop_foreign: the clone brings every role of the legacy server. A role of another app is
dropped only when nothing that stays refers to it: not an app role, not a superuser, not the tool's
login, not named in the app databases' ACLs, no shared dependency (ownership, grants, default
privileges, policies, user mappings) in any remaining database (``postgres`` and templates included),
no membership link with a kept role. Everything else is kept and reported with its reason; a DROP
ROLE the server refuses keeps the role too. Other apps' subscriptions, which would consume the legacy
subscribers' slots after promotion, are detached (the app's own are kept disabled and reported).

Collation: a clone keeps the source's on-disk indexes. When the legacy server ran another OS or glibc
version than the target, text indexes may be ordered differently: REINDEX them after promotion
(notes/migration.md §6). Promote says so when the source is not on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from consolidator.cnpg_facts import is_reserved_role
from consolidator.engine import fence
from consolidator.engine.copy import TableCopier, plan_tasks
from consolidator.engine.provider import standby_name
from consolidator.engine.run import AppRun
from consolidator.engine.strategy import Strategy
from consolidator.errors import ConnectionFailure, PreconditionError, StepFailed
from consolidator.events import emit
from consolidator.pg.connect import connect, describe, parse_dsn, redact

LAG_GATE_BYTES = 16 * 1024 * 1024  # "caught up" pre-gate before fencing (notes §5.1: two samples ≤ 16 MiB)
LAG_GATE_SAMPLES = 2
POLL_SECONDS = 0.5
DRAIN_POLL_SECONDS = 0.05
REPLICATE_TIMEOUT = 3600.0
NOT_STREAMING_TIMEOUT = 60.0
DRAIN_TIMEOUT = 300.0
PROMOTE_TIMEOUT = 120.0
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost", "")

PREFLIGHT_SQL = """
SELECT current_setting('server_version_num')::int / 10000,
       current_setting('wal_level'),
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_replication WHERE application_name IS DISTINCT FROM %s),
       (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
       current_user,
       coalesce(pg_size_bytes(nullif(current_setting('wal_keep_size', true), '')),
                current_setting('wal_keep_segments', true)::bigint * 16 * 1024 * 1024),
       current_setting('archive_mode'),
       current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
       (SELECT count(*) FROM pg_database WHERE NOT datistemplate),
       current_setting('synchronous_standby_names')
"""
UNLOGGED_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'u'
"""
STANDBY_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, (SELECT status FROM pg_stat_wal_receiver)"
ROLES_SQL = """
SELECT r.rolname, r.rolsuper,
       ARRAY(SELECT DISTINCT coalesce(d.datname, '(cluster-wide)') FROM pg_shdepend s
               LEFT JOIN pg_database d ON d.oid = s.dbid
              WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype <> 'p'
              ORDER BY 1),
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid
             UNION
             SELECT u.rolname FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member WHERE m.roleid = r.oid)
  FROM pg_roles r
 WHERE r.oid >= 16384
 ORDER BY 1
"""


def lsn_int(text: str) -> int:
    """``16/B374D848`` → a byte position (LSNs compare as 64-bit integers)."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass
class RoleRow:
    """One user-defined role on the promoted clone, with what still refers to it."""

    name: str
    superuser: bool = False
    used_in: list[str] = field(default_factory=list)  # databases holding shared dependencies on it
    related: list[str] = field(default_factory=list)  # roles it is a member of, or that are members of it


def roles_to_drop(roles: list[RoleRow], app_roles: set[str], acl_roles: set[str],
                  login: str) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """Split the clone's roles into (drop, kept → reason); when in doubt a role is kept."""
    kept: dict[str, str] = {}
    for role in roles:
        if role.name in app_roles:
            kept[role.name] = "app role"
        elif is_reserved_role(role.name):
            kept[role.name] = "reserved for CloudNativePG (streaming_replica, cnpg_*)"
        elif role.name == login:
            kept[role.name] = "the tool's login"
        elif role.superuser:
            kept[role.name] = "superuser (review by hand)"
        elif role.name in acl_roles:
            kept[role.name] = "named in an app database's ACL"
        elif role.used_in:
            kept[role.name] = "owns objects or holds privileges in " + ", ".join(role.used_in)
    changed = True
    while changed:  # a member of a kept role, or a role a kept one belongs to, stays too
        changed = False
        for role in roles:
            linked = [r for r in role.related if r in kept]
            if role.name not in kept and linked:
                kept[role.name] = f"membership link with kept role {linked[0]}"
                changed = True
    return [r.name for r in roles if r.name not in kept], kept


@dataclass
class StandbySample:
    in_recovery: bool
    replay_lsn: int
    receiver: str | None


def _standby_sample(conn: psycopg.Connection[Any]) -> StandbySample:
    row = conn.execute(STANDBY_SQL).fetchone()
    if row is None:  # pragma: no cover - a SELECT without FROM returns one row
        raise StepFailed("the target returned no recovery state", hint="execute --resume")
    return StandbySample(bool(row[0]), lsn_int(row[1]) if row[1] else 0, row[2])


def _source_lsn(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return lsn_int(row[0]) if row else 0


def _is_local(dsn: str) -> bool:
    host = str(parse_dsn(dsn).get("host") or "")
    return host in LOCAL_HOSTS or host.startswith("/")


# -- preflight ------------------------------------------------------------------------------------


def preflight(run: AppRun) -> None:
    """Refuse early, naming the fix: same major, wal_level, WAL senders, privilege, hba for replication."""
    app = run.app
    with connect(run.source_dsn, dbname="postgres") as conn:
        row = conn.execute(PREFLIGHT_SQL, (standby_name(app),)).fetchone()
    if row is None:  # pragma: no cover
        raise PreconditionError("the source returned no settings", hint="check the source DSN")
    major, wal_level, senders, used, may_replicate, user, keep_bytes, archive, free_slots, databases, sync = row
    where = describe(run.source_dsn)
    if major != run.plan.target.version:
        raise PreconditionError(
            f"app {app.name}: the source runs PostgreSQL {major}, the target {run.plan.target.version}; "
            "a physical standby needs the same major",
            hint=f"plan again with dump or logical for this app, or --target-version {major}",
        )
    if wal_level not in ("replica", "logical"):
        raise PreconditionError(f"{where}: wal_level is {wal_level}; a standby needs replica or logical",
                                hint="ALTER SYSTEM SET wal_level = replica; restart the source; resume")  # fmt: skip
    if senders - used < 2:
        raise PreconditionError(
            f"{where}: {senders - used} of max_wal_senders = {senders} free; the base backup needs 2",
            hint="raise max_wal_senders on the source (restart) or stop other replication clients; resume",
        )
    if not may_replicate:
        raise PreconditionError(f"{where}: role {user!r} has neither REPLICATION nor SUPERUSER",
                                hint=f'ALTER ROLE "{user}" REPLICATION on the source; resume')  # fmt: skip
    if _names_standby(sync, standby_name(app)):
        raise PreconditionError(
            f"{where}: synchronous_standby_names = {sync!r} would make the clone a synchronous standby, and the "
            "source's commits would hang once it is promoted",
            hint="name the real synchronous standbys instead of '*' (ALTER SYSTEM SET synchronous_standby_names "
            "= ...; SELECT pg_reload_conf()); resume",
        )
    if run.provider.standby_connects_from_here:
        system_id = replication_check(run.source_dsn, user)
    else:  # the standby connects from elsewhere (pods): its provider checks replication access itself
        with connect(run.source_dsn, dbname="postgres") as conn:
            found = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
        system_id = str(found[0]) if found else ""
    planned = run.plan.fingerprint.system_identifier
    if planned and system_id != planned:
        raise PreconditionError(f"{where}: system identifier {system_id} is not the planned server's ({planned})",
                                hint="point --source at the server the plan was made for")  # fmt: skip
    emit(run.sink, "log", f"{app.name}: cloning the whole instance ({databases} databases); the ones that are not "
         "this app's are dropped after promotion")  # fmt: skip
    if not keep_bytes and archive == "off":
        emit(run.sink, "log", f"{app.name}: warning: the source keeps no extra WAL (wal_keep_size = 0, no archive); "
             "a standby that falls behind past a checkpoint must be rebuilt: consider "
             "ALTER SYSTEM SET wal_keep_size = '1GB'", level="warning")  # fmt: skip
    if free_slots <= 0:
        emit(run.sink, "log", f"{app.name}: warning: no free replication slot on the source; the base backup runs "
             "without a temporary slot", level="warning")  # fmt: skip


def _names_standby(setting: str, name: str) -> bool:
    """Whether synchronous_standby_names can pick a standby called ``name`` (``*`` picks any)."""
    tokens = {t.strip().strip('"').lower() for t in setting.replace("(", ",").replace(")", ",").split(",")}
    tokens |= {t.split()[-1] for t in tokens if t.split()}  # "FIRST 1 (a" → "a"
    return "*" in tokens or name.lower() in tokens


def replication_check(dsn: str, user: str) -> str:
    """Open a real physical replication connection, like pg_basebackup will; return the system identifier."""
    conninfo = make_conninfo(dsn, replication="true", connect_timeout="10", application_name="consolidator-check")
    conn = pq.PGconn.connect(conninfo.encode())
    try:
        if conn.status != pq.ConnStatus.OK:
            raise _replication_refused(dsn, user, conn.error_message.decode(errors="replace"))
        result = conn.exec_(b"IDENTIFY_SYSTEM")
        if result.status != pq.ExecStatus.TUPLES_OK:
            text = redact(conn.error_message.decode(errors="replace").strip())
            raise PreconditionError(f"{describe(dsn)}: IDENTIFY_SYSTEM failed: {text}",
                                    hint="the source must accept physical replication connections")  # fmt: skip
        value = result.get_value(0, 0)
        return value.decode() if value else ""
    finally:
        conn.finish()


def _replication_refused(dsn: str, user: str, error: str) -> Exception:
    where = describe(dsn)
    lines = [line for line in error.strip().splitlines() if line.strip()]
    text = redact(lines[-1].strip() if lines else "connection refused")
    lowered = error.lower()
    if "pg_hba.conf" in lowered:
        return PreconditionError(
            f"{where}: the source refuses replication connections from this host: {text}",
            hint=f"add 'host replication \"{user}\" <this host's address>/32 scram-sha-256' to the source's "
            "pg_hba.conf, then SELECT pg_reload_conf() on it; resume",
        )
    if "max_wal_senders" in lowered or "too many" in lowered:
        return PreconditionError(f"{where}: no free WAL sender: {text}",
                                 hint="raise max_wal_senders on the source (restart); resume")  # fmt: skip
    if "password" in lowered:
        return ConnectionFailure(f"{where}: replication login of {user!r} failed: {text}",
                                 hint="check the password in the DSN's passfile, PGPASSWORD or ~/.pgpass")  # fmt: skip
    return ConnectionFailure(f"{where}: replication connection failed: {text}",
                             hint="check that the source is reachable and accepts replication connections")  # fmt: skip


# -- the strategy ---------------------------------------------------------------------------------


class PhysicalStrategy(Strategy):
    name = "physical"

    def step_provision(self, run: AppRun) -> None:
        """Nothing to create yet: the target is the standby that ``copy`` clones from the source."""
        emit(run.sink, "log", f"{run.app.name}: the target is built by copy as a standby of the whole source")

    def step_copy(self, run: AppRun) -> None:
        preflight(run)
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            emit(run.sink, "step_progress", f"base backup {run.app.name}", step_id=run.step_id("copy"),
                 bytes=done, bytes_total=total, elapsed_seconds=round(elapsed, 1),
                 rate=round(done / elapsed) if elapsed > 0 else 0)  # fmt: skip

        handle = run.provider.provision_standby(run.plan, run.app, run.source_dsn, progress=progress)
        run.target = handle
        run.journal.update(lambda s: s.apps[run.app.name].target.update(
            conninfo=handle.conninfo, passfile=handle.passfile, app_conninfo=handle.app_conninfo))  # fmt: skip
        emit(run.sink, "log", f"{run.app.name}: standby {handle.cluster} streams from the source")

    def step_replicate(self, run: AppRun) -> None:
        """Wait until the standby is nearly caught up (a pre-gate only: the drain is exact)."""
        app = run.app.name
        below, lag = 0, 0
        deadline = time.monotonic() + REPLICATE_TIMEOUT
        silent_since: float | None = None
        with connect(run.source_dsn, dbname="postgres") as src, connect(run.target.conninfo) as dst:
            while True:
                source_lsn = _source_lsn(src)
                sample = _standby_sample(dst)
                if not sample.in_recovery:
                    raise StepFailed(f"the target of {app} was promoted before the fence",
                                     hint="execute --restart rebuilds the standby")  # fmt: skip
                lag = max(0, source_lsn - sample.replay_lsn)
                emit(run.sink, "step_progress", f"replicate {app}", step_id=run.step_id("replicate"),
                     lag_bytes=lag, receiver=sample.receiver)  # fmt: skip
                streaming = sample.receiver == "streaming"
                below = below + 1 if streaming and lag <= LAG_GATE_BYTES else 0
                if below >= LAG_GATE_SAMPLES:
                    break
                now = time.monotonic()
                silent_since = None if streaming else (silent_since or now)
                if silent_since is not None and now - silent_since > NOT_STREAMING_TIMEOUT:
                    raise StepFailed(
                        f"the standby of {app} has not streamed from the source for {NOT_STREAMING_TIMEOUT:.0f}s",
                        hint="see the target's server log; if the source removed WAL the standby needs, raise "
                        "wal_keep_size on the source and rebuild it with execute --restart",
                    )
                if now > deadline:
                    raise StepFailed(f"the standby of {app} is still {lag} bytes behind after "
                                     f"{REPLICATE_TIMEOUT:.0f}s", hint="execute --resume keeps waiting")  # fmt: skip
                run.wait(POLL_SECONDS)
        run.journal.update(lambda s: s.apps[app].facts.update(replicate_lag_bytes=lag))
        emit(run.sink, "log", f"{app}: standby caught up ({lag} bytes behind)")

    def step_drain(self, run: AppRun) -> None:
        """Wait until the standby replayed the fence LSN: every write acknowledged before the fence."""
        app = run.app.name
        fence_text = self._fence_lsn(run)
        fence_lsn = lsn_int(fence_text)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        with connect(run.target.conninfo) as dst:
            while True:
                sample = _standby_sample(dst)
                if not sample.in_recovery:
                    raise StepFailed(f"the target of {app} left recovery before the drain finished",
                                     hint="execute --restart rebuilds the standby")  # fmt: skip
                emit(run.sink, "step_progress", f"drain {app}", step_id=run.step_id("drain"),
                     lag_bytes=max(0, fence_lsn - sample.replay_lsn), fence_lsn=fence_text)  # fmt: skip
                if sample.replay_lsn >= fence_lsn:  # exact: no byte tolerance (notes §5.1)
                    break
                if time.monotonic() > deadline:
                    raise StepFailed(
                        f"the standby of {app} has not replayed up to the fence LSN {fence_text} within "
                        f"{DRAIN_TIMEOUT:.0f}s ({fence_lsn - sample.replay_lsn} bytes short)",
                        hint="the source stays fenced; check that the standby streams (its server log), then "
                        "execute --resume to wait again, or rollback",
                    )
                time.sleep(DRAIN_POLL_SECONDS)
        replayed = lsn_text(sample.replay_lsn)
        run.journal.update(lambda s: s.apps[app].facts.update(drained_lsn=replayed))
        emit(run.sink, "log", f"{app}: standby replayed past the fence LSN {fence_text}")

    def _fence_lsn(self, run: AppRun) -> str:
        """The source's WAL position after the fence, taken once and journaled (a rerun keeps it)."""
        app = run.app.name
        known = run.journal.app(app).facts.get("fence_lsn")
        if known:
            return str(known)
        with connect(run.source_dsn, dbname="postgres") as src:
            # a locally flushed commit flushes every WAL record before it, asynchronous commits included
            src.execute("SET synchronous_commit = local")
            src.execute("SELECT txid_current()")
            row = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        lsn = str(row[0]) if row else "0/0"
        run.journal.update(lambda s: s.apps[app].facts.update(fence_lsn=lsn))
        emit(run.sink, "log", f"{app}: fence LSN {lsn}")
        return lsn

    def step_promote(self, run: AppRun) -> None:
        """Promote (idempotent), keep the databases closed, record the ACLs cutover will restore."""
        app = run.app.name
        run.provider.promote(run.plan, run.app)
        # A provider may log in differently once promoted (CNPG applies its own superuser password then).
        target = run.provider.wait_ready(run.plan, run.app)
        run.target = target
        run.journal.update(lambda s: s.apps[app].target.update(
            conninfo=target.conninfo, passfile=target.passfile, app_conninfo=target.app_conninfo))  # fmt: skip
        _wait_promoted(target.conninfo, app)
        state = run.journal.app(app)
        for db in run.app.databases:
            record = state.fence.get(db.source)
            if record is None:
                raise StepFailed(f"no fence record for {db.source!r} of {app}", hint="execute --restart")
            # the clone replayed the fence: its ACL is the closed one; cutover restores the source's real one
            run.journal.update(lambda s, r=record, d=db.target: s.apps[app].target_fence.setdefault(d, r))
            fence.close_database(target.conninfo, db.target)
        self._restore_unlogged(run)
        notes = []
        if not _is_local(run.source_dsn):
            notes.append("the clone keeps the source's indexes: if the legacy server ran another OS or glibc "
                         "version than the target, REINDEX text indexes (collation order may differ)")  # fmt: skip
        run.journal.update(lambda s: s.apps[app].facts.update(promoted=True, notes=notes))
        emit(run.sink, "log", f"{app}: promoted {target.cluster}; every role, superusers included, keeps its "
             "source password (the clone carries the hashes) unless the provider manages it: rotate the superuser's "
             "after cutover")  # fmt: skip
        for note in notes:
            emit(run.sink, "log", f"{app}: warning: {note}", level="warning")

    def _restore_unlogged(self, run: AppRun) -> None:
        """WAL carries no unlogged table or sequence: the promoted clone has them empty or reset.

        Copied from the fenced source; a table that already holds rows was copied by an earlier attempt
        (each table loads in one transaction, and nothing else writes to the closed target).
        """
        for db in run.app.databases:
            with connect(run.source_dsn, dbname=db.source) as src:
                unlogged = {(r[0], r[1]) for r in src.execute(UNLOGGED_SQL)}
                tasks = [t for t in plan_tasks(src, ctid_ranges=False) if (t.schema, t.name) in unlogged]
            if not tasks:
                continue
            copier = TableCopier(run.source_dsn, run.target.conninfo, db.source, db.target, snapshot=None, jobs=1,
                                 fmt=run.options.copy_format, sink=run.sink, step_id=run.step_id("promote"))
            try:
                with connect(run.target.conninfo, dbname=db.target) as dst:
                    todo = [t for t in tasks if _is_empty(dst, t.schema, t.name)]
                for task in todo:
                    copier.copy(task)
            finally:
                copier.close()
            emit(run.sink, "log", f"{run.app.name}: copied {len(todo)} unlogged tables into {db.target} "
                 "(WAL does not carry them)")  # fmt: skip
        self.step_sequences(run)  # unlogged sequences restart after promotion; the others already match

    def step_drop_foreign(self, run: AppRun) -> None:
        """Drop the databases (and then roles) of other apps that the whole-instance clone brought."""
        app = run.app.name
        keep = {d.target for d in run.app.databases} | {"postgres"}
        with connect(run.target.conninfo, dbname="postgres") as conn:
            present = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            missing = sorted({d.target for d in run.app.databases} - present)
            if missing:
                raise StepFailed(f"database {missing[0]!r} of {app} is missing on the target",
                                 hint="the standby does not hold the app: execute --restart")  # fmt: skip
            for line in _detach_subscriptions(run.target.conninfo, conn, keep):
                emit(run.sink, "log", f"{app}: {line}")
            foreign = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> ALL(%s) ORDER BY 1",
                (sorted(keep),))]  # fmt: skip
            for name in foreign:
                _drop_database(conn, name)
                emit(run.sink, "log", f"{app}: dropped database {name!r} (not part of this app)")
            dropped, kept = self._drop_foreign_roles(run, conn)
        run.journal.update(lambda s: s.apps[app].facts.update(
            dropped_databases=sorted(set(s.apps[app].facts.get("dropped_databases", [])) | set(foreign)),
            dropped_roles=sorted(set(s.apps[app].facts.get("dropped_roles", [])) | set(dropped)),
            kept_roles=kept))  # fmt: skip
        if dropped:
            emit(run.sink, "log", f"{app}: dropped {len(dropped)} roles of other apps: {', '.join(dropped)}")
        for name, why in kept.items():
            emit(run.sink, "log", f"{app}: kept role {name!r}: {why}")

    def _drop_foreign_roles(self, run: AppRun, conn: psycopg.Connection[Any]) -> tuple[list[str], dict[str, str]]:
        state = run.journal.app(run.app.name)
        rows = [RoleRow(r[0], bool(r[1]), list(r[2] or []), list(r[3] or [])) for r in conn.execute(ROLES_SQL)]
        row = conn.execute("SELECT current_user").fetchone()
        login = str(row[0]) if row else ""
        candidates, kept = roles_to_drop(rows, {r.name for r in run.app.roles}, _acl_roles(conn, run, state), login)
        dropped = []
        for name in candidates:
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
                dropped.append(name)
            except psycopg.Error as exc:
                kept[name] = "DROP ROLE refused: " + redact(str(exc).strip().splitlines()[0])
        return dropped, {k: v for k, v in kept.items() if v != "app role"}


def _is_empty(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    query = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM ONLY {})").format(sql.Identifier(schema, name))
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


def _acl_roles(conn: psycopg.Connection[Any], run: AppRun, state: Any) -> set[str]:
    """Grantees, grantors and owners of the app databases' recorded pre-fence ACLs (cutover restores them)."""
    items: list[str] = []
    names: set[str] = set()
    for db in run.app.databases:
        record = state.fence.get(db.source) or {}
        items += record.get("acl") or []
        if record.get("owner"):
            names.add(str(record["owner"]))
    if items:
        rows = conn.execute("""SELECT DISTINCT r.rolname FROM aclexplode(%s::aclitem[]) a
                                 JOIN pg_roles r ON r.oid IN (a.grantee, a.grantor)""", (items,))  # fmt: skip
        names |= {r[0] for r in rows}
    return names


def _detach_subscriptions(conninfo: str, conn: psycopg.Connection[Any], keep: set[str]) -> list[str]:
    """Cut every cloned subscription loose from its publisher's slot; drop those of other apps' databases."""
    rows = conn.execute("SELECT s.subname, d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                        "ORDER BY 2, 1").fetchall()  # fmt: skip
    lines = [f"the clone carried {len(rows)} subscription(s): apply workers stay off on the target "
             "(max_logical_replication_workers = 0) until you raise it"] if rows else []  # fmt: skip
    for subname, dbname in rows:
        ident = sql.Identifier(subname)
        with connect(conninfo, dbname=dbname) as db:
            db.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
            db.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
            if dbname not in keep:
                db.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
                lines.append(f"dropped subscription {subname!r} of database {dbname!r}")
            else:
                lines.append(f"warning: subscription {subname!r} in {dbname!r} is disabled and detached from its "
                             "slot (the legacy subscriber keeps using it): give it a slot of its own, then enable "
                             "it and set max_logical_replication_workers")  # fmt: skip
    return lines


def _drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    ident = sql.Identifier(name)
    if conn.info.server_version >= 130000:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        return
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))


def _wait_promoted(conninfo: str, app: str) -> None:
    deadline = time.monotonic() + PROMOTE_TIMEOUT
    with connect(conninfo) as conn:
        while True:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"the target of {app} is still in recovery {PROMOTE_TIMEOUT:.0f}s after promote",
                                 hint="see the target's server log, then execute --resume")  # fmt: skip
            time.sleep(0.1)
