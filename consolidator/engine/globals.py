"""Give a target server exactly the roles and database shells an app needs, as they are on the source.

CloudNativePG's microservice import loses roles, grants, role/database settings and comments
(notes/cnpg.md §3.2). This module copies the cluster-global part itself: roles with their attributes,
the *same* password hashes, memberships (with PostgreSQL 16's INHERIT/SET options), role settings and
comments; then each database with the source's encoding, locale, owner, connection limit, settings,
ACL and comment. Objects inside the databases are pg_restore's job.

Everything is idempotent: a second run changes nothing, and a role or database that already exists on
the target is brought to the source's state. Password hashes are read from ``pg_authid`` and passed to
the target as literals; they never appear in a returned line, an exception or a log line (the target
session stops statement logging before a password is set).

Every returned line is ``<object>: <what happened>``; lines a reviewer must act on contain ``warning:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from consolidator.errors import PreconditionError, StepFailed
from consolidator.pg.connect import connect, describe
from consolidator.plan.model import App, AppDatabase, RoleSpec

Conn = psycopg.Connection[Any]

# Role attributes and the keyword pair that sets them (fixed text, never user input). SUPERUSER is not here.
_FLAGS = (
    ("login", "LOGIN", "NOLOGIN"),
    ("inherit", "INHERIT", "NOINHERIT"),
    ("createdb", "CREATEDB", "NOCREATEDB"),
    ("createrole", "CREATEROLE", "NOCREATEROLE"),
    ("replication", "REPLICATION", "NOREPLICATION"),
    ("bypassrls", "BYPASSRLS", "NOBYPASSRLS"),
)
# Settings whose list elements pg_dump quotes one by one (variable_is_guc_list_quote in pg_dump).
_LIST_QUOTE_SETTINGS = frozenset({
    "local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
    "temp_tablespaces", "unix_socket_directories",
})  # fmt: skip
# Session settings that keep statements (and so password hashes) out of the target's logs and stats.
_QUIET_SESSION = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_duration_sample", "-1"),
    ("log_transaction_sample_rate", "0"),
    ("log_min_error_statement", "panic"),
    ("pg_stat_statements.track_utility", "off"),
)
_NO_READ_ONLY_DB = "default_transaction_read_only"
_PREDEFINED_PREFIX = "pg_"
_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}


@dataclass
class _Role:
    """One role's copyable state on a server (password hashes are kept apart, in plain dicts never printed)."""

    name: str
    superuser: bool = False
    login: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    settings: list[str] = field(default_factory=list)
    comment: str | None = None


@dataclass(frozen=True)
class _Membership:
    group: str
    member: str
    admin: bool
    inherit: bool
    set: bool


@dataclass
class _Database:
    """One database's shell as a server describes it."""

    oid: int
    name: str
    encoding: str
    collate: str
    ctype: str
    provider: str
    locale: str | None
    icu_rules: str | None
    owner: str
    connection_limit: int
    comment: str | None
    acl: set[tuple[str | None, str, bool]] = field(default_factory=set)  # (grantee | None=PUBLIC, priv, grantable)
    settings: list[str] = field(default_factory=list)  # ALTER DATABASE … SET
    role_settings: dict[str, list[str]] = field(default_factory=dict)  # ALTER ROLE … IN DATABASE … SET


# -- small helpers ----------------------------------------------------------------------------


def _show(name: str | None) -> str:
    """A name for a message: double-quoted like an identifier so spaces and quotes stay visible."""
    if name is None:
        return "PUBLIC"
    return '"' + name.replace('"', '""') + '"'


def _version(conn: Conn) -> int:
    return int(conn.info.server_version)


def _prepare_session(conn: Conn, *, read_only: bool) -> None:
    """Stable text for timestamps; the source session never writes."""
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET DateStyle = 'ISO, YMD'")
    if read_only:
        conn.execute("SET default_transaction_read_only = on")


def _quiet_session(conn: Conn) -> None:
    """Keep statements carrying password hashes out of the target's server log and pg_stat_statements."""
    conn.execute(
        """SELECT set_config(v.name, v.value, false)
             FROM unnest(%s::text[], %s::text[]) AS v(name, value)
            WHERE v.name IN (SELECT name FROM pg_settings)""",
        ([n for n, _ in _QUIET_SESSION], [v for _, v in _QUIET_SESSION]),
    )


