"""Roles and database shells copied onto a real target: same attributes, hashes, grants and settings as the source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from consolidator.engine.globals import (
    copy_roles,
    ensure_databases,
    owner_map_for,
    superuser_name,
    superusers,
)
from consolidator.errors import ConsolidatorError, PreconditionError
from consolidator.plan.model import (
    App,
    AppDatabase,
    PoolerSizing,
    RoleSpec,
    SizingEvidence,
    Strategy,
    Value,
)
from consolidator.plan.model import Sizing as PlanSizing
from tests.harness import Server, running_server

WIKI_PW = "correct horse"
ROOT_PW = "root's pw"
MD5_PW = "md5 secret"
ROLES = ["Wiki Admin", "o'brien", "Ünï", "app readers", "legacy root"]
WIKI_DB = "Wiki Ünï's db"
LATIN_DB = "Root's LATIN1"
BUSY_DB = "busy db"
ICU_DB = "icu db"


def run(server: Server, statements: list[Any], dbname: str = "postgres") -> None:
    with psycopg.connect(server.conninfo(dbname), autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)


def q(text: str, *names: str) -> sql.Composed:
    """Statement text with ``{}`` placeholders for identifiers."""
    return sql.SQL(text).format(*(sql.Identifier(n) for n in names))


def _populate_source(server: Server) -> None:
    run(server, [
        q("CREATE ROLE {} NOLOGIN", "app readers"),
        q("COMMENT ON ROLE {} IS 'read-only group'", "app readers"),
        q("CREATE ROLE {} LOGIN CREATEDB CONNECTION LIMIT 7 VALID UNTIL '2031-05-06 07:08:09+00' PASSWORD "
          + "'" + WIKI_PW + "'", "Wiki Admin"),
        q("ALTER ROLE {} SET statement_timeout = '30s'", "Wiki Admin"),
        q("ALTER ROLE {} SET search_path = '$user', 'my schema', public", "Wiki Admin"),
        q("CREATE ROLE {} NOLOGIN NOINHERIT CREATEROLE", "o'brien"),
        "SET password_encryption = 'md5'",
        q("CREATE ROLE {} LOGIN REPLICATION BYPASSRLS PASSWORD '" + MD5_PW + "'", "Ünï"),
        "RESET password_encryption",
        q("CREATE ROLE {} SUPERUSER LOGIN PASSWORD 'root''s pw'", "legacy root"),
        q("GRANT {} TO {} WITH ADMIN OPTION", "app readers", "o'brien"),
        q("GRANT {} TO {}", "app readers", "Wiki Admin"),
        q("GRANT pg_read_all_stats TO {}", "Ünï"),
        q("CREATE ROLE {} LOGIN PASSWORD 'reader pw'", "inventory reader"),
        q("CREATE ROLE {} LOGIN PASSWORD 'plain pw'", "plain pw"),
        q("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8' "
          "CONNECTION LIMIT 12", WIKI_DB, "Wiki Admin"),
        q("ALTER DATABASE {} SET work_mem = '12MB'", WIKI_DB),
        q("ALTER DATABASE {} SET search_path = \"$user\", public, \"my schema\"", WIKI_DB),
        q("ALTER ROLE {} IN DATABASE {} SET statement_timeout = '5s'", "o'brien", WIKI_DB),
        q("ALTER ROLE {} IN DATABASE {} SET lock_timeout = '3s'", "Wiki Admin", WIKI_DB),
        q("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC", WIKI_DB),
        q("GRANT CONNECT ON DATABASE {} TO {}", WIKI_DB, "app readers"),
        q("GRANT CREATE ON DATABASE {} TO {} WITH GRANT OPTION", WIKI_DB, "Ünï"),
        q("COMMENT ON DATABASE {} IS 'the wiki''s data'", WIKI_DB),
        q("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
          LATIN_DB, "legacy root"),
        q("GRANT CONNECT ON DATABASE {} TO {}", LATIN_DB, "Wiki Admin"),
        q("CREATE DATABASE {} OWNER {}", BUSY_DB, "Wiki Admin"),
        q("CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'", ICU_DB),
    ])  # fmt: skip
    server.add_password("inventory reader", "reader pw")


def _prepare_target(server: Server) -> None:
    """State the copy must correct: a role with other attributes, a stray membership, an empty database."""
    run(server, [
        q("CREATE ROLE {} LOGIN CREATEDB CONNECTION LIMIT 3", "o'brien"),
        q("ALTER ROLE {} SET work_mem = '1MB'", "o'brien"),
        q("COMMENT ON ROLE {} IS 'stale'", "o'brien"),
        q("CREATE ROLE {}", "app readers"),
        q("GRANT {} TO {}", "o'brien", "app readers"),
        q("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8' "
          "CONNECTION LIMIT 3", WIKI_DB),
        q("ALTER DATABASE {} SET maintenance_work_mem = '64MB'", WIKI_DB),
        q("CREATE DATABASE {}", BUSY_DB),
    ])  # fmt: skip
    run(server, ["CREATE TABLE t (id int)"], dbname=BUSY_DB)


def _app(databases: list[AppDatabase]) -> App:
    v = Value(1, "test")
    sizing = PlanSizing(instances=v, cpu=v, memory=v, storage=v, wal_storage=v, max_connections=v,
                        pooler=PoolerSizing())  # fmt: skip
    return App(name="wiki", cluster_name="wiki", namespace="default", databases=databases,
               evidence=SizingEvidence(), sizing=sizing, strategy=Strategy(name="dump"),
               roles=[RoleSpec(name=n) for n in ROLES])  # fmt: skip


DATABASES = [
    AppDatabase(source=WIKI_DB, target=WIKI_DB, owner="Wiki Admin"),
    AppDatabase(source=LATIN_DB, target=LATIN_DB, owner="legacy root"),
]


@pytest.fixture(scope="module")
def source() -> Iterator[Server]:
    with running_server(15) as server:
        _populate_source(server)
        yield server


@pytest.fixture(scope="module")
def target() -> Iterator[Server]:
    """PostgreSQL 16 that logs every statement: password hashes must still stay out of its log."""
    with running_server(16, {"log_statement": "'all'", "log_min_error_statement": "error"}) as server:
        _prepare_target(server)
        yield server


@pytest.fixture(scope="module")
def target15() -> Iterator[Server]:
    with running_server(15) as server:
        yield server


@pytest.fixture(scope="module")
def source16() -> Iterator[Server]:
    with running_server(16) as server:
        run(server, [
            q("CREATE ROLE {} NOLOGIN", "g16 group"),
            q("CREATE ROLE {} LOGIN INHERIT", "m16 member"),
            q("GRANT {} TO {} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE", "g16 group", "m16 member"),
        ])  # fmt: skip
        yield server


def owner_map(source: Server, target: Server) -> dict[str, str]:
    return owner_map_for(_app(DATABASES), superusers(source.dsn), superuser_name(target.dsn))


@pytest.fixture(scope="module")
def copied(source: Server, target: Server) -> dict[str, list[str]]:
    """The first copy onto the target: action lines of both functions."""
    roles = copy_roles(source.dsn, target.dsn, [RoleSpec(name=n) for n in ROLES])
    dbs = ensure_databases(source.dsn, target.dsn, DATABASES, owner_map=owner_map(source, target))
    return {"roles": roles, "databases": dbs}


# -- catalog snapshots (independent SQL, not the module's readers) ----------------------------------------------


def role_rows(server: Server, names: list[str]) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute(
            """SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                      r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
                      (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0),
                      shobj_description(r.oid, 'pg_authid')
                 FROM pg_roles r WHERE r.rolname = ANY(%s)""",
            (names,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def memberships(server: Server, names: list[str]) -> set[tuple[str, str, bool]]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT g.rolname, m.rolname, a.admin_option FROM pg_auth_members a
                 JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                WHERE m.rolname = ANY(%s)""",
            (names,),
        ).fetchall()
    return {(g, m, bool(a)) for g, m, a in rows}


