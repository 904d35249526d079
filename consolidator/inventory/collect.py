"""Run an inventory: server facts, per-database catalogs in parallel, then the activity window.

Read-only throughout (every session sets ``default_transaction_read_only``). Catalog work happens
before the sampling window so our own queries do not inflate the activity counters.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import psycopg

from consolidator import __version__
from consolidator.errors import ConsolidatorError, PreconditionError
from consolidator.events import EventSink, emit
from consolidator.inventory import activity as act
from consolidator.inventory.catalog import collect_catalog, prepare_session
from consolidator.inventory.checks import check_inventory
from consolidator.inventory.findings import sort_findings
from consolidator.inventory.model import DatabaseInfo, Inventory, RoleInfo
from consolidator.inventory.server import (
    collect_roles,
    collect_server,
    database_acl_roles,
    database_settings,
    list_databases,
    role_closure,
)
from consolidator.pg.connect import connect, parse_dsn, redact


@dataclass
class InventoryOptions:
    sample_seconds: float = 10.0
    jobs: int = 4  # parallel catalog connections: bounded so a busy legacy server is not swamped
    exclude: list[str] = field(default_factory=list)


class DatabaseVanished(Exception):
    """The database was dropped between listing and inspecting it."""


def run_inventory(dsn: str, options: InventoryOptions | None = None, sink: EventSink | None = None) -> Inventory:
    options = options or InventoryOptions()
    if options.sample_seconds < 0:
        raise ConsolidatorError("--sample-seconds must be ≥ 0")
    params = parse_dsn(dsn)
    start_db = params.get("dbname") or "postgres"
    with connect(dsn, dbname=start_db) as conn:
        prepare_session(conn)
        server = collect_server(conn, conn.info.host, int(conn.info.port))
        emit(sink, "log", f"connected to PostgreSQL {server.version} at {server.host}:{server.port}")
        _require_visibility(server)
        listed = [(db, ok) for db, ok in list_databases(conn, server.version_num) if db.name not in options.exclude]
        roles = collect_roles(conn, server.is_superuser)
        acl_roles = database_acl_roles(conn)
        settings = database_settings(conn)
    databases = [db for db, _ in listed]
    for db in databases:
        db.settings = settings.get(db.name, [])
    reachable = [db for db, ok in listed if ok]
    for db, ok in listed:
        if not ok:
            db.limitations.append("no CONNECT privilege: tables, roles and activity of this database not seen")
    role_needs = _collect_catalogs(dsn, reachable, options.jobs, sink)
    sessions_users = _sample_activity(dsn, server, databases, options.sample_seconds, sink)
    inv = Inventory(
        collected_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        tool_version=__version__,
        server=server,
        databases=databases,
        roles=roles,
        sample_seconds=options.sample_seconds,
    )
    _assign_roles(inv, role_needs, acl_roles, sessions_users)
    inv.findings = sort_findings(check_inventory(inv))
    for db in inv.databases:
        db.findings = sort_findings(db.findings)
    return inv


def _require_visibility(server: Any) -> None:
    if server.is_superuser or not any("pg_monitor" in text for text in server.limitations):
        return
    raise PreconditionError(
        f"role {server.user!r} can see neither other sessions nor database sizes",
        hint=f"GRANT pg_monitor TO {server.user} (or run the inventory as a superuser)",
    )


def _collect_catalogs(
    dsn: str, databases: list[DatabaseInfo], jobs: int, sink: EventSink | None
) -> dict[str, dict[str, list[str]]]:
    """Inspect every database with at most ``jobs`` connections at once."""
    needs: dict[str, dict[str, list[str]]] = {}
    started = time.monotonic()

    def one(db: DatabaseInfo) -> tuple[DatabaseInfo, Any]:
        try:
            with connect(dsn, dbname=db.name) as conn:
                return db, collect_catalog(conn, db)
        except PreconditionError as exc:
            if "does not exist" in exc.message:
                raise DatabaseVanished(db.name) from None
            raise
        except psycopg.errors.InsufficientPrivilege as exc:
            return db, str(exc).strip().splitlines()[0]
        except psycopg.errors.LockNotAvailable as exc:
            return db, f"catalog locked: {str(exc).strip().splitlines()[0]}"

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="consolidator-inv") as pool:
        futures = [pool.submit(one, db) for db in databases]
        for fut in as_completed(futures):
            try:
                db, res = fut.result()
            except DatabaseVanished as gone:
                for other in futures:
                    other.cancel()
                raise PreconditionError(
                    f"database {gone.args[0]!r} was dropped while the inventory ran",
                    hint=f"run the inventory again, or leave it out with --exclude {gone.args[0]!r}",
                ) from None
            if isinstance(res, str):
                db.limitations.append(redact(res))
            else:
                needs[db.name] = res
            done += 1
            emit(sink, "step_progress", f"inventoried {db.name}", step_id="inventory/catalog",
                 done=done, total=len(databases), elapsed_seconds=time.monotonic() - started)  # fmt: skip
    return needs


def _sample_activity(
    dsn: str, server: Any, databases: list[DatabaseInfo], seconds: float, sink: EventSink | None
) -> dict[str, set[str]]:
    """Counter readings at both ends of the window and session samples in between."""
    pgss_db = next(
        (db.name for db in databases if any(e.name == "pg_stat_statements" for e in db.extensions)), None
    )
    pgss_schema = None
    if pgss_db is not None:
        db = next(d for d in databases if d.name == pgss_db)
        pgss_schema = next(e.schema for e in db.extensions if e.name == "pg_stat_statements")
    conn_db = pgss_db or parse_dsn(dsn).get("dbname") or "postgres"
    with connect(dsn, dbname=conn_db, application_name="consolidator-sampler") as conn:
        prepare_session(conn)
        schema_ident = psycopg.sql.Identifier(pgss_schema).as_string(conn) if pgss_schema else None
        start = act.read_counters(conn, server.version_num, schema_ident)
        with connect(dsn, dbname=conn_db, application_name="consolidator-sampler") as sconn:
            sampler = act.SessionSampler(sconn, interval=min(1.0, max(0.2, seconds / 10)))
            sampler.sample_once()
            if seconds > 0:
                emit(sink, "step_start", f"sampling activity for {seconds:g} s", step_id="inventory/sample",
                     seconds=seconds)  # fmt: skip
                sampler.start()
                time.sleep(seconds)
                sampler.stop()
        end = act.read_counters(conn, server.version_num, schema_ident)
    if sampler.error:
        server.limitations.append(f"session sampling stopped early: {sampler.error}")
    activities: dict[str, Any] = {}
    for db in databases:
        ws = db.activity.working_set_bytes
        db.activity = act.derive_activity(db.name, start, end, sampler.stats.get(db.name))
        db.activity.working_set_bytes = ws
        activities[db.name] = db.activity
    server.wal_bytes_per_s = act.attribute_wal(activities, start, end)
    if seconds <= 0:
        server.limitations.append("no sampling window (--sample-seconds 0): rates are zero")
    return {name: stats.users for name, stats in sampler.stats.items()}


def _assign_roles(
    inv: Inventory,
    catalog_needs: dict[str, dict[str, list[str]]],
    acl_roles: dict[str, dict[str, list[str]]],
    session_users: dict[str, set[str]],
) -> None:
    """Which roles each database needs (owners, grantees, default ACLs, memberships, users seen)."""
    by_name: dict[str, RoleInfo] = {r.name: r for r in inv.roles}
    for db in inv.databases:
        reasons: dict[str, set[str]] = {}
        reasons.setdefault(db.owner, set()).add("owns the database")
        for source in (catalog_needs.get(db.name, {}), acl_roles.get(db.name, {})):
            for role, why in source.items():
                reasons.setdefault(role, set()).update(why)
        for user in session_users.get(db.name, set()):
            reasons.setdefault(user, set()).add("connected during sampling")
        direct = {r for r in reasons if r in by_name}
        needed = role_closure(direct, inv.roles)
        superusers = {r for r in needed if by_name[r].superuser and "connected during sampling" not in
                      reasons.get(r, set())}  # fmt: skip
        db.roles = sorted(needed - superusers)
        for role in db.roles:
            why = sorted(reasons.get(role, set())) or ["membership"]
            by_name[role].needed_by[db.name] = why
