"""Per-table fingerprints (verification.md §2–§3): row count plus the sum of 64-bit row hashes per side.

SUM, never XOR: duplicate rows cancel under XOR. Columns are listed by name in one common order, so
a target whose physical column order differs (dump/restore after dropped columns) still matches.
Each side scans its tables in parallel, largest first; mismatching tables go to :mod:`.drill`.

A row's hash combines one seeded 64-bit hash per column. Types whose own hash function tells apart
every value their text form does are hashed natively (3–5× cheaper than rendering the row as text);
every other type is hashed through its text form under the pinned session settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from consolidator.errors import Interrupted
from consolidator.events import EventSink, emit
from consolidator.inventory.sql import USER_NS, not_extension_member
from consolidator.verify.model import DIFFERS, EXTRA, MATCH, MISSING, SKIPPED, TableResult
from consolidator.verify.session import HashMethod, Side

FLOAT_SEND = {"double precision": "float8send", "real": "float4send"}

# Base type → its 64-bit hash (the type's hash opclass function: what hash partitioning uses, so it is
# stable across majors). Left out on purpose, hashed as text instead: numeric (1.5 and 1.50 hash
# alike), interval ('1 day' = '24 hours'), float4/8 (-0 = 0), jsonb (numbers inside compare as
# numeric), enums, oid and reg* types (their hash is of an OID, which differs between clusters),
# date (no callable hash). Text types hash their bytes under "C", whatever the column's collation;
# character(n) hashes without its trailing blanks, as the type compares.
NATIVE_HASH = {
    "smallint": "hashint2extended({v}, {s})",
    "integer": "hashint4extended({v}, {s})",
    "bigint": "hashint8extended({v}, {s})",
    "boolean": "hashint4extended({v}::integer, {s})",
    "text": 'hashtextextended({v} COLLATE "C", {s})',
    "character varying": 'hashtextextended({v} COLLATE "C", {s})',
    "character": 'hashbpcharextended({v} COLLATE "C", {s})',
    "uuid": "uuid_hash_extended({v}, {s})",
    "timestamp without time zone": "timestamp_hash_extended({v}, {s})",
    "timestamp with time zone": "timestamp_hash_extended({v}::timestamp, {s})",  # exact under TimeZone UTC
    "time without time zone": "time_hash_extended({v}, {s})",
}
_MASK64 = (1 << 64) - 1

# Leaf tables, partitioned parents (reported as skipped), matviews and foreign tables; extension
# members only when they are configuration tables (pg_extension_config_dump), which hold user data.
_RELATIONS = sql.SQL(
    """
SELECT c.oid, n.nspname, c.relname, c.oid::regclass::text, c.relkind::text, c.relpersistence::text, c.relispopulated,
       c.relispartition, CASE WHEN c.relkind IN ('r', 'm') THEN pg_table_size(c.oid) ELSE 0 END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm', 'f') AND {ns}
   AND ({not_ext} OR EXISTS (SELECT 1 FROM pg_extension e WHERE c.oid = ANY (e.extconfig)))
"""
).format(ns=sql.SQL(USER_NS), not_ext=sql.SQL(not_extension_member("pg_class", "c.oid")))

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL),
       a.attcollation <> 0
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = ANY (%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum
"""

# The drill-down key: the primary key, else the narrowest unique, non-partial index on NOT NULL columns.
_KEYS = """
SELECT DISTINCT ON (i.indrelid) i.indrelid,
       array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
  FROM pg_index i
 WHERE i.indrelid = ANY (%s::oid[]) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
   AND i.indexprs IS NULL
   AND (i.indisprimary OR NOT EXISTS (
        SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE k.ord <= i.indnkeyatts AND NOT a.attnotnull))
 ORDER BY i.indrelid, i.indisprimary DESC, i.indnkeyatts, i.indexrelid
"""

KIND_NAMES = {"r": "table", "p": "partitioned", "m": "matview", "f": "foreign"}


@dataclass
class Column:
    name: str
    base_type: str
    collatable: bool


@dataclass
class Relation:
    """A relation as one side sees it."""

    schema: str
    name: str
    display: str  # regclass text under search_path = pg_catalog: schema-qualified, quoted as needed
    relkind: str
    persistence: str
    populated: bool
    partition: bool
    size: int
    columns: list[Column] = field(default_factory=list)
    key: list[str] = field(default_factory=list)