def hashes(server: Server, names: list[str]) -> dict[str, str | None]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", (names,)).fetchall()
    return dict(rows)


def database_row(server: Server, name: str) -> dict[str, Any]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute(
            """SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, pg_get_userbyid(d.datdba),
                      d.datconnlimit, ARRAY(SELECT unnest(d.datacl)::text ORDER BY 1),
                      shobj_description(d.oid, 'pg_database'), d.datlocprovider::text
                 FROM pg_database d WHERE d.datname = %s""",
            (name,),
        ).fetchone()
        assert row is not None, name
        settings = conn.execute(
            """SELECT coalesce(r.rolname, '*'), s.setconfig FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
                WHERE d.datname = %s""",
            (name,),
        ).fetchall()
    keys = ("encoding", "collate", "ctype", "owner", "connlimit", "acl", "comment", "provider")
    return {**dict(zip(keys, row, strict=True)), "settings": {r: sorted(c) for r, c in settings}}


def state(server: Server) -> tuple[Any, ...]:
    return (role_rows(server, ROLES), memberships(server, ROLES), hashes(server, ROLES),
            database_row(server, WIKI_DB), database_row(server, LATIN_DB))  # fmt: skip


def changes(lines: list[str]) -> list[str]:
    return [line for line in lines if "warning:" not in line and "reused" not in line]


