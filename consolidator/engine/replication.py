"""Replication objects of the logical strategy: names, slots, subscriptions, publications, identities.

Shared by the strategy's steps (``engine/logical.py``) and by ``finalize`` / ``rollback``, which must
find and remove the same objects without the strategy's state: every object is named after the
cluster and the database's position in the plan, so a resumed run, ``finalize`` and ``rollback`` find
them again without the journal. What we change on the source besides creating objects (``REPLICA
IDENTITY FULL``) is recorded twice — in the journal and in the publication's comment — so it can
always be reverted. The subscription reaches the source with a ``passfile=`` the target server
process can read: a password never appears in a plan, a log line, an argv or ``pg_subscription``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.engine.run import AppRun
from consolidator.errors import ConnectionFailure, PreconditionError, StepFailed
from consolidator.pg.connect import connect, parse_dsn, pgpass_line, redact
from consolidator.pg.instance import server_os_user
from consolidator.plan.model import App, Plan

SLOT_RELEASE_SECONDS = 10.0
SOURCE_PASSFILE = "source-pgpass"
NAME_LIMIT = 63
IDENTITY_SQL = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL"}

SUBSCRIPTION = """
SELECT s.oid, s.subenabled, s.subslotname, s.subpublications
  FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
 WHERE s.subname = %s AND d.datname = current_database()
"""

SUBSCRIPTION_TABLES = """
SELECT n.nspname, c.relname, sr.srsubstate
  FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE sr.srsubid = %s
"""


# -- names ---------------------------------------------------------------------------------------


def object_name(app: App, index: int) -> str:
    """``consolidator_<cluster>_<n>``: publication, slot and subscription of the app's n-th database.

    Slot names allow only lower-case letters, digits and underscores, hence the folding.
    """
    suffix = f"_{index}"
    cluster = re.sub(r"[^a-z0-9_]", "_", app.cluster_name.lower())
    return ("consolidator_" + cluster)[: NAME_LIMIT - len(suffix)] + suffix


# -- credentials for the subscription ---------------------------------------------------------


def write_source_passfile(directory: Path, host: str, port: str, user: str, password: str) -> Path:
    """A 0600 pgpass owned by the target's server OS user (the server process connects, not us)."""
    path = directory / SOURCE_PASSFILE
    pg_host = "localhost" if host.startswith("/") else host
    line = pgpass_line(pg_host, port, "*", user, password)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SOURCE_PASSFILE}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(line)
        os_user = server_os_user()
        if os_user:
            shutil.chown(tmp, user=os_user)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def subscription_conninfo(run: AppRun, source_db: str) -> str:
    """The source as the target server reaches it (the provider decides the address and how the
    server finds the password): no password in it, ever."""
    keep = {k: v for k, v in parse_dsn(run.source_dsn).items()
            if k not in ("password", "passfile", "dbname", "application_name", "service")}  # fmt: skip
    with connect(run.source_dsn, dbname=source_db) as conn:
        info = conn.info
        host, port, user, password = info.host, str(info.port), info.user, info.password
    access = run.provider.source_access(run.plan, run.app, host=host, port=port, user=user, password=password)
    return make_conninfo(**{**keep, "host": host, "port": port, "user": user, **access, "dbname": source_db})


# -- replication objects -----------------------------------------------------------------------


def slot_info(conn: Any, name: str) -> tuple[Any, ...] | None:
    """(database, plugin, wal_status, active_pid) of a slot, or None."""
    status = sql.SQL("wal_status" if conn.info.server_version >= 130000 else "NULL::text")
    query = sql.SQL("SELECT database, plugin, {}, active_pid FROM pg_replication_slots WHERE slot_name = %s")
    return conn.execute(query.format(status), (name,)).fetchone()


def drop_slot(conn: Any, name: str, timeout: float = SLOT_RELEASE_SECONDS) -> bool:
    """Drop a slot once no walsender holds it (terminated after ``timeout``); False when absent."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (name,)).fetchone()
        if row is None:
            return False
        if row[0] is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                return True
            except (psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
                pass
        elif time.monotonic() > deadline:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        time.sleep(0.1)


def drop_sync_slots(conn: Any, subscription_oid: int) -> None:
    """Table-sync slots a subscription dropped mid-copy leaves on the source (they retain WAL)."""
    rows = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s",
                        (f"pg\\_{subscription_oid}\\_sync\\_%",)).fetchall()  # fmt: skip
    for (name,) in rows:
        drop_slot(conn, name)


def drop_subscription(conn: Any, name: str) -> int | None:
    """Disable, detach from its slot (no source needed), drop. Returns the dropped subscription's oid."""
    row = conn.execute(SUBSCRIPTION, (name,)).fetchone()
    if row is None:
        return None
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    return int(row[0])


