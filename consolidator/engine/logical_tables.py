"""Which tables of a source database the logical strategy publishes and which it copies at cutover.

The source catalog read (leaf tables with persistence, replica identity and partition root) and the
split of it, kept apart from the strategy's steps because it is pure classification: no objects are
created here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

# Ordinary tables of the database (partitions included), with what logical replication needs to
# know: persistence, replica identity, and the top of their partition tree (published via root).
LEAF_TABLES = """
SELECT n.nspname, c.relname, c.relpersistence, c.relreplident,
       CASE c.relreplident
         WHEN 'f' THEN true
         WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
         WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
         ELSE false
       END AS has_identity,
       (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = c.oid AND i.indisreplident) AS identity_index,
       tn.nspname, t.relname,
       pg_relation_size(c.oid) + coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = {top} JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
 ORDER BY 1, 2
"""


@dataclass(frozen=True)
class LeafTable:
    schema: str
    name: str
    persistence: str
    replident: str
    has_identity: bool
    identity_index: str | None
    top: tuple[str, str]  # the relation that is published (itself, or its partition root)
    bytes: int


@dataclass
class TableSplit:
    """Which relations the publication carries and which are copied at cutover."""

    published: list[tuple[str, str]] = field(default_factory=list)
    at_cutover: list[tuple[str, str]] = field(default_factory=list)
    need_full: list[LeafTable] = field(default_factory=list)
    bytes: dict[tuple[str, str], int] = field(default_factory=dict)


def read_leaf_tables(conn: Any) -> list[LeafTable]:
    """Every ordinary table; partitions point at their root when the source publishes via root (13+)."""
    major = conn.info.server_version // 10000
    top = sql.SQL("coalesce(pg_partition_root(c.oid), c.oid)" if major >= 13 else "c.oid")
    return [
        LeafTable(r[0], r[1], r[2], r[3], bool(r[4]), r[5], (r[6], r[7]), int(r[8]))
        for r in conn.execute(sql.SQL(LEAF_TABLES).format(top=top))
    ]


def split_tables(tables: list[LeafTable], source_db: str, copy_at_cutover: set[str]) -> TableSplit:
    """A partition tree is one unit: unlogged or listed for cutover → copied; else published.

    Published tables without replica identity are returned in ``need_full``.
    """
    trees: dict[tuple[str, str], list[LeafTable]] = {}
    for table in tables:
        trees.setdefault(table.top, []).append(table)
    split = TableSplit()
    for top, leaves in sorted(trees.items()):
        listed = any(f"{source_db}.{t.schema}.{t.name}" in copy_at_cutover for t in leaves) or \
            f"{source_db}.{top[0]}.{top[1]}" in copy_at_cutover  # fmt: skip
        if listed or any(t.persistence != "p" for t in leaves):
            split.at_cutover.extend((t.schema, t.name) for t in leaves)
            continue
        split.published.append(top)
        split.bytes[top] = sum(t.bytes for t in leaves)
        split.need_full.extend(t for t in leaves if not t.has_identity)
    return split