def _require_superuser(conn: Conn, dsn: str) -> None:
    row = conn.execute("SELECT current_user, coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
                       "false)").fetchone()  # fmt: skip
    if row is None or not row[1]:
        raise PreconditionError(
            f"{describe(dsn)}: role {_show(row[0] if row else '?')} is not a superuser on the target",
            hint="connect to the target as its superuser (postgres): roles with REPLICATION/BYPASSRLS, "
            "password hashes and database owners need it",
        )


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _run(conn: Conn, stmt: sql.Composable, what: str, *, secrets: list[str] | None = None) -> None:
    """Execute one change; a failure names the object and never echoes a secret."""
    try:
        conn.execute(stmt)
    except psycopg.Error as exc:
        detail = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, secrets or [])
        raise StepFailed(
            f"{what} failed on the target: {detail}",
            hint="fix the cause on the target, then run the step again (it is idempotent)",
        ) from None


def _try(conn: Conn, stmt: sql.Composable) -> str | None:
    """Execute in a savepoint; the server's message when the target refuses (e.g. unknown setting)."""
    try:
        with conn.transaction():
            conn.execute(stmt)
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _split_setting(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name, value


def _split_guc_list(value: str) -> list[str]:
    """Elements of a flattened list setting (``"$user", public``), like the server's SplitGUCList."""
    items: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            i += 1
            buf = []
            while i < n:
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(value[i])
                i += 1
            items.append("".join(buf))
        else:
            start = i
            while i < n and value[i] != ",":
                i += 1
            items.append(value[start:i].strip())
        while i < n and value[i] != ",":
            i += 1
        i += 1
    return items


def _setting_value(name: str, value: str) -> sql.Composable:
    """The right-hand side of ``SET name = …`` that stores exactly ``value`` again."""
    items = _split_guc_list(value) if name.lower() in _LIST_QUOTE_SETTINGS else []
    if items:
        return sql.SQL(", ").join(sql.Literal(v) for v in items)
    return sql.Literal(value)


def _setting_name(name: str) -> sql.Composable:
    return sql.Identifier(*name.split("."))


def _settings_diff(want: list[str], have: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """What to SET (name, value) and what to RESET to turn ``have`` into ``want``."""
    wanted = dict(_split_setting(e) for e in want)
    present = dict(_split_setting(e) for e in have)
    to_set = [(k, v) for k, v in wanted.items() if present.get(k) != v]
    to_reset = [k for k in present if k not in wanted]
    return to_set, to_reset


# -- roles: reading ----------------------------------------------------------------------------


_ROLE_QUERY = """
SELECT r.rolname, r.rolsuper, r.rolcanlogin, r.rolinherit, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
       coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}'),
       shobj_description(r.oid, 'pg_authid')
  FROM pg_roles r WHERE r.rolname = ANY(%s)"""


def _read_roles(conn: Conn, names: list[str]) -> dict[str, _Role]:
    out: dict[str, _Role] = {}
    for r in conn.execute(_ROLE_QUERY, (names,)):
        out[r[0]] = _Role(
            name=r[0], superuser=r[1], login=r[2], inherit=r[3], createdb=r[4], createrole=r[5],
            replication=r[6], bypassrls=r[7], connection_limit=r[8], valid_until=r[9], settings=list(r[10]),
            comment=r[11],
        )  # fmt: skip
    return out


def _read_hashes(conn: Conn, names: list[str]) -> dict[str, str | None] | None:
    """Role → stored hash (None: no password); None when ``pg_authid`` is not readable (not superuser)."""
    try:
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", (names,)).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return {name: hashed for name, hashed in rows}


def _read_memberships(conn: Conn, members: list[str]) -> dict[tuple[str, str], _Membership]:
    """Grants whose member is one of ``members``; before PG 16, INHERIT follows the member and SET is implied."""
    if _version(conn) >= 160000:
        options = "bool_or(a.inherit_option), bool_or(a.set_option)"
    else:
        options = "bool_or(m.rolinherit), true"
    query = sql.SQL(
        """SELECT g.rolname, m.rolname, bool_or(a.admin_option), {}
             FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
            WHERE m.rolname = ANY(%s) GROUP BY 1, 2"""
    ).format(sql.SQL(options))
    out: dict[tuple[str, str], _Membership] = {}
    for group, member, admin, inherit, set_ in conn.execute(query, (members,)):
        out[(group, member)] = _Membership(group, member, bool(admin), bool(inherit), bool(set_))
    return out


def _role_names(conn: Conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}


# -- roles: applying ---------------------------------------------------------------------------


def _attribute_clauses(want: _Role, have: _Role) -> list[tuple[sql.Composable, str]]:
    """ALTER ROLE options (SQL, text for the action line) that turn ``have`` into ``want``; never SUPERUSER."""
    out: list[tuple[sql.Composable, str]] = []
    for attr, yes, no in _FLAGS:
        if getattr(want, attr) != getattr(have, attr):
            keyword = yes if getattr(want, attr) else no
            out.append((sql.SQL(keyword), keyword))
    if want.connection_limit != have.connection_limit:
        out.append((sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(int(want.connection_limit))),
                    f"CONNECTION LIMIT {want.connection_limit}"))  # fmt: skip
    wanted_until = want.valid_until or "infinity"
    if wanted_until != (have.valid_until or "infinity"):
        out.append((sql.SQL("VALID UNTIL {}").format(sql.Literal(wanted_until)), f"VALID UNTIL '{wanted_until}'"))
    return out


def _password_kind(hashed: str) -> str:
    if hashed.startswith("SCRAM-SHA-256$"):
        return "scram"
    if len(hashed) == 35 and hashed.startswith("md5") and all(c in "0123456789abcdef" for c in hashed[3:]):
        return "md5"
    return "unknown"


def _apply_password(
    conn: Conn, role: str, source_hash: str | None, target_hash: str | None, readable: bool
) -> list[str]:
    """Set the source's hash on the target role as is (no re-hashing: the original password keeps working)."""
    who = f"role {_show(role)}"
    ident = sql.Identifier(role)
    if not readable:
        return [f"{who}: warning: password not copied: pg_authid on the source is readable only by a superuser; "
                "connect to the source as a superuser or set the password on the target"]  # fmt: skip
    if source_hash is None:
        if target_hash is None:
            return []
        _run(conn, sql.SQL("ALTER ROLE {} PASSWORD NULL").format(ident), f"{who}: removing the password")
        return [f"{who}: password removed (the source role has none)"]
    kind = _password_kind(source_hash)
    lines: list[str] = []
    if kind == "unknown":
        return [f"{who}: warning: password not copied: the source stores it in an unrecognized format; "
                "set it on the target"]  # fmt: skip
    if source_hash != target_hash:
        _run(conn, sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(source_hash)),
             f"{who}: setting the password", secrets=[source_hash])  # fmt: skip
        lines.append(f"{who}: password hash copied ({'SCRAM-SHA-256' if kind == 'scram' else 'md5'})")
    if kind == "md5":
        lines.append(f"{who}: warning: md5 password hash: it cannot log in under scram-sha-256-only pg_hba rules "
                     "(CloudNativePG's default); reset the password on the target or allow md5 in pg_hba")  # fmt: skip
    return lines