def binary_safe(conn: Any, tables: list[tuple[str, str]]) -> bool:
    """Binary transfer breaks on arrays/composites of user types (OIDs differ) and types without send."""
    if not tables:
        return True
    rels = [sql.Identifier(s, n).as_string(conn) for s, n in tables]
    row = conn.execute(
        """SELECT count(*) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
            WHERE a.attrelid = ANY(%s::regclass[]) AND a.attnum > 0 AND NOT a.attisdropped
              AND (t.typsend = 0 OR t.typtype = 'c' OR (e.oid IS NOT NULL AND (e.oid >= 16384 OR e.typtype = 'c')))""",
        (rels,),
    ).fetchone()
    return bool(row) and int(row[0]) == 0


def subscription_options(source_major: int, target_major: int, binary: bool) -> sql.Composable:
    options = [sql.SQL("create_slot = false"), sql.SQL("copy_data = true"), sql.SQL("enabled = true")]
    if source_major >= 14 and target_major >= 14:
        if binary:
            options.append(sql.SQL("binary = true"))
        options.append(sql.SQL("streaming = parallel" if target_major >= 16 else "streaming = on"))
    return sql.SQL(", ").join(options)


# -- replica identities ------------------------------------------------------------------------


def identity_sql(schema: str, name: str, replident: str, index: str | None) -> sql.Composable:
    table = sql.Identifier(schema, name)
    if replident == "i" and index:
        return sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}").format(table, sql.Identifier(index))
    return sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(table, sql.SQL(IDENTITY_SQL.get(replident, "DEFAULT")))


def publication_record(conn: Any, publication: str) -> dict[str, Any]:
    """What an earlier run wrote into the publication's comment (identities it changed)."""
    row = conn.execute("SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = %s",
                       (publication,)).fetchone()  # fmt: skip
    if not row or not row[0]:
        return {}
    try:
        data = json.loads(row[0])
    except ValueError:
        return {}
    return data.get("consolidator", {}) if isinstance(data, dict) else {}


def merge_identities(*sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first record per table: the identity before we ever changed it."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for records in sources:
        for rec in records:
            out.setdefault((rec["schema"], rec["name"]), rec)
    return [out[k] for k in sorted(out)]


def restore_identities(conn: Any, records: list[dict[str, Any]]) -> list[str]:
    """Put back identities we set to FULL (only where they are still FULL); returns the tables."""
    restored = []
    for rec in records:
        row = conn.execute(
            "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (rec["schema"], rec["name"])
        ).fetchone()  # fmt: skip
        if row is None or row[0] != "f" or rec.get("replident") == "f":
            continue
        index = rec.get("index")
        if rec.get("replident") == "i" and index:
            found = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s", (rec["schema"], index)
            ).fetchone()  # fmt: skip
            index = index if found else None
        conn.execute(identity_sql(rec["schema"], rec["name"], rec.get("replident", "d"), index))
        restored.append(f"{rec['schema']}.{rec['name']}")
    return restored


# -- progress queries --------------------------------------------------------------------------


def subscription_state(conn: Any, name: str) -> tuple[int | None, bool, dict[tuple[str, str], str], int, int]:
    """(oid, enabled, table → srsubstate, bytes being copied now, errors so far) on the target."""
    row = conn.execute(SUBSCRIPTION, (name,)).fetchone()
    if row is None:
        return None, False, {}, 0, 0
    oid, enabled = int(row[0]), bool(row[1])
    tables = {(s, n): st for s, n, st in conn.execute(SUBSCRIPTION_TABLES, (oid,))}
    copying = 0
    errors = 0
    if conn.info.server_version >= 140000:
        copying = int(conn.execute("SELECT coalesce(sum(bytes_processed), 0) FROM pg_stat_progress_copy "
                                   "WHERE datname = current_database()").fetchone()[0])  # fmt: skip
    if conn.info.server_version >= 150000:
        err = conn.execute("SELECT apply_error_count + sync_error_count FROM pg_stat_subscription_stats "
                           "WHERE subid = %s", (oid,)).fetchone()  # fmt: skip
        errors = int(err[0]) if err else 0
    return oid, enabled, tables, copying, errors


