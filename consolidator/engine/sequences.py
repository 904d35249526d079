"""Sequences: read every value on the (fenced) source, set it on the target.

``last_value`` is NULL both for unused sequences and for sequences the role cannot read, so the
privilege is checked first: an unreadable sequence is an error, never a silent reset.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from consolidator.errors import StepFailed

READ = """
SELECT n.nspname, c.relname, has_sequence_privilege(c.oid, 'SELECT'),
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid) END,
       s.seqstart
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1, 2
"""


def read_sequences(conn: Any) -> list[tuple[str, str, int, bool]]:
    """(schema, name, value, is_called) for every sequence; refuses unreadable ones."""
    out = []
    for schema, name, readable, last, start in conn.execute(READ):
        if not readable:
            raise StepFailed(f"sequence {schema}.{name} is not readable on the source",
                             hint="run as a superuser or GRANT SELECT on it")  # fmt: skip
        out.append((schema, name, int(last if last is not None else start), last is not None))
    return out


def set_sequences(conn: Any, values: list[tuple[str, str, int, bool]]) -> int:
    """setval() each sequence in one transaction; returns how many were set."""
    with conn.transaction():
        for schema, name, value, called in values:
            target = sql.Identifier(schema, name).as_string(conn)
            conn.execute("SELECT pg_catalog.setval(%s::regclass, %s, %s)", (target, value, called))
    return len(values)
