"""Per-database catalog inventory: one short read-only session per database.

Runs in a worker thread per database (bounded pool in ``collect.py``); returns what it saw and,
separately, which roles the database needs and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class CatalogResult:
    tables: list[TableInfo] = field(default_factory=list)
    materialized_views: list[RelationSummary] = field(default_factory=list)
    foreign_tables: list[str] = field(default_factory=list)
    sequences: list[SequenceInfo] = field(default_factory=list)
    extensions: list[ExtensionInfo] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    function_count: int = 0
    trigger_count: int = 0
    view_count: int = 0
    large_objects_count: int = 0
    large_objects_bytes: int = 0
    superuser_owned: list[str] = field(default_factory=list)
    role_needs: dict[str, list[str]] = field(default_factory=dict)
    cross_database_refs: list[CrossDatabaseRef] = field(default_factory=list)
    catalog_digest: dict[str, str] = field(default_factory=dict)
    catalog_counts: dict[str, int] = field(default_factory=dict)
    working_set_bytes: int | None = None
    limitations: list[str] = field(default_factory=list)


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Pin settings that keep the inventory read-only and its output stable."""
    for stmt in SESSION_SETUP:
        conn.execute(stmt)


def collect_catalog(conn: psycopg.Connection[Any], dbname: str) -> CatalogResult:
    """Everything about one database that its own catalogs tell (connection already on ``dbname``)."""
    prepare_session(conn)
    res = CatalogResult()
    _relations(conn, res)
    _sequences(conn, res)
    res.extensions = [ExtensionInfo(name=r[0], version=r[1], schema=r[2]) for r in conn.execute(sql.EXTENSIONS)]
    res.schemas = [r[0] for r in conn.execute(sql.SCHEMAS)]
    row = conn.execute(sql.COUNTS).fetchone()
    assert row is not None
    res.function_count, res.trigger_count, res.view_count = int(row[0]), int(row[1]), int(row[2])
    res.large_objects_count = int(row[3])
    res.large_objects_bytes = int(row[4]) if res.large_objects_count else 0
    res.superuser_owned = [f"{kind} {name}" for kind, name in conn.execute(sql.SUPERUSER_OWNED)]
    res.role_needs = {name: list(why) for name, why in conn.execute(sql.ROLE_NEEDS)}
    _cross_refs(conn, res)
    res.catalog_digest, res.catalog_counts = read_digest(conn)
    ws = conn.execute(sql.WORKING_SET).fetchone()
    res.working_set_bytes = int(ws[0]) if ws and ws[1] else None
    return res


def read_digest(conn: psycopg.Connection[Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Per-category DDL digest and object counts, in a fixed category order (stable plan diffs)."""
    rows = {category: (int(count), str(digest)[:16]) for category, count, digest in conn.execute(sql.DIGEST)}
    digest = {c: rows.get(c, (0, "-"))[1] for c in sql.DIGEST_CATEGORIES}
    counts = {c: rows.get(c, (0, "-"))[0] for c in sql.DIGEST_CATEGORIES}
    return digest, counts


def _relations(conn: psycopg.Connection[Any], res: CatalogResult) -> None:
    populated = {(r[0], r[1]): (bool(r[2]), int(r[3])) for r in conn.execute(sql.MATVIEW_POPULATED)}
    for r in conn.execute(sql.TABLES):
        schema, name, kind = r[0], r[1], r[2]
        if kind == "f":
            res.foreign_tables.append(f"{schema}.{name}")
            continue
        if kind == "m":
            is_populated, total = populated.get((schema, name), (True, 0))
            res.materialized_views.append(
                RelationSummary(schema=schema, name=name, owner=r[4], total_bytes=total, populated=is_populated)
            )
            continue
        res.tables.append(
            TableInfo(
                schema=schema, name=name, kind=kind, persistence=r[3], owner=r[4], rows_estimate=int(r[5]),
                heap_bytes=int(r[6]), index_bytes=int(r[7]), toast_bytes=int(r[8]), total_bytes=int(r[9]),
                has_primary_key=bool(r[10]), replica_identity=r[11], has_identity_index=bool(r[12]),
                partition_of=r[13],
            )  # fmt: skip
        )


def _sequences(conn: psycopg.Connection[Any], res: CatalogResult) -> None:
    for r in conn.execute(sql.SEQUENCES):
        res.sequences.append(
            SequenceInfo(
                schema=r[0], name=r[1], owner=r[2], data_type=r[3],
                last_value=int(r[4]) if r[4] is not None else None, readable=bool(r[5]),
            )  # fmt: skip
        )


def _cross_refs(conn: psycopg.Connection[Any], res: CatalogResult) -> None:
    for name, fdw, target in conn.execute(sql.FOREIGN_SERVERS):
        kind = fdw if fdw in ("postgres_fdw", "dblink_fdw") else "foreign_server"
        res.cross_database_refs.append(CrossDatabaseRef(kind=kind, name=name, target=target or "(no host/dbname)"))
    if any(e.name == "dblink" for e in res.extensions):
        callers = [r[0] for r in conn.execute(sql.DBLINK_CALLERS)]
        for fn in callers or ["dblink extension"]:
            res.cross_database_refs.append(
                CrossDatabaseRef(kind="dblink", name=fn, target="connection string in code or at run time")
            )


def apply_catalog(db: DatabaseInfo, res: CatalogResult) -> None:
    """Copy a catalog result into the database record."""
    db.tables = res.tables
    db.materialized_views = res.materialized_views
    db.foreign_tables = res.foreign_tables
    db.sequences = res.sequences
    db.extensions = res.extensions
    db.schemas = res.schemas
    db.function_count = res.function_count
    db.trigger_count = res.trigger_count
    db.view_count = res.view_count
    db.large_objects_count = res.large_objects_count
    db.large_objects_bytes = res.large_objects_bytes
    db.superuser_owned = res.superuser_owned
    db.cross_database_refs = res.cross_database_refs
    db.catalog_digest = res.catalog_digest
    db.catalog_counts = res.catalog_counts
    db.activity.working_set_bytes = res.working_set_bytes
    db.limitations.extend(res.limitations)