def slot_positions(source_dsn: str, slots: list[str]) -> dict[str, tuple[str | None, int | None]]:
    """slot → (confirmed_flush_lsn, lag in bytes behind the current WAL position)."""
    with connect(source_dsn, dbname="postgres") as conn:
        rows = conn.execute(
            "SELECT slot_name, confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
            "FROM pg_replication_slots WHERE slot_name = ANY(%s)", (slots,)
        ).fetchall()  # fmt: skip
    return {r[0]: (r[1], int(r[2]) if r[2] is not None else None) for r in rows}


# -- publication -------------------------------------------------------------------------------


def create_publication_sql(conn: Any, name: str, tables: list[tuple[str, str]]) -> sql.Composable:
    """``CREATE PUBLICATION`` for these tables (``ONLY`` unless partitioned), published via root on 13+."""
    via_root = conn.info.server_version >= 130000
    stmt = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name))
    if tables:
        kinds = dict(((s, n), k) for s, n, k in conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p')"))  # fmt: skip
        items = [sql.SQL("{}{}").format(sql.SQL("" if kinds.get(t) == "p" else "ONLY "), sql.Identifier(*t))
                 for t in tables]  # fmt: skip
        stmt = sql.SQL("{} FOR TABLE {}").format(stmt, sql.SQL(", ").join(items))
    if via_root:
        stmt = sql.SQL("{} WITH (publish_via_partition_root = true)").format(stmt)
    return stmt


# -- finalize / rollback -------------------------------------------------------------------------


def _remove_replication(plan: Plan, app: App, source_dsn: str, target_conninfo: str | None,
                        facts: dict[str, Any] | None) -> list[str]:  # fmt: skip
    """Drop subscriptions (target), slots and publications (source), restore identities. Idempotent."""
    done: list[str] = []
    recorded = (facts or {}).get("databases", {})
    for index, db in enumerate(app.databases):
        name = object_name(app, index)
        with connect(source_dsn, dbname=db.source) as conn:
            identities = merge_identities(recorded.get(db.source, {}).get("replica_identity", []),
                                          publication_record(conn, name).get("replica_identity", []))  # fmt: skip
            old_oid = _remove_subscription(target_conninfo, db.target, name, identities, done)
            if old_oid is not None:
                drop_sync_slots(conn, old_oid)
            if drop_slot(conn, name):
                done.append(f"dropped replication slot {name} on the source")
            for table in restore_identities(conn, identities):
                done.append(f"restored the replica identity of {db.source}.{table} on the source")
            if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
                done.append(f"dropped publication {name} on the source")
    if target_conninfo:
        passfile = conninfo_to_dict(target_conninfo).get("passfile")
        if passfile:
            (Path(str(passfile)).parent / SOURCE_PASSFILE).unlink(missing_ok=True)
    return done


def _remove_subscription(target_conninfo: str | None, target_db: str, name: str, identities: list[dict[str, Any]],
                         done: list[str]) -> int | None:  # fmt: skip
    """Target side of the removal; the target (or its database) may already be gone."""
    if not target_conninfo:
        return None
    try:
        with connect(target_conninfo, dbname=target_db) as conn:
            old_oid = drop_subscription(conn, name)
            for table in restore_identities(conn, identities):
                done.append(f"restored the replica identity of {target_db}.{table} on the target")
    except (PreconditionError, ConnectionFailure):
        return None
    if old_oid is not None:
        done.append(f"dropped subscription {name} on the target")
    return old_oid


def finalize_logical(plan: Plan, app: App, source_dsn: str, target_conninfo: str | None, *,
                     facts: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
    """After cutover: remove subscriptions, slots (they retain WAL on the shared source!) and
    publications, and put back replica identities we changed. Returns what was done, for the log.

    ``facts`` is the app's journal ``facts["logical"]`` when available; without it the identities
    are read from the publication comments.
    """
    try:
        return _remove_replication(plan, app, source_dsn, target_conninfo, facts)
    except psycopg.Error as exc:
        raise StepFailed(f"finalize of {app.name}: {redact(str(exc).strip().splitlines()[0])}",
                         hint="fix the cause and run finalize again (it is idempotent)") from None  # fmt: skip


def rollback_logical(plan: Plan, app: App, source_dsn: str, target_conninfo: str | None, *,
                     facts: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
    """Make the source clean again: the same removal as finalize (the target keeps its data but stops
    following the source). A later execute must redo the initial copy: reset the steps from
    ``publication`` on and drop ``facts["logical"]`` (the fence LSN is stale once the source is open)."""
    try:
        return _remove_replication(plan, app, source_dsn, target_conninfo, facts)
    except psycopg.Error as exc:
        raise StepFailed(f"rollback of {app.name}: {redact(str(exc).strip().splitlines()[0])}",
                         hint="fix the cause and run rollback again (it is idempotent)") from None  # fmt: skip