def _apply_role_settings(conn: Conn, role: str, want: list[str], have: list[str]) -> list[str]:
    who = f"role {_show(role)}"
    to_set, to_reset = _settings_diff(want, have)
    lines: list[str] = []
    for name, value in to_set:
        stmt = sql.SQL("ALTER ROLE {} SET {} = {}").format(
            sql.Identifier(role), _setting_name(name), _setting_value(name, value)
        )
        error = _try(conn, stmt)
        lines.append(f"{who}: SET {name} = {value}" if error is None
                     else f"{who}: warning: setting {name} not copied: {error}")  # fmt: skip
    for name in to_reset:
        _run(conn, sql.SQL("ALTER ROLE {} RESET {}").format(sql.Identifier(role), _setting_name(name)),
             f"{who}: RESET {name}")  # fmt: skip
        lines.append(f"{who}: RESET {name} (not set on the source)")
    return lines


def _apply_comment(conn: Conn, kind: str, name: str, want: str | None, have: str | None) -> list[str]:
    if want == have:
        return []
    stmt = sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), sql.Identifier(name), sql.Literal(want))
    _run(conn, stmt, f"{kind.lower()} {_show(name)}: comment")
    return [f"{kind.lower()} {_show(name)}: comment {'set' if want is not None else 'removed'}"]