@dataclass
class Pair:
    """A relation present on both sides, with what both sides hash: common columns in source order."""

    source: Relation
    target: Relation
    columns: list[Column]
    key: list[str]
    binary_floats: bool
    result: TableResult
    columns_differ: bool = False

    def rel(self) -> sql.Composable:
        return sql.Identifier(self.source.schema, self.source.name)

    def col(self, c: Column) -> sql.Composable:
        ident = sql.Identifier("t", c.name)
        fn = FLOAT_SEND.get(c.base_type) if self.binary_floats else None
        return sql.SQL("{}({})").format(sql.SQL(fn), ident) if fn else ident

    def row_text(self) -> sql.Composable:
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(self.col(c) for c in self.columns))

    def row_hash(self) -> sql.Composable:
        """One 64-bit hash of the row: per-column hashes with a seed per position, combined by XOR
        (within a row only; rows are summed). A NULL gets its own constant per position."""
        if not self.columns:
            return sql.SQL("0::bigint")
        parts = []
        for i, c in enumerate(self.columns):
            seed, null = sql.Literal(i + 1), sql.Literal(_signed((0x9E3779B97F4A7C15 * (i + 1)) & _MASK64))
            template = NATIVE_HASH.get(c.base_type)
            if template is None or (self.binary_floats and c.base_type in FLOAT_SEND):
                template = 'hashtextextended(({v})::text COLLATE "C", {s})'
            value = sql.SQL(template).format(v=self.col(c), s=seed)
            parts.append(sql.SQL("coalesce({}, {})").format(value, null))
        return sql.SQL(" # ").join(parts)

    def key_text(self) -> sql.Composable:
        """The key as text, ``(42)`` or ``(7,abc)``; the whole row for tables without a usable key."""
        if not self.key:
            return self.row_text()
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier("t", k) for k in self.key))

    def key_order(self) -> sql.Composable:
        by_name = {c.name: c for c in self.columns}
        return sql.SQL(", ").join(
            sql.SQL("{} COLLATE \"C\"").format(sql.Identifier("t", k)) if by_name[k].collatable
            else sql.Identifier("t", k)
            for k in self.key
        )  # fmt: skip


def list_relations(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], Relation]:
    """Relations with data on one side (connection with ``search_path = pg_catalog``)."""
    rows = conn.execute(_RELATIONS).fetchall()
    by_oid = {
        int(r[0]): Relation(schema=r[1], name=r[2], display=r[3], relkind=r[4], persistence=r[5],
                            populated=bool(r[6]), partition=bool(r[7]), size=int(r[8] or 0))
        for r in rows
    }  # fmt: skip
    oids = list(by_oid)
    for relid, name, base_type, collatable in conn.execute(_COLUMNS, [oids]):
        by_oid[int(relid)].columns.append(Column(name, base_type, bool(collatable)))
    for relid, key in conn.execute(_KEYS, [oids]):
        by_oid[int(relid)].key = list(key)
    return {(r.schema, r.name): r for r in by_oid.values()}


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def fingerprint_sql(pair: Pair, method: HashMethod) -> sql.Composable:
    """Count and hash sum(s). Per-column hashes by default; with ``md5`` (the sides' encodings differ)
    the row's text converted to UTF-8, digested once per row: ``unnest(ARRAY[…])`` keeps the planner
    from inlining the digest into both sums and still allows a parallel scan."""
    if method.native:
        return sql.SQL("SELECT count(*), coalesce(sum({h}), 0)::text FROM ONLY {rel} AS t").format(
            h=pair.row_hash(), rel=pair.rel()
        )
    d = sql.SQL("r.d")
    return sql.SQL(
        "SELECT count(*), coalesce(sum({h0}), 0)::text, coalesce(sum({h1}), 0)::text"
        " FROM (SELECT unnest(ARRAY[{digest}]) AS d FROM ONLY {rel} AS t) AS r"
    ).format(h0=method.part(d, 0), h1=method.part(d, 1), digest=method.digest(pair.row_text()), rel=pair.rel())


def _fingerprint(query: sql.Composable) -> Callable[[psycopg.Connection[Any]], tuple[int, str, float]]:
    def run(conn: psycopg.Connection[Any]) -> tuple[int, str, float]:
        started = time.monotonic()
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0]), ":".join(str(v) for v in row[1:]), time.monotonic() - started

    return run


