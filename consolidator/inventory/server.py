"""Server-wide facts read over one connection: version, settings, databases, roles."""

from __future__ import annotations

from typing import Any

import psycopg

from consolidator.inventory.model import DatabaseInfo, RoleInfo, ServerInfo

MIGRATION_SETTINGS = (
    "wal_level", "max_replication_slots", "max_wal_senders", "max_connections", "shared_buffers",
    "password_encryption", "ssl", "max_wal_size", "min_wal_size", "wal_keep_size", "max_slot_wal_keep_size",
    "shared_preload_libraries", "track_io_timing", "max_worker_processes", "work_mem",
    "maintenance_work_mem", "effective_cache_size", "server_encoding", "lc_collate", "data_checksums",
    "archive_mode", "hot_standby", "listen_addresses", "block_size",
)  # fmt: skip


def collect_server(conn: psycopg.Connection[Any], host: str, port: int) -> ServerInfo:
    row = conn.execute(
        """SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                  pg_is_in_recovery(), current_user,
                  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                  pg_postmaster_start_time()::text,
                  pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
                  pg_has_role(current_user, 'pg_monitor', 'USAGE')"""
    ).fetchone()
    assert row is not None
    version, version_num, in_recovery, user, is_super, started, read_stats, monitor = row
    info = ServerInfo(
        host=host, port=port, user=user, version=str(version).split(" ")[0], version_num=version_num,
        major=version_num // 10000, system_identifier="", in_recovery=in_recovery, is_superuser=bool(is_super),
        postmaster_start=started,
    )  # fmt: skip
    try:
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
        info.system_identifier = sysid[0] if sysid else ""
    except psycopg.errors.InsufficientPrivilege:
        info.limitations.append("system identifier (pg_control_system) not readable")
    names = list(MIGRATION_SETTINGS)
    info.settings = {
        name: setting
        for name, setting in conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name", (names,)
        )
    }
    info.extensions_available = [r[0] for r in conn.execute("SELECT name FROM pg_available_extensions ORDER BY 1")]
    slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
    info.replication_slots_used = int(slots[0]) if slots else 0
    senders = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
    info.wal_senders_used = int(senders[0]) if senders else 0
    info.pg_stat_statements = "pg_stat_statements" in info.settings.get("shared_preload_libraries", "")
    if not (is_super or read_stats or monitor):
        info.limitations.append("role is not a member of pg_monitor/pg_read_all_stats: other sessions hidden")
    return info


def list_databases(conn: psycopg.Connection[Any], version_num: int) -> list[tuple[DatabaseInfo, bool]]:
    """Every non-template database that accepts connections, and whether we may connect to it."""
    provider = "d.datlocprovider::text" if version_num >= 150000 else "'libc'"
    if version_num >= 170000:
        icu = "d.datlocale"
    elif version_num >= 150000:
        icu = "d.daticulocale"
    else:
        icu = "NULL::text"
    rows = conn.execute(
        f"""SELECT d.oid::bigint, d.datname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
                   {provider}, {icu}, pg_get_userbyid(d.datdba), d.datconnlimit, d.datallowconn,
                   has_database_privilege(d.oid, 'CONNECT'),
                   CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                          OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
                        THEN pg_database_size(d.oid) END
              FROM pg_database d
             WHERE NOT d.datistemplate AND d.datallowconn
             ORDER BY d.datname"""  # noqa: S608 - fixed expressions only
    ).fetchall()
    result = []
    for r in rows:
        providers = {"c": "libc", "i": "icu", "b": "builtin"}
        db = DatabaseInfo(
            name=r[1], oid=int(r[0]), encoding=r[2], collate=r[3] or "", ctype=r[4] or "",
            locale_provider=providers.get(r[5], r[5]), icu_locale=r[6], owner=r[7], connection_limit=r[8],
            allow_connections=r[9], size_bytes=int(r[11]) if r[11] is not None else 0,
        )  # fmt: skip
        if r[11] is None:
            db.limitations.append("size not readable (no CONNECT privilege)")
        result.append((db, bool(r[10])))
    return result