def _copy_one_role(conn: Conn, want: _Role, have: _Role | None, hashes: dict[str, str | None] | None,
                   target_hashes: dict[str, str | None]) -> list[str]:  # fmt: skip
    """Create or align one role; a source superuser becomes an ordinary role with a warning."""
    who = f"role {_show(want.name)}"
    ident = sql.Identifier(want.name)
    lines: list[str] = []
    if have is None:
        _run(conn, sql.SQL("CREATE ROLE {} NOSUPERUSER NOLOGIN").format(ident), f"{who}: CREATE ROLE")
        have = _Role(name=want.name)
        lines.append(f"{who}: created")
    if want.superuser:
        lines.append(f"{who}: warning: superuser on the source, NOSUPERUSER on the target (never granted); "
                     "objects it owned are owned by the target's superuser")  # fmt: skip
    clauses = _attribute_clauses(want, have)
    if clauses:
        stmt = sql.SQL("ALTER ROLE {} WITH {}").format(ident, sql.SQL(" ").join(c for c, _ in clauses))
        _run(conn, stmt, f"{who}: ALTER ROLE")
        lines.append(f"{who}: " + " ".join(text for _, text in clauses))
    lines += _apply_password(conn, want.name, (hashes or {}).get(want.name), target_hashes.get(want.name),
                             hashes is not None)  # fmt: skip
    lines += _apply_role_settings(conn, want.name, want.settings, have.settings)
    lines += _apply_comment(conn, "ROLE", want.name, want.comment, have.comment)
    return lines


def _grant_membership(conn: Conn, m: _Membership, target_major: int) -> None:
    stmt: sql.Composable
    if target_major >= 16:
        stmt = sql.SQL("GRANT {} TO {} WITH ADMIN {}, INHERIT {}, SET {}").format(
            sql.Identifier(m.group), sql.Identifier(m.member),
            *(sql.SQL("TRUE" if flag else "FALSE") for flag in (m.admin, m.inherit, m.set)),
        )  # fmt: skip
    else:
        stmt = sql.SQL("GRANT {} TO {}{}").format(
            sql.Identifier(m.group), sql.Identifier(m.member), sql.SQL(" WITH ADMIN OPTION" if m.admin else "")
        )
    _run(conn, stmt, f"membership of {_show(m.member)} in {_show(m.group)}")


def _options_text(m: _Membership, with_options: bool) -> str:
    text = f"ADMIN {m.admin}"
    return (text + (f", INHERIT {m.inherit}, SET {m.set}" if with_options else "")).upper()


def _apply_memberships(conn: Conn, source: dict[tuple[str, str], _Membership],
                       target: dict[tuple[str, str], _Membership], listed: set[str], target_roles: set[str],
                       member_inherit: dict[str, bool]) -> list[str]:  # fmt: skip
    """Grants among the listed roles (and into predefined roles) as on the source; extras among them revoked."""
    major = _version(conn) // 10000
    lines: list[str] = []
    for key, m in sorted(target.items()):  # first: a stray grant could make a source grant circular
        if key in source or m.group not in listed:
            continue
        what = f"membership of {_show(m.member)} in {_show(m.group)}"
        _run(conn, sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(m.group), sql.Identifier(m.member)), what)
        lines.append(f"{what}: revoked (not on the source)")
    for key, m in sorted(source.items()):
        if m.group not in listed and not m.group.startswith(_PREDEFINED_PREFIX):
            continue
        what = f"membership of {_show(m.member)} in {_show(m.group)}"
        if m.group not in target_roles:
            lines.append(f"{what}: warning: not granted: {_show(m.group)} does not exist on the target")
            continue
        have = target.get(key)
        if major < 16 and (not m.set or m.inherit != member_inherit.get(m.member, True)):
            lines.append(f"{what}: warning: {_options_text(m, True)} on the source cannot be expressed on "
                         f"PostgreSQL {major}; granted with the member's INHERIT attribute and SET TRUE")  # fmt: skip
        if major >= 16:
            if have is not None and (have.admin, have.inherit, have.set) == (m.admin, m.inherit, m.set):
                continue
            _grant_membership(conn, m, major)
            lines.append(f"{what}: granted ({_options_text(m, True)})")
            continue
        if have is None or (m.admin and not have.admin):
            _grant_membership(conn, m, major)
            lines.append(f"{what}: granted ({_options_text(m, False)})")
        elif have.admin and not m.admin:
            _run(conn, sql.SQL("REVOKE ADMIN OPTION FOR {} FROM {}").format(
                sql.Identifier(m.group), sql.Identifier(m.member)), what)  # fmt: skip
            lines.append(f"{what}: ADMIN OPTION revoked (not on the source)")
    return lines