def pair_relations(
    source: dict[tuple[str, str], Relation],
    target: dict[tuple[str, str], Relation],
    *,
    binary_floats: bool,
    expected: frozenset[str] = frozenset(),
) -> tuple[list[TableResult], list[Pair]]:
    """Every relation's result shell, and the pairs that need a scan (largest first)."""
    results: list[TableResult] = []
    pairs: list[Pair] = []
    for key in sorted(source.keys() | target.keys()):
        src, tgt = source.get(key), target.get(key)
        rel = src or tgt
        assert rel is not None
        kind = "partition" if rel.partition and rel.relkind == "r" else KIND_NAMES[rel.relkind]
        result = TableResult(schema=rel.schema, name=rel.name, kind=kind, bytes=src.size if src else 0,
                             object=rel.display)
        results.append(result)
        if tgt is None or src is None:
            result.status = MISSING if tgt is None else EXTRA
            result.detail = "missing on target" if tgt is None else "not on the source"
            continue
        reason = _skip_reason(src, tgt, expected)
        if reason:
            result.status, result.detail = (DIFFERS if reason.startswith("!") else SKIPPED), reason.lstrip("!")
            continue
        names = {c.name for c in tgt.columns}
        columns = [c for c in src.columns if c.name in names]
        only_src = [c.name for c in src.columns if c.name not in names]
        only_tgt = sorted(names - {c.name for c in src.columns})
        if only_src or only_tgt:
            result.detail = f"columns differ (only on source: {only_src or '-'}, only on target: {only_tgt or '-'})"
        key = src.key if src.key and all(k in names for k in src.key) else []
        result.key = list(key)
        pairs.append(Pair(src, tgt, columns, key, binary_floats, result, bool(only_src or only_tgt)))
    pairs.sort(key=lambda p: (-max(p.source.size, p.target.size), p.source.schema, p.source.name))
    return results, pairs


def _skip_reason(src: Relation, tgt: Relation, expected: frozenset[str]) -> str:
    """Why a pair is not scanned ('' = scan it); a leading '!' marks a difference."""
    if src.relkind == "p":
        return "partitioned table: its rows are verified per partition"
    if src.relkind == "f":
        return "foreign table: its data lives on the remote server"
    if src.relkind != tgt.relkind:
        return f"!{KIND_NAMES[src.relkind]} on source, {KIND_NAMES[tgt.relkind]} on target"
    if "data" in expected:
        return "data differs by design for this strategy"
    if src.persistence == "u" and "unlogged_data" in expected:
        return "unlogged table: not carried by this strategy"
    if src.relkind == "m" and not src.populated:
        return "materialized view not populated on the source"
    if src.relkind == "m" and not tgt.populated:
        return "!not populated on target (run REFRESH MATERIALIZED VIEW on the target)"
    return ""


def scan_pairs(
    source: Side,
    target: Side,
    pairs: list[Pair],
    *,
    method: HashMethod,
    sink: EventSink | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Tier 1 on both sides at once, largest tables first; fill each pair's result.
    ``stop`` set (the caller failed meanwhile) → :class:`Interrupted`, and the sides cancel their scans."""
    pending: dict[Future[Any], tuple[Pair, str]] = {}
    for pair in pairs:  # queue order = size order: the longest scans start first
        query = fingerprint_sql(pair, method)
        what = f"table {pair.result.object}"
        pending[source.submit(what, _fingerprint(query))] = (pair, "source")
        pending[target.submit(what, _fingerprint(query))] = (pair, "target")
    total, total_bytes = len(pairs), sum(p.result.bytes for p in pairs)
    done_sides: dict[int, int] = {}
    done = done_bytes = 0
    emit(sink, "step_progress", f"verifying {total} tables", done=0, total=total, bytes_done=0,
         bytes_total=total_bytes)  # fmt: skip
    while pending:
        finished, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
        if stop is not None and stop.is_set():
            raise Interrupted("verification stopped: the catalog comparison beside it failed")
        for fut in finished:
            pair, side = pending.pop(fut)
            rows, digest, seconds = fut.result()  # raises the translated error
            res = pair.result
            if side == "source":
                res.rows_source, res.hash_source = rows, digest
            else:
                res.rows_target, res.hash_target = rows, digest
            res.seconds = max(res.seconds, round(seconds, 3))
            done_sides[id(pair)] = done_sides.get(id(pair), 0) + 1
            if done_sides[id(pair)] < 2:
                continue
            equal = res.rows_source == res.rows_target and res.hash_source == res.hash_target
            res.status = MATCH if equal and not pair.columns_differ else DIFFERS
            done, done_bytes = done + 1, done_bytes + res.bytes
            emit(sink, "step_progress", f"verified {res.object}: {res.status}", done=done, total=total,
                 bytes_done=done_bytes, bytes_total=total_bytes, table=res.object, status=res.status)  # fmt: skip