def database_acl_roles(conn: psycopg.Connection[Any]) -> dict[str, dict[str, list[str]]]:
    """database → role → reasons, from database ACLs and ``ALTER ROLE … IN DATABASE … SET``."""
    out: dict[str, dict[str, list[str]]] = {}
    for dbname, role in conn.execute(
        """SELECT d.datname, r.rolname FROM pg_database d, aclexplode(d.datacl) a
             JOIN pg_roles r ON r.oid = a.grantee GROUP BY 1, 2"""
    ):
        out.setdefault(dbname, {}).setdefault(role, []).append("granted on the database")
    for dbname, role in conn.execute(
        """SELECT d.datname, r.rolname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
             JOIN pg_roles r ON r.oid = s.setrole"""
    ):
        out.setdefault(dbname, {}).setdefault(role, []).append("has settings in the database")
    return out


def database_settings(conn: psycopg.Connection[Any]) -> dict[str, list[dict[str, str]]]:
    """``ALTER DATABASE … SET`` and ``ALTER ROLE … IN DATABASE … SET`` per database."""
    out: dict[str, list[dict[str, str]]] = {}
    for dbname, role, setting in conn.execute(
        """SELECT d.datname, coalesce(r.rolname, '*'), unnest(s.setconfig)
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
             LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2, 3"""
    ):
        out.setdefault(dbname, []).append({"role": role, "setting": setting})
    return out


def collect_roles(conn: psycopg.Connection[Any], is_superuser: bool) -> list[RoleInfo]:
    """Every non-predefined role with attributes, memberships, settings and password hash *type*."""
    roles: dict[str, RoleInfo] = {}
    for r in conn.execute(
        """SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                  r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
                  ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                         WHERE m.member = r.oid ORDER BY 1),
                  coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                             WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}')
             FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1"""
    ):
        roles[r[0]] = RoleInfo(
            name=r[0], superuser=r[1], inherit=r[2], createrole=r[3], createdb=r[4], login=r[5],
            replication=r[6], bypassrls=r[7], connection_limit=r[8], valid_until=r[9],
            member_of=list(r[10]), settings=list(r[11]),
        )  # fmt: skip
    if is_superuser:
        # Only the hash *type* ever leaves the server, never the hash.
        for name, kind in conn.execute(
            """SELECT rolname, CASE WHEN rolpassword IS NULL THEN 'none'
                                    WHEN rolpassword LIKE 'SCRAM-SHA-256$%%' THEN 'scram'
                                    WHEN rolpassword ~ '^md5[0-9a-f]{32}$' THEN 'md5'
                                    ELSE 'plain' END
                 FROM pg_authid WHERE rolname !~ '^pg_'"""
        ):
            if name in roles:
                roles[name].password_type = kind
    return list(roles.values())


def role_closure(direct: set[str], roles: list[RoleInfo]) -> set[str]:
    """Roles needed once memberships count.

    Upwards: the groups of every needed role (their privileges flow down). Downwards: the members
    of needed roles (typically the login roles apps use). A member's *other* groups are not pulled
    in: they belong to other apps.
    """
    by_name = {r.name: r for r in roles}
    members: dict[str, set[str]] = {}
    for r in roles:
        for group in r.member_of:
            members.setdefault(group, set()).add(r.name)

    def closure(start: set[str], step: Any) -> set[str]:
        seen = set(start)
        frontier = list(start)
        while frontier:
            for other in step(frontier.pop()):
                if other in by_name and other not in seen:
                    seen.add(other)
                    frontier.append(other)
        return seen

    up = closure({n for n in direct if n in by_name}, lambda n: by_name[n].member_of)
    return closure(up, lambda n: members.get(n, set()))