def copy_roles(source_dsn: str, target_dsn: str, roles: list[RoleSpec]) -> list[str]:
    """Create or align every role of ``roles`` on the target as it is on the source (only the names are used).

    Attributes, password hashes, role settings and comments are read live from the source, so the target
    matches the source at copy time, not at plan time. Runs in one target transaction: all or nothing.
    """
    names = list(dict.fromkeys(r.name for r in roles))
    lines: list[str] = []
    with connect(source_dsn, dbname="postgres") as src:
        _prepare_session(src, read_only=True)
        source = _read_roles(src, names)
        missing = [n for n in names if n not in source]
        if missing:
            raise PreconditionError(
                f"role {_show(missing[0])} is in the plan but does not exist on the source {describe(source_dsn)}",
                hint="create the plan again (consolidator plan) so it matches the source",
            )
        hashes = _read_hashes(src, names)
        memberships = _read_memberships(src, names)
    with connect(target_dsn, dbname="postgres") as dst:
        _require_superuser(dst, target_dsn)
        _prepare_session(dst, read_only=False)
        _quiet_session(dst)
        with dst.transaction():
            existing = _read_roles(dst, names)
            target_hashes = _read_hashes(dst, names) or {}
            copied: list[str] = []
            for name in names:
                have = existing.get(name)
                if name.startswith(_PREDEFINED_PREFIX):
                    lines.append(f"role {_show(name)}: predefined role name, left as is")
                    continue
                if have is not None and have.superuser:
                    lines.append(f"role {_show(name)}: warning: superuser on the target, left as is "
                                 "(its attributes and password are the target's)")  # fmt: skip
                    continue
                lines += _copy_one_role(dst, source[name], have, hashes, target_hashes)
                copied.append(name)
            target_memberships = _read_memberships(dst, copied)
            lines += _apply_memberships(
                dst, {k: m for k, m in memberships.items() if m.member in copied}, target_memberships,
                set(copied), _role_names(dst), {n: source[n].inherit for n in copied},
            )  # fmt: skip
    return lines


# -- databases ---------------------------------------------------------------------------------


def _database_query(version_num: int) -> sql.Composable:
    provider = "d.datlocprovider::text" if version_num >= 150000 else "'c'"
    if version_num >= 170000:
        locale = "d.datlocale"
    elif version_num >= 150000:
        locale = "d.daticulocale"
    else:
        locale = "NULL::text"
    rules = "d.daticurules" if version_num >= 160000 else "NULL::text"
    return sql.SQL(
        """SELECT d.oid::bigint, d.datname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, {}, {}, {},
                  pg_get_userbyid(d.datdba), d.datconnlimit, shobj_description(d.oid, 'pg_database')
             FROM pg_database d WHERE d.datname = %s"""
    ).format(sql.SQL(provider), sql.SQL(locale), sql.SQL(rules))


def _read_database(conn: Conn, name: str) -> _Database | None:
    row = conn.execute(_database_query(_version(conn)), (name,)).fetchone()
    if row is None:
        return None
    db = _Database(
        oid=int(row[0]), name=row[1], encoding=row[2], collate=row[3] or "", ctype=row[4] or "",
        provider=_PROVIDERS.get(row[5], row[5]), locale=row[6], icu_rules=row[7], owner=row[8],
        connection_limit=row[9], comment=row[10],
    )  # fmt: skip
    for grantee, privilege, grantable in conn.execute(
        """SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type,
                  a.is_grantable
             FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
            WHERE d.oid = %s""",
        (db.oid,),
    ):
        db.acl.add((grantee, privilege, bool(grantable)))
    for role, config in conn.execute(
        """SELECT r.rolname, s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole
            WHERE s.setdatabase = %s""",
        (db.oid,),
    ):
        if role is None:
            db.settings = list(config or [])
        else:
            db.role_settings[role] = list(config or [])
    return db


def _user_table_count(target_dsn: str, dbname: str) -> int:
    with connect(target_dsn, dbname=dbname) as conn:
        row = conn.execute(
            """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
                  AND n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'"""
        ).fetchone()
    return int(row[0]) if row else 0


