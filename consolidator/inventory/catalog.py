"""Per-database catalog inventory: one short read-only session per database.

Runs in a worker thread per database (bounded pool in ``collect.py``); fills the database record
and returns, separately, which roles the database needs and why.
"""

from __future__ import annotations

from typing import Any

import psycopg

from consolidator.inventory import sql
from consolidator.inventory.model import (
    CrossDatabaseRef,
    DatabaseInfo,
    ExtensionInfo,
    RelationSummary,
    SequenceInfo,
    TableInfo,
)

SESSION_SETUP = (
    "SET search_path = pg_catalog",
    "SET default_transaction_read_only = on",
    "SET lock_timeout = '5s'",
    "SET statement_timeout = '300s'",
)


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Pin settings that keep the inventory read-only and its output stable."""
    for stmt in SESSION_SETUP:
        conn.execute(stmt)


def collect_catalog(conn: psycopg.Connection[Any], db: DatabaseInfo) -> dict[str, list[str]]:
    """Fill ``db`` from its own catalogs (connection already on it); return role → why it is needed."""
    prepare_session(conn)
    _relations(conn, db)
    _sequences(conn, db)
    db.extensions = [ExtensionInfo(name=r[0], version=r[1], schema=r[2]) for r in conn.execute(sql.EXTENSIONS)]
    db.schemas = [r[0] for r in conn.execute(sql.SCHEMAS)]
    row = conn.execute(sql.COUNTS).fetchone()
    assert row is not None
    db.function_count, db.trigger_count, db.view_count = int(row[0]), int(row[1]), int(row[2])
    db.large_objects_count = int(row[3])
    db.large_objects_bytes = int(row[4]) if db.large_objects_count else 0
    db.superuser_owned = [f"{kind} {name}" for kind, name in conn.execute(sql.SUPERUSER_OWNED)]
    _cross_refs(conn, db)
    db.catalog_digest, db.catalog_counts = read_digest(conn)
    ws = conn.execute(sql.WORKING_SET).fetchone()
    db.activity.working_set_bytes = int(ws[0]) if ws and ws[1] else None
    return {name: list(why) for name, why in conn.execute(sql.ROLE_NEEDS)}


def read_digest(conn: psycopg.Connection[Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Per-category DDL digest and object counts, in a fixed category order (stable plan diffs)."""
    rows = {category: (int(count), str(digest)[:16]) for category, count, digest in conn.execute(sql.DIGEST)}
    digest = {c: rows.get(c, (0, "-"))[1] for c in sql.DIGEST_CATEGORIES}
    counts = {c: rows.get(c, (0, "-"))[0] for c in sql.DIGEST_CATEGORIES}
    return digest, counts


def _relations(conn: psycopg.Connection[Any], db: DatabaseInfo) -> None:
    populated = {(r[0], r[1]): (bool(r[2]), int(r[3])) for r in conn.execute(sql.MATVIEW_POPULATED)}
    for r in conn.execute(sql.TABLES):
        schema, name, kind = r[0], r[1], r[2]
        if kind == "f":
            db.foreign_tables.append(f"{schema}.{name}")
            continue
        if kind == "m":
            is_populated, total = populated.get((schema, name), (True, 0))
            db.materialized_views.append(
                RelationSummary(schema=schema, name=name, owner=r[4], total_bytes=total, populated=is_populated)
            )
            continue
        db.tables.append(
            TableInfo(
                schema=schema, name=name, kind=kind, persistence=r[3], owner=r[4], rows_estimate=int(r[5]),
                heap_bytes=int(r[6]), index_bytes=int(r[7]), toast_bytes=int(r[8]), total_bytes=int(r[9]),
                has_primary_key=bool(r[10]), replica_identity=r[11], has_identity_index=bool(r[12]),
                partition_of=r[13],
            )  # fmt: skip
        )


def _sequences(conn: psycopg.Connection[Any], db: DatabaseInfo) -> None:
    for r in conn.execute(sql.SEQUENCES):
        db.sequences.append(
            SequenceInfo(
                schema=r[0], name=r[1], owner=r[2], data_type=r[3],
                last_value=int(r[4]) if r[4] is not None else None, readable=bool(r[5]),
            )  # fmt: skip
        )


def _cross_refs(conn: psycopg.Connection[Any], db: DatabaseInfo) -> None:
    for name, fdw, target in conn.execute(sql.FOREIGN_SERVERS):
        kind = fdw if fdw in ("postgres_fdw", "dblink_fdw") else "foreign_server"
        db.cross_database_refs.append(CrossDatabaseRef(kind=kind, name=name, target=target or "(no host/dbname)"))
    if any(e.name == "dblink" for e in db.extensions):
        callers = [r[0] for r in conn.execute(sql.DBLINK_CALLERS)]
        for fn in callers or ["dblink extension"]:
            db.cross_database_refs.append(
                CrossDatabaseRef(kind="dblink", name=fn, target="connection string in code or at run time")
            )