# -- roles ----------------------------------------------------------------------------------------------------


def test_role_attributes_settings_and_comments_equal(source: Server, target: Server, copied: Any) -> None:
    src, dst = role_rows(source, ROLES), role_rows(target, ROLES)
    assert set(dst) == set(ROLES)
    for name in ROLES:
        if name == "legacy root":
            assert src[name][0] is True and dst[name][0] is False
            assert src[name][1:] == dst[name][1:]
        else:
            assert dst[name] == src[name], name
    assert dst["Wiki Admin"][8] == "2031-05-06 07:08:09+00"
    assert sorted(dst["Wiki Admin"][9]) == ['search_path="$user", "my schema", public', "statement_timeout=30s"]
    assert dst["o'brien"][10] is None  # the stale comment is gone, like on the source
    lines = copied["roles"]
    assert any(line.startswith('role "o\'brien": NOLOGIN') for line in lines), lines
    assert 'role "o\'brien": RESET work_mem (not set on the source)' in lines


def test_memberships_equal_stray_revoked_predefined_kept(source: Server, target: Server, copied: Any) -> None:
    assert memberships(target, ROLES) == memberships(source, ROLES)
    assert ("pg_read_all_stats", "Ünï", False) in memberships(target, ROLES)
    assert ("o'brien", "app readers", False) not in memberships(target, ROLES)
    assert 'membership of "app readers" in "o\'brien": revoked (not on the source)' in copied["roles"]
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT m.rolname, a.inherit_option, a.set_option FROM pg_auth_members a
                 JOIN pg_roles m ON m.oid = a.member WHERE a.roleid = (SELECT oid FROM pg_roles WHERE rolname = %s)""",
            ("app readers",),
        ).fetchall()
    # From a PostgreSQL 15 source: INHERIT follows the member's attribute, SET is implied.
    assert sorted(rows) == [("Wiki Admin", True, True), ("o'brien", False, True)]


def test_scram_hash_copied_and_original_password_logs_in(source: Server, target: Server, copied: Any) -> None:
    same = hashes(source, ["Wiki Admin"]) == hashes(target, ["Wiki Admin"])
    assert same
    assert 'role "Wiki Admin": password hash copied (SCRAM-SHA-256)' in copied["roles"]
    target.add_password("Wiki Admin", WIKI_PW)
    with psycopg.connect(target.conninfo(WIKI_DB, "Wiki Admin")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("Wiki Admin",)


def test_md5_hash_copied_and_reported(source: Server, target: Server, copied: Any) -> None:
    dst = hashes(target, ["Ünï"])["Ünï"]
    assert dst is not None and dst.startswith("md5")
    same = hashes(source, ["Ünï"]) == hashes(target, ["Ünï"])
    assert same
    warning = [line for line in copied["roles"] if line.startswith('role "Ünï": warning: md5')]
    assert warning and "scram-sha-256" in warning[0]
    target.add_password("Ünï", MD5_PW)  # the warning is true: scram-only hba refuses the md5 hash
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(target.conninfo("postgres", "Ünï")).close()


def test_source_superuser_becomes_ordinary_role(target: Server, copied: Any) -> None:
    line = next(line for line in copied["roles"] if line.startswith('role "legacy root": warning: superuser'))
    assert "NOSUPERUSER" in line
    assert role_rows(target, ["legacy root"])["legacy root"][0] is False
    target.add_password("legacy root", ROOT_PW)
    with psycopg.connect(target.conninfo("postgres", "legacy root")) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)


# -- databases ------------------------------------------------------------------------------------------------


def test_reused_database_equals_source(source: Server, target: Server, copied: Any) -> None:
    src, dst = database_row(source, WIKI_DB), database_row(target, WIKI_DB)
    assert dst == src
    assert dst["connlimit"] == 12 and dst["collate"] == "C.utf8" and dst["comment"] == "the wiki's data"
    assert '"app readers"=c/"Wiki Admin"' in dst["acl"] and '"Ünï"=C*/"Wiki Admin"' in dst["acl"]
    assert not any(a.startswith("=") for a in dst["acl"])  # nothing for PUBLIC: CONNECT and TEMP revoked
    assert dst["settings"]["Wiki Admin"] == ["lock_timeout=3s"]
    assert dst["settings"]["o'brien"] == ["statement_timeout=5s"]
    assert dst["settings"]["*"] == ['search_path="$user", public, "my schema"', "work_mem=12MB"]
    lines = copied["databases"]
    assert f'database "{WIKI_DB}": exists on the target, reused' in lines
    assert f'database "{WIKI_DB}": RESET maintenance_work_mem (not set on the source)' in lines


def test_created_database_with_superuser_owner_mapped(source: Server, target: Server, copied: Any) -> None:
    src, dst = database_row(source, LATIN_DB), database_row(target, LATIN_DB)
    assert (dst["encoding"], dst["collate"], dst["ctype"]) == ("LATIN1", "C", "C")
    assert src["owner"] == "legacy root" and dst["owner"] == superuser_name(target.dsn) == "postgres"
    mapped = sorted(a.replace('"legacy root"', "postgres") for a in src["acl"])
    assert dst["acl"] == mapped
    assert any(line.startswith(f'database "{LATIN_DB}": created (LATIN1') for line in copied["databases"])


def test_owner_map_sends_every_source_superuser_to_the_target_superuser(source: Server, target: Server) -> None:
    assert owner_map(source, target) == {"legacy root": "postgres", "postgres": "postgres"}


def test_second_run_changes_nothing(source: Server, target: Server, copied: Any) -> None:
    before = state(target)
    roles = copy_roles(source.dsn, target.dsn, [RoleSpec(name=n) for n in ROLES])
    dbs = ensure_databases(source.dsn, target.dsn, DATABASES, owner_map=owner_map(source, target))
    assert state(target) == before
    assert changes(roles) == [] and changes(dbs) == []


def test_non_empty_target_database_refused_unless_forced(source: Server, target: Server, copied: Any) -> None:
    busy = [AppDatabase(source=BUSY_DB, target=BUSY_DB, owner="Wiki Admin")]
    with pytest.raises(PreconditionError) as err:
        ensure_databases(source.dsn, target.dsn, busy, owner_map={})
    assert BUSY_DB in err.value.message and "1 tables" in err.value.message
    assert err.value.hint and "--force" in err.value.hint
    lines = ensure_databases(source.dsn, target.dsn, busy, owner_map={}, force=True)
    assert f'database "{BUSY_DB}": exists on the target, reused although it holds 1 tables (--force)' in lines
    assert database_row(target, BUSY_DB)["owner"] == "Wiki Admin"


def test_missing_owner_and_missing_source_role_refused(source: Server, target: Server, copied: Any) -> None:
    with pytest.raises(PreconditionError, match='owner "app" of database'):
        ensure_databases(source.dsn, target.dsn, [AppDatabase(source=WIKI_DB, target="other", owner="app")],
                         owner_map={})  # fmt: skip
    with pytest.raises(PreconditionError, match='role "nobody here" is in the plan'):
        copy_roles(source.dsn, target.dsn, [RoleSpec(name="nobody here")])


def test_non_superuser_source_copies_roles_without_passwords(source: Server, target: Server) -> None:
    reader = source.conninfo("postgres", "inventory reader")
    lines = copy_roles(reader, target.dsn, [RoleSpec(name="plain pw")])
    assert 'role "plain pw": created' in lines
    assert any(line.startswith('role "plain pw": warning: password not copied') for line in lines)
    assert hashes(target, ["plain pw"]) == {"plain pw": None}
    assert role_rows(target, ["plain pw"])["plain pw"][4] is True  # LOGIN all the same


def test_non_superuser_target_refused(source: Server, target: Server, copied: Any) -> None:
    with pytest.raises(PreconditionError, match="not a superuser on the target"):
        copy_roles(source.dsn, target.conninfo("postgres", "Wiki Admin"), [RoleSpec(name="o'brien")])


def test_icu_database(source: Server, target: Server, target15: Server) -> None:
    icu = [AppDatabase(source=ICU_DB, target=ICU_DB, owner="postgres")]
    with pytest.raises(PreconditionError, match="icu db") as err:  # the pgserver wheel's 16 is built without ICU
        ensure_databases(source.dsn, target.dsn, icu, owner_map={})
    assert "ICU" in str(err.value)
    lines = ensure_databases(source.dsn, target15.dsn, icu, owner_map={})
    assert lines[0].startswith(f'database "{ICU_DB}": created (UTF8, icu de-DE')
    with psycopg.connect(target15.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT datlocprovider::text, daticulocale FROM pg_database WHERE datname = %s",
                           (ICU_DB,)).fetchone()  # fmt: skip
    assert row == ("i", "de-DE")


def test_pg16_membership_options(source16: Server, target: Server, target15: Server) -> None:
    specs = [RoleSpec(name="g16 group"), RoleSpec(name="m16 member")]
    lines = copy_roles(source16.dsn, target.dsn, specs)
    assert 'membership of "m16 member" in "g16 group": granted (ADMIN TRUE, INHERIT FALSE, SET FALSE)' in lines
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        row = conn.execute(
            """SELECT admin_option, inherit_option, set_option FROM pg_auth_members
                WHERE member = (SELECT oid FROM pg_roles WHERE rolname = 'm16 member')"""
        ).fetchone()
    assert row == (True, False, False)
    assert changes(copy_roles(source16.dsn, target.dsn, specs)) == []
    # PostgreSQL 15 has no per-grant options: granted with ADMIN, and the difference reported.
    lines = copy_roles(source16.dsn, target15.dsn, specs)
    assert any("cannot be expressed on PostgreSQL 15" in line for line in lines), lines
    assert memberships(target15, ["m16 member"]) == {("g16 group", "m16 member", True)}


def test_demo_keycloak_roles_and_acl(legacy: Server, target: Server) -> None:
    """The demo's keycloak: md5 owner, a read-only group with a login member, CONNECT revoked from PUBLIC."""
    names = ["keycloak", "keycloak_ro", "grafana_reader"]
    lines = copy_roles(legacy.dsn, target.dsn, [RoleSpec(name=n) for n in names])
    lines += ensure_databases(legacy.dsn, target.dsn, [AppDatabase(source="keycloak", target="keycloak",
                                                                    owner="keycloak")], owner_map={})  # fmt: skip
    assert any(line.startswith('role "keycloak": warning: md5') for line in lines)
    assert memberships(target, names) == memberships(legacy, names)
    assert database_row(target, "keycloak")["acl"] == database_row(legacy, "keycloak")["acl"]
    target.add_password("grafana_reader", "irrelevant")  # not its password: refused, but by authentication only
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(target.conninfo("keycloak", "grafana_reader")).close()


def test_no_hash_in_lines_messages_or_target_log(source: Server, target: Server, copied: Any) -> None:
    secrets = [h for h in hashes(source, [*ROLES, "plain pw"]).values() if h]
    assert len(secrets) == 4
    texts = list(copied["roles"]) + list(copied["databases"])
    texts += copy_roles(source.dsn, target.dsn, [RoleSpec(name=n) for n in ROLES])
    not_super = target.conninfo("postgres", "Wiki Admin")
    for dsn, name in ((target.dsn, "nobody here"), (not_super, "Ünï")):
        with pytest.raises(ConsolidatorError) as err:
            copy_roles(source.dsn, dsn, [RoleSpec(name=name)])
        texts += [str(err.value), err.value.message, err.value.hint or ""]
    if target.instance is not None:
        log = target.instance.log_file.read_text(errors="replace")
        assert 'CREATE ROLE "o\'brien"' in log  # the target does log statements (this test's own)
        texts.append(log)
    for secret in secrets:
        leaked = [t for t in texts if secret in t or secret[-20:] in t]
        assert not leaked