def _locale_clauses(src: _Database, target_major: int) -> list[sql.Composable]:
    """ENCODING / LC_* / LOCALE_PROVIDER clauses reproducing the source's locale on this target major."""
    clauses: list[sql.Composable] = [
        sql.SQL("ENCODING {}").format(sql.Literal(src.encoding)),
        sql.SQL("LC_COLLATE {}").format(sql.Literal(src.collate)),
        sql.SQL("LC_CTYPE {}").format(sql.Literal(src.ctype)),
    ]
    needs = {"icu": 15, "builtin": 17}.get(src.provider, 0)
    if target_major < needs:
        raise PreconditionError(
            f"database {_show(src.name)} uses the {src.provider} locale provider, which PostgreSQL {target_major} "
            "on the target does not have",
            hint=f"use a target of PostgreSQL {needs} or later",
        )
    if target_major >= 15:
        clauses.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(src.provider)))
    if src.provider == "icu" and src.locale:
        clauses.append(sql.SQL("ICU_LOCALE {}").format(sql.Literal(src.locale)))
        if src.icu_rules:
            clauses.append(sql.SQL("ICU_RULES {}").format(sql.Literal(src.icu_rules)))
    if src.provider == "builtin" and src.locale:
        clauses.append(sql.SQL("BUILTIN_LOCALE {}").format(sql.Literal(src.locale)))
    return clauses


