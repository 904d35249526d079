"""Large objects: copied with their OIDs, owners, ACLs and comments (logical replication skips them)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

CHUNK = 1 << 20


def copy_large_objects(src: Any, dst: Any) -> tuple[int, int]:
    """Copy every large object from ``src`` to ``dst`` (same OIDs). Returns (count, bytes).

    Idempotent: an object already on the target is replaced.
    """
    rows = src.execute(
        "SELECT l.oid, pg_get_userbyid(l.lomowner), l.lomacl::text[], obj_description(l.oid, 'pg_largeobject') "
        "FROM pg_largeobject_metadata l ORDER BY l.oid"
    ).fetchall()
    total = 0
    with dst.transaction():
        for oid, owner, acl, comment in rows:
            dst.execute("SELECT lo_unlink(%s) FROM pg_largeobject_metadata WHERE oid = %s", (oid, oid))
            dst.execute("SELECT lo_create(%s)", (oid,))
            offset = 0
            while True:
                chunk = src.execute("SELECT lo_get(%s, %s, %s)", (oid, offset, CHUNK)).fetchone()[0]
                if not chunk:
                    break
                dst.execute("SELECT lo_put(%s, %s, %s)", (oid, offset, chunk))
                offset += len(chunk)
                total += len(chunk)
                if len(chunk) < CHUNK:
                    break
            dst.execute(sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(sql.Literal(oid), sql.Identifier(owner)))
            if acl is not None:
                dst.execute("UPDATE pg_catalog.pg_largeobject_metadata SET lomacl = %s::aclitem[] WHERE oid = %s",
                            (acl, oid))  # fmt: skip
            if comment is not None:
                dst.execute(sql.SQL("COMMENT ON LARGE OBJECT {} IS {}").format(sql.Literal(oid), sql.Literal(comment)))
    return len(rows), total
