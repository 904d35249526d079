"""Fencing: stop an app's writes on one database by revoking CONNECT and ending its sessions.

The database ACL is recorded before the change so the fence can be undone exactly (rollback), and
the same mechanism keeps a target closed to app roles until cutover opens it. Superusers (the
tool itself) are not affected. Fence SQL runs from the ``postgres`` database, never the fenced one.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg import sql

from consolidator.errors import StepFailed
from consolidator.pg.connect import connect

ACL_QUERY = "SELECT d.oid, pg_get_userbyid(d.datdba), d.datacl::text[] FROM pg_database d WHERE d.datname = %s"


def _acl(conn: Any, dbname: str) -> tuple[int, str, list[str] | None]:
    row = conn.execute(ACL_QUERY, (dbname,)).fetchone()
    if row is None:
        raise StepFailed(f"database {dbname!r} not found while fencing", hint="check the plan's databases")
    return int(row[0]), row[1], row[2]


def _grantee_names(conn: Any, oid: int) -> list[str]:
    """Roles holding CONNECT explicitly (names as stored, not quoted)."""
    rows = conn.execute(
        """SELECT r.rolname FROM pg_database d,
                  aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a JOIN pg_roles r ON r.oid = a.grantee
            WHERE d.oid = %s AND a.privilege_type = 'CONNECT'""",
        (oid,),
    ).fetchall()
    return sorted({r[0] for r in rows})


def read_acl(admin_dsn: str, dbname: str) -> dict[str, Any]:
    """What :func:`restore_acl` needs to undo a close: journal it *before* closing."""
    with connect(admin_dsn, dbname="postgres") as conn:
        _, owner, acl = _acl(conn, dbname)
        return {"acl": acl, "owner": owner}


def close_database(admin_dsn: str, dbname: str, *, terminate: bool = True, timeout: float = 30) -> dict[str, Any]:
    """Revoke CONNECT from PUBLIC and every non-superuser; end their sessions. Returns the ACL it found."""
    with connect(admin_dsn, dbname="postgres") as conn:
        oid, owner, acl = _acl(conn, dbname)
        record = {"acl": acl, "owner": owner}
        db = sql.Identifier(dbname)
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db))
        for role in _grantee_names(conn, oid):
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(db, sql.Identifier(role)))
        if terminate:
            _terminate(conn, dbname, timeout)
        return record


def _terminate(conn: Any, dbname: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    query = """SELECT pid FROM pg_stat_activity a
                WHERE a.datname = %s AND a.pid <> pg_backend_pid()
                  AND a.backend_type = 'client backend'
                  AND NOT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = a.usename), false)"""
    while True:
        pids = [r[0] for r in conn.execute(query, (dbname,)).fetchall()]
        if not pids:
            break
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if time.monotonic() > deadline:
            raise StepFailed(f"sessions on {dbname!r} did not end within {timeout:.0f}s",
                             hint="stop the application, then resume")  # fmt: skip
        time.sleep(0.05)
    prepared = conn.execute("SELECT gid FROM pg_prepared_xacts WHERE database = %s", (dbname,)).fetchall()
    if prepared:
        raise StepFailed(
            f"database {dbname!r} has {len(prepared)} prepared transactions ({prepared[0][0]}, …)",
            hint="COMMIT PREPARED or ROLLBACK PREPARED them, then resume",
        )


def restore_acl(admin_dsn: str, dbname: str, record: dict[str, Any]) -> None:
    """Put the database ACL back exactly as recorded (NULL ACL = the defaults)."""
    with connect(admin_dsn, dbname="postgres") as conn:
        conn.execute(
            "UPDATE pg_catalog.pg_database SET datacl = %s::aclitem[] WHERE datname = %s",
            (record.get("acl"), dbname),
        )


def is_closed(admin_dsn: str, dbname: str) -> bool:
    """True when no non-superuser role may connect."""
    with connect(admin_dsn, dbname="postgres") as conn:
        row = conn.execute(
            """SELECT count(*) FROM pg_roles r WHERE NOT r.rolsuper AND r.rolcanlogin
                  AND has_database_privilege(r.oid, (SELECT oid FROM pg_database WHERE datname = %s), 'CONNECT')""",
            (dbname,),
        ).fetchone()
        return bool(row) and int(row[0]) == 0