def _create_database(conn: Conn, src: _Database, name: str, owner: str) -> None:
    """CREATE DATABASE from template0 (the only template that accepts another encoding or locale)."""
    stmt = sql.SQL("CREATE DATABASE {} WITH OWNER {} TEMPLATE template0 {} CONNECTION LIMIT {}").format(
        sql.Identifier(name), sql.Identifier(owner),
        sql.SQL(" ").join(_locale_clauses(src, _version(conn) // 10000)), sql.Literal(int(src.connection_limit)),
    )  # fmt: skip
    try:
        conn.execute(stmt)
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.WrongObjectType, psycopg.errors.InvalidParameterValue,
            psycopg.errors.InvalidName) as exc:  # fmt: skip
        first = str(exc).strip().splitlines()[0]
        raise PreconditionError(
            f"database {_show(name)} cannot be created on the target with the source's locale "
            f"({src.provider} {src.locale or src.collate}, {src.encoding}): {first}",
            hint="use a target image that has this locale (and ICU when the source uses it)",
        ) from None
    except psycopg.Error as exc:
        raise StepFailed(f"CREATE DATABASE {_show(name)} failed on the target: {str(exc).strip().splitlines()[0]}",
                         hint="fix the cause on the target, then run the step again") from None  # fmt: skip


def _locale_differences(src: _Database, have: _Database) -> list[str]:
    pairs = [("encoding", src.encoding, have.encoding), ("LC_COLLATE", src.collate, have.collate),
             ("LC_CTYPE", src.ctype, have.ctype), ("locale provider", src.provider, have.provider)]  # fmt: skip
    if src.provider != "libc":
        pairs.append(("locale", src.locale, have.locale))
    return [f"{what} {theirs!r} instead of {ours!r}" for what, ours, theirs in pairs if ours != theirs]


def _check_existing(target_dsn: str, src: _Database, have: _Database, force: bool) -> list[str]:
    """An existing target database is reused when empty (or forced) and when its locale matches."""
    who = f"database {_show(have.name)}"
    tables = _user_table_count(target_dsn, have.name)
    if tables and not force:
        raise PreconditionError(
            f"target database {_show(have.name)} already exists and is not empty ({tables} tables)",
            hint="drop it on the target, or pass --force to copy into it anyway",
        )
    forced = f" although it holds {tables} tables (--force)" if tables else ""
    lines = [f"{who}: exists on the target, reused{forced}"]
    differences = _locale_differences(src, have)
    if differences and not force:
        raise PreconditionError(
            f"target database {_show(have.name)} already exists with {', '.join(differences)}",
            hint="drop it on the target so it is created like the source, or pass --force to keep it",
        )
    lines += [f"{who}: warning: {d} (kept: --force)" for d in differences]
    return lines


def _map_grantee(name: str | None, src: _Database, owner: str, target_roles: set[str],
                 owner_map: dict[str, str]) -> str | None:  # fmt: skip
    """Where a source grantee's privileges go: the owner's to the new owner, a superuser's to the target's."""
    if name is None:
        return None
    if name == src.owner:
        return owner
    if name in target_roles:
        return name
    return owner_map.get(name, name)


def _privilege_target(name: str | None) -> sql.Composable:
    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


def _apply_acl(conn: Conn, dbname: str, want: set[tuple[str | None, str, bool]],
               have: set[tuple[str | None, str, bool]]) -> list[str]:  # fmt: skip
    """GRANT/REVOKE so the target ACL equals the wanted one (grant options included)."""
    who = f"database {_show(dbname)}"
    db = sql.Identifier(dbname)
    wanted = {(g, p): opt for g, p, opt in want}
    present = {(g, p): opt for g, p, opt in have}
    lines: list[str] = []
    for (grantee, priv), grantable in sorted(wanted.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if present.get((grantee, priv)) == grantable:
            continue
        if (grantee, priv) in present and not grantable:
            stmt = sql.SQL("REVOKE GRANT OPTION FOR {} ON DATABASE {} FROM {}").format(
                sql.SQL(priv), db, _privilege_target(grantee)
            )
            lines.append(f"{who}: grant option for {priv} revoked from {_show(grantee)}")
        else:
            stmt = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(priv), db, _privilege_target(grantee), sql.SQL(" WITH GRANT OPTION" if grantable else "")
            )
            lines.append(f"{who}: {priv} granted to {_show(grantee)}" + (" with grant option" if grantable else ""))
        _run(conn, stmt, lines[-1])
    for (grantee, priv), _opt in sorted(present.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if (grantee, priv) in wanted:
            continue
        _run(conn, sql.SQL("REVOKE {} ON DATABASE {} FROM {}").format(sql.SQL(priv), db, _privilege_target(grantee)),
             f"{who}: revoke {priv}")  # fmt: skip
        lines.append(f"{who}: {priv} revoked from {_show(grantee)} (as on the source)")
    return lines


def _apply_database_settings(conn: Conn, dbname: str, want: list[str], have: list[str]) -> list[str]:
    who = f"database {_show(dbname)}"
    lines: list[str] = []
    if any(_split_setting(e)[0] == _NO_READ_ONLY_DB for e in want):
        lines.append(f"{who}: warning: {_NO_READ_ONLY_DB} not copied: it would block the restore (a fenced "
                     "source?); set it after cutover if the database is meant to be read-only")  # fmt: skip
        want = [e for e in want if _split_setting(e)[0] != _NO_READ_ONLY_DB]
        have = [e for e in have if _split_setting(e)[0] != _NO_READ_ONLY_DB]
    to_set, to_reset = _settings_diff(want, have)
    ident = sql.Identifier(dbname)
    for name, value in to_set:
        error = _try(conn, sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            ident, _setting_name(name), _setting_value(name, value)))  # fmt: skip
        lines.append(f"{who}: SET {name} = {value}" if error is None
                     else f"{who}: warning: setting {name} not copied: {error}")  # fmt: skip
    for name in to_reset:
        _run(conn, sql.SQL("ALTER DATABASE {} RESET {}").format(ident, _setting_name(name)), f"{who}: RESET {name}")
        lines.append(f"{who}: RESET {name} (not set on the source)")
    return lines


def _apply_role_in_database_settings(conn: Conn, dbname: str, want: dict[str, list[str]],
                                     have: dict[str, list[str]], target_roles: set[str],
                                     source_roles: set[str]) -> list[str]:  # fmt: skip
    """``ALTER ROLE … IN DATABASE … SET`` for roles on both servers; a role missing on the target is reported."""
    who = f"database {_show(dbname)}"
    lines: list[str] = []
    for role in sorted(set(want) | (set(have) & source_roles)):
        if role not in target_roles:
            lines.append(f"{who}: warning: settings of role {_show(role)} not copied: the role does not exist "
                         "on the target (add it to the app's roles)")  # fmt: skip
            continue
        to_set, to_reset = _settings_diff(want.get(role, []), have.get(role, []))
        prefix = sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(dbname))
        for name, value in to_set:
            error = _try(conn, sql.SQL("{} SET {} = {}").format(prefix, _setting_name(name),
                                                                _setting_value(name, value)))  # fmt: skip
            lines.append(f"{who}: role {_show(role)} SET {name} = {value}" if error is None
                         else f"{who}: warning: setting {name} of role {_show(role)} not copied: {error}")  # fmt: skip
        for name in to_reset:
            _run(conn, sql.SQL("{} RESET {}").format(prefix, _setting_name(name)), f"{who}: role {_show(role)} RESET")
            lines.append(f"{who}: role {_show(role)} RESET {name} (not set on the source)")
    return lines


