"""Verify one target database against its source: catalogs, globals, then every table's data.

Called by the migration engine while the source is fenced, and by ``consolidator verify``. The
source coordinator session stays open in a REPEATABLE READ transaction for the whole run: the
catalogs are read in it and, with ``use_snapshot``, every table worker imports its exported
snapshot, so the whole source side is one point in time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from consolidator.errors import ConfigError, PreconditionError
from consolidator.events import EventSink, emit
from consolidator.pg.connect import connect, describe, with_database
from consolidator.verify.catalog import SideCtx, compare_catalog
from consolidator.verify.drill import drill_down
from consolidator.verify.model import CATEGORIES, DIFFERS, DatabaseReport, TableResult
from consolidator.verify.objects import large_objects, matview_checks, sequence_values, volatile_matviews
from consolidator.verify.session import PINNED, HashMethod, Side, choose_hash, translate
from consolidator.verify.tables import Relation, list_relations, pair_relations, scan_pairs

MIN_SERVER_VERSION = 110000  # hashtextextended, prokind, indnkeyatts


def verify_database(
    source_dsn: str,
    target_dsn: str,
    *,
    source_db: str,
    target_db: str,
    roles: list[str],
    owner_map: Mapping[str, str] | None = None,
    jobs: int = 4,
    sink: EventSink | None = None,
    expected: Iterable[str] = frozenset(),
    use_snapshot: bool = True,
    database_acls: Mapping[str, list[str] | None] | None = None,
) -> DatabaseReport:
    """Compare ``target_db`` on ``target_dsn`` with ``source_db`` on ``source_dsn``.

    ``roles``: the app's roles (source names) whose attributes, memberships, settings and password
    types are compared. ``owner_map``: source role → target role, applied to every owner and grantee
    read on the source. ``expected``: categories (:data:`~consolidator.verify.model.CATEGORIES`) that
    differ by design for the strategy; their differences are reported as ``skipped``. ``jobs``: table
    scans running at once per side. The source must be quiescent (fenced) or the result is void.
    ``database_acls``: ``{"source"|"target": aclitem[] text}`` recorded before a fence or a close,
    compared instead of the live database ACL of that side.
    """
    wanted = frozenset(expected)
    unknown = sorted(wanted - set(CATEGORIES))
    if unknown:
        raise ConfigError(f"unknown verification categories: {', '.join(unknown)}",
                          hint=f"use some of: {', '.join(CATEGORIES)}")  # fmt: skip
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    mapping = dict(owner_map or {})
    started = time.monotonic()
    src_info, tgt_info = with_database(source_dsn, source_db), with_database(target_dsn, target_db)
    emit(sink, "step_progress", f"verifying {source_db} → {target_db}", source_db=source_db, target_db=target_db,
         phase="start")  # fmt: skip
    with ExitStack() as stack:
        src = connect(src_info)
        stack.callback(src.close)
        tgt = connect(tgt_info)
        stack.callback(tgt.close)
        src_ver, src_enc = _server(src, "source", src_info)
        tgt_ver, tgt_enc = _server(tgt, "target", tgt_info)
        method = choose_hash(src_enc, tgt_enc)
        report = DatabaseReport(source_db=source_db, target_db=target_db, source_version=str(src_ver),
                                target_version=str(tgt_ver), hash_method=method.name)  # fmt: skip
        src_ctx = SideCtx(src, src_ver // 10000, list(roles), lambda r: mapping.get(r, r))
        tgt_ctx = SideCtx(tgt, tgt_ver // 10000, [mapping.get(r, r) for r in roles], lambda r: r)
        for side, ctx in (("source", src_ctx), ("target", tgt_ctx)):
            if database_acls is not None and side in database_acls:
                ctx.database_acl, ctx.override_database_acl = database_acls[side], True
        try:
            report.snapshot = _begin(src, export=use_snapshot)
            _begin(tgt, export=False)
        except psycopg.Error as exc:
            raise _catalog_error(exc, src, tgt, src_info, tgt_info) from None
        # The table scans start now and run while the catalogs are compared on the coordinator sessions.
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-tables"))
        stop = threading.Event()
        stack.callback(stop.set)  # runs first on the way out: an error below cancels the scans
        tables = pool.submit(compare_tables, src_info, tgt_info, jobs=jobs, snapshot=report.snapshot, method=method,
                             sink=sink, expected=wanted, stop=stop)  # fmt: skip
        try:
            emit(sink, "step_progress", "comparing catalogs and globals", phase="catalog")
            report.checks = compare_catalog(src_ctx, tgt_ctx, wanted)
            report.checks += sequence_values(src_ctx, tgt_ctx, wanted)
            report.checks += large_objects(src_ctx, tgt_ctx, wanted)
            volatile = volatile_matviews(src_ctx)
        except psycopg.Error as exc:
            raise _catalog_error(exc, src, tgt, src_info, tgt_info) from None
        results = tables.result()
        report.tables = [r for r in results if r.kind != "matview"]
        report.checks += matview_checks([r for r in results if r.kind == "matview"], volatile, wanted)
    report.seconds = round(time.monotonic() - started, 3)
    emit(sink, "log", report.summary(), "info" if report.ok else "warning", ok=report.ok, seconds=report.seconds,
         differences=len(report.differences()))  # fmt: skip
    return report


def _server(conn: psycopg.Connection[Any], label: str, conninfo: str) -> tuple[int, str]:
    """Server version number and database encoding; refuse servers without hashtextextended."""
    version, encoding = _version_encoding(conn)
    if version < MIN_SERVER_VERSION:
        raise PreconditionError(
            f"{label} {describe(conninfo)} runs PostgreSQL {version // 10000}; verification needs 11 or later",
            hint="verify against a copy on PostgreSQL 11+ (row hashes use hashtextextended)",
        )
    return version, encoding


def _begin(conn: psycopg.Connection[Any], *, export: bool) -> str | None:
    """Open the coordinator transaction (pinned settings); export its snapshot when asked."""
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(PINNED)
    if not export:
        return None
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    return str(row[0]) if row else None


def _catalog_error(
    exc: psycopg.Error, src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], src_info: str, tgt_info: str
) -> Exception:
    """Name the side whose session failed (the one left in an aborted or broken state)."""
    failed_target = tgt.broken or tgt.info.transaction_status == TransactionStatus.INERROR
    failed_source = src.broken or src.info.transaction_status == TransactionStatus.INERROR
    where = f"target {describe(tgt_info)}" if failed_target and not failed_source else f"source {describe(src_info)}"
    return translate(exc, "the catalogs", where)


def compare_tables(
    source_conninfo: str,
    target_conninfo: str,
    *,
    jobs: int = 4,
    snapshot: str | None = None,
    method: HashMethod | None = None,
    sink: EventSink | None = None,
    expected: frozenset[str] = frozenset(),
    binary_floats: bool | None = None,
    stop: threading.Event | None = None,
) -> list[TableResult]:
    """Data only: Tier-1 fingerprint of every table on both sides, drill-down where they differ.

    ``snapshot``: a snapshot exported on the source by a session the caller keeps open; the relation
    list and every scan of the source then see exactly that point in time. ``binary_floats``: hash
    float4/float8 columns in binary form; by default only when one side is older than PostgreSQL 12,
    whose text output of the same double differs. ``stop``: set by the caller to cancel the scans.
    """
    with Side("source", source_conninfo, jobs, snapshot) as s_side, Side("target", target_conninfo, jobs) as t_side:
        src_future = s_side.submit("the relation list", _describe_side)
        src_ver, src_enc, src_rels = src_future.result()
        tgt_ver, tgt_enc, tgt_rels = t_side.submit("the relation list", _describe_side).result()
        method = method or choose_hash(src_enc, tgt_enc)
        if binary_floats is None:
            binary_floats = min(src_ver, tgt_ver) < 120000
        results, pairs = pair_relations(src_rels, tgt_rels, binary_floats=binary_floats, expected=expected)
        scan_pairs(s_side, t_side, pairs, method=method, sink=sink, stop=stop)
        for pair in pairs:
            res = pair.result
            if res.status == DIFFERS and (res.rows_source, res.hash_source) != (res.rows_target, res.hash_target):
                emit(sink, "step_progress", f"narrowing down differences in {res.object}", table=res.object,
                     phase="drill-down")  # fmt: skip
                drill_down(s_side, t_side, pair, method)
    return results


def _describe_side(conn: psycopg.Connection[Any]) -> tuple[int, str, dict[tuple[str, str], Relation]]:
    return (*_version_encoding(conn), list_relations(conn))


def _version_encoding(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int, pg_encoding_to_char(d.encoding) "
        "FROM pg_catalog.pg_database d WHERE d.datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])