def _ensure_one(src_conn: Conn, dst: Conn, target_dsn: str, spec: AppDatabase, owner_map: dict[str, str],
                force: bool, target_roles: set[str], source_roles: set[str]) -> list[str]:  # fmt: skip
    src = _read_database(src_conn, spec.source)
    if src is None:
        raise PreconditionError(f"database {_show(spec.source)} does not exist on the source",
                                hint="create the plan again (consolidator plan) so it matches the source")  # fmt: skip
    owner = owner_map.get(spec.owner, spec.owner)
    who = f"database {_show(spec.target)}"
    if owner not in target_roles:
        raise PreconditionError(
            f"owner {_show(owner)} of database {_show(spec.target)} does not exist on the target",
            hint="copy the app's roles first (CloudNativePG creates 'app' at bootstrap; a local target needs it "
            "created)",
        )
    have = _read_database(dst, spec.target)
    lines: list[str] = []
    if have is None:
        _create_database(dst, src, spec.target, owner)
        locale = f"{src.provider} {src.locale or src.collate}"
        lines.append(f"{who}: created ({src.encoding}, {locale}, owner {_show(owner)})")
        have = _read_database(dst, spec.target)
        assert have is not None
    else:
        lines += _check_existing(target_dsn, src, have, force)
        if have.owner != owner:
            _run(
                dst,
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(spec.target), sql.Identifier(owner)),
                f"{who}: owner",
            )
            lines.append(f"{who}: owner {_show(have.owner)} → {_show(owner)}")
            have = _read_database(dst, spec.target)
            assert have is not None
        if have.connection_limit != src.connection_limit:
            _run(
                dst,
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                    sql.Identifier(spec.target), sql.Literal(int(src.connection_limit))
                ),
                f"{who}: connection limit",
            )
            lines.append(f"{who}: CONNECTION LIMIT {src.connection_limit}")
    lines += _apply_database_settings(dst, spec.target, src.settings, have.settings)
    lines += _apply_role_in_database_settings(dst, spec.target, src.role_settings, have.role_settings, target_roles,
                                              source_roles)  # fmt: skip
    want_acl: set[tuple[str | None, str, bool]] = set()
    for grantee, priv, grantable in sorted(src.acl, key=lambda t: (t[0] or "", t[1], t[2])):
        mapped = _map_grantee(grantee, src, owner, target_roles, owner_map)
        if mapped is not None and mapped not in target_roles:
            lines.append(f"{who}: warning: {priv} for {_show(grantee)} not granted: the role does not exist on the "
                         "target (add it to the app's roles)")  # fmt: skip
            continue
        want_acl.add((mapped, priv, grantable))
    lines += _apply_acl(dst, spec.target, want_acl, have.acl)
    lines += _apply_comment(dst, "DATABASE", spec.target, src.comment, have.comment)
    return lines


def ensure_databases(
    source_dsn: str, target_dsn: str, databases: list[AppDatabase], *, owner_map: dict[str, str], force: bool = False
) -> list[str]:
    """Create (or reuse, when empty) each app database on the target as it is on the source; run after copy_roles.

    ``databases`` are AppDatabase records (source, target, owner); the owner goes through ``owner_map``.
    A target database that holds user tables is refused unless ``force``.
    """
    lines: list[str] = []
    with connect(source_dsn, dbname="postgres") as src, connect(target_dsn, dbname="postgres") as dst:
        _prepare_session(src, read_only=True)
        _require_superuser(dst, target_dsn)
        source_roles = _role_names(src)
        for spec in databases:
            lines += _ensure_one(src, dst, target_dsn, spec, owner_map, force, _role_names(dst), source_roles)
    return lines


# -- superusers ---------------------------------------------------------------------------------


def superuser_name(dsn: str) -> str:
    """The server's bootstrap superuser (OID 10: ``postgres`` on CloudNativePG), which can never be dropped."""
    with connect(dsn, dbname="postgres") as conn:
        row = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()
    if row is None:  # pragma: no cover - every cluster has it
        raise PreconditionError(f"{describe(dsn)}: no bootstrap superuser found", hint="check the server")
    return str(row[0])


def superusers(dsn: str) -> set[str]:
    """Every superuser role of a server (the source's map to the target's superuser)."""
    with connect(dsn, dbname="postgres") as conn:
        return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolsuper")}


def owner_map_for(app: App, source_superusers: set[str], target_superuser: str) -> dict[str, str]:
    """Source role → target role for ownership: every source superuser becomes the target's superuser.

    Objects a source superuser owned stay with a superuser on the target, even when the app also uses that
    role by name (it is copied without SUPERUSER). The mapping is the same for every app of a source;
    ``app`` is taken so callers need not know that.
    """
    return {name: target_superuser for name in sorted(source_superusers)}
