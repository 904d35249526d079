"""Populate a throwaway "legacy" server with four realistic application databases.

- ``keycloak`` (SSO): clean schema, a read-only group with a login member, an md5 password hash.
- ``mastodon_production`` (social network): the big one (``scale_mb``), a materialized view, pg_trgm.
- ``nextcloud`` (file sync): a table without primary key, large objects, an unlogged table and a
  postgres_fdw server pointing at another database (a cross-database reference).
- ``Team Wiki`` (wiki): a name that needs sanitizing, a mixed-case table, database and role
  settings, and a table owned by the superuser.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from psycopg import sql

from consolidator.pg.connect import connect

APP_DATABASES = ("keycloak", "mastodon_production", "nextcloud", "Team Wiki")


def _role(conn: Any, name: str, password: str | None, *, login: bool = True, md5: bool = False) -> None:
    if md5:
        conn.execute("SET password_encryption = 'md5'")
    stmt = sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
        sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN"), sql.Literal(password)
    )
    conn.execute(stmt)
    if md5:
        conn.execute("RESET password_encryption")


def _database(conn: Any, name: str, owner: str) -> None:
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))


def create_legacy_databases(
    dsn: str, *, scale_mb: int = 20, passwords: Callable[[str, str], None] | None = None
) -> dict[str, str]:
    """Create roles and the four databases; returns role → password (kept by the caller, not printed).

    ``passwords(role, password)`` is called for each login role so the caller can record it in a
    pgpass file.
    """
    created: dict[str, str] = {}

    def pw(role: str) -> str:
        value = secrets.token_urlsafe(16)
        created[role] = value
        if passwords:
            passwords(role, value)
        return value

    with connect(dsn, dbname="postgres") as conn:
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        if preload and "pg_stat_statements" in preload[0]:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        _role(conn, "keycloak", pw("keycloak"), md5=True)
        _role(conn, "keycloak_ro", None, login=False)
        _role(conn, "grafana_reader", pw("grafana_reader"))
        conn.execute("GRANT keycloak_ro TO grafana_reader")
        _role(conn, "mastodon", pw("mastodon"))
        _role(conn, "nextcloud", pw("nextcloud"))
        _role(conn, "wiki-js", pw("wiki-js"))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(sql.Identifier("wiki-js")))
        _database(conn, "keycloak", "keycloak")
        _database(conn, "mastodon_production", "mastodon")
        _database(conn, "nextcloud", "nextcloud")
        _database(conn, "Team Wiki", "wiki-js")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = wiki, public").format(sql.Identifier("Team Wiki")))
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET work_mem = '8MB'").format(
                sql.Identifier("wiki-js"), sql.Identifier("Team Wiki")
            )
        )
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier("keycloak")))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO keycloak_ro").format(sql.Identifier("keycloak")))
    _keycloak(dsn)
    _mastodon(dsn, scale_mb)
    _nextcloud(dsn)
    _wiki(dsn)
    return created


def _as_owner(conn: Any, owner: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))


def _keycloak(dsn: str) -> None:
    with connect(dsn, dbname="keycloak") as conn:
        _as_owner(conn, "keycloak")
        conn.execute("""
            CREATE TABLE realm (id text PRIMARY KEY, name text UNIQUE NOT NULL, enabled boolean NOT NULL DEFAULT true);
            CREATE TABLE user_entity (
                id text PRIMARY KEY, realm_id text NOT NULL REFERENCES realm(id), username text NOT NULL,
                email text, created_timestamp bigint, enabled boolean NOT NULL DEFAULT true,
                UNIQUE (realm_id, username));
            CREATE TABLE credential (id text PRIMARY KEY, user_id text REFERENCES user_entity(id),
                type text, secret_data text, created_date bigint);
            CREATE TABLE user_role_mapping (role_id text NOT NULL, user_id text NOT NULL REFERENCES user_entity(id),
                PRIMARY KEY (role_id, user_id));
            CREATE INDEX idx_user_email ON user_entity (email);
            INSERT INTO realm VALUES ('master', 'master', true), ('acme', 'acme', true);
            INSERT INTO user_entity
              SELECT 'u' || g, CASE WHEN g % 3 = 0 THEN 'master' ELSE 'acme' END, 'user' || g,
                     'user' || g || '@example.org', 1700000000000 + g, g % 17 <> 0
                FROM generate_series(1, 5000) g;
            INSERT INTO credential SELECT 'c' || g, 'u' || g, 'password', md5(g::text), 1700000000000 + g
                FROM generate_series(1, 5000) g;
            INSERT INTO user_role_mapping SELECT 'default-roles', 'u' || g FROM generate_series(1, 5000) g;
            GRANT SELECT ON ALL TABLES IN SCHEMA public TO keycloak_ro;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO keycloak_ro;
        """)


def _mastodon(dsn: str, scale_mb: int) -> None:
    rows = max(1000, scale_mb * 1024 * 1024 // 420)  # ≈ 420 bytes per status with its indexes
    with connect(dsn, dbname="mastodon_production") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        _as_owner(conn, "mastodon")
        conn.execute("""
            CREATE TABLE accounts (id bigserial PRIMARY KEY, username text NOT NULL, domain text,
                display_name text NOT NULL DEFAULT '', note text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (username, domain));
            CREATE TABLE statuses (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts(id),
                text text NOT NULL, visibility smallint NOT NULL DEFAULT 0, sensitive boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now(), favourites_count integer NOT NULL DEFAULT 0);
            CREATE TABLE follows (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts(id),
                target_account_id bigint NOT NULL REFERENCES accounts(id), created_at timestamptz DEFAULT now(),
                UNIQUE (account_id, target_account_id));
            CREATE TABLE favourites (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts(id),
                status_id bigint NOT NULL REFERENCES statuses(id), created_at timestamptz DEFAULT now());
        """)
        conn.execute("""
            INSERT INTO accounts (username, domain, display_name, note, created_at)
              SELECT 'user' || g, CASE WHEN g % 4 = 0 THEN 'remote.example' END, 'User ' || g,
                     'Hello, I am user ' || g, now() - (g || ' minutes')::interval
                FROM generate_series(1, 2000) g
        """)
        conn.execute(
            """
            INSERT INTO statuses (account_id, text, visibility, sensitive, created_at, favourites_count)
              SELECT 1 + (g %% 2000), repeat(md5(g::text), 6) || ' #fediverse', g %% 4, g %% 50 = 0,
                     now() - (g || ' seconds')::interval, g %% 13
                FROM generate_series(1, %s) g
            """,
            (rows,),
        )
        conn.execute("""
            INSERT INTO follows (account_id, target_account_id)
              SELECT 1 + g % 2000, 1 + (g * 7 + 3) % 2000 FROM generate_series(1, 8000) g
              ON CONFLICT DO NOTHING;
            INSERT INTO favourites (account_id, status_id) SELECT 1 + g % 2000, 1 + g FROM generate_series(1, 5000) g;
            CREATE INDEX index_statuses_on_account_id_id ON statuses (account_id, id DESC);
            CREATE INDEX index_statuses_created_at ON statuses (created_at);
            CREATE INDEX index_accounts_on_username_trgm ON accounts USING gin (username gin_trgm_ops);
            CREATE MATERIALIZED VIEW account_summaries AS
              SELECT account_id, count(*) AS statuses_count, max(created_at) AS last_status_at
                FROM statuses GROUP BY account_id;
            ANALYZE;
        """)


def _nextcloud(dsn: str) -> None:
    with connect(dsn, dbname="nextcloud") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        conn.execute(
            "CREATE SERVER keycloak_remote FOREIGN DATA WRAPPER postgres_fdw "
            "OPTIONS (host '127.0.0.1', dbname 'keycloak')"
        )
        conn.execute("GRANT USAGE ON FOREIGN SERVER keycloak_remote TO nextcloud")
        _as_owner(conn, "nextcloud")
        conn.execute("""
            CREATE TABLE oc_filecache (fileid bigserial PRIMARY KEY, storage bigint NOT NULL, path text,
                path_hash varchar(32) NOT NULL, parent bigint, name text, mimetype bigint, size bigint,
                mtime bigint, etag varchar(40), UNIQUE (storage, path_hash));
            CREATE TABLE oc_activity (activity_id bigint, timestamp integer NOT NULL DEFAULT 0,
                type varchar(255), "user" varchar(64), affecteduser varchar(64) NOT NULL,
                app varchar(32) NOT NULL, subject varchar(255) NOT NULL, file text);
            CREATE TABLE oc_preferences (userid varchar(64) NOT NULL, appid varchar(32) NOT NULL,
                configkey varchar(64) NOT NULL, configvalue text, PRIMARY KEY (userid, appid, configkey));
            CREATE UNLOGGED TABLE oc_file_locks (id bigserial PRIMARY KEY, lock integer NOT NULL DEFAULT 0,
                key varchar(64) NOT NULL UNIQUE, ttl integer NOT NULL DEFAULT -1);
            CREATE TABLE oc_previews (fileid bigint PRIMARY KEY REFERENCES oc_filecache(fileid), blob oid NOT NULL);
            INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, size, mtime, etag)
              SELECT 1 + g % 5, 'files/dir' || (g % 100) || '/file' || g || '.txt', md5('p' || g), g / 10,
                     'file' || g || '.txt', 1 + g % 9, g * 37 % 100000, 1700000000 + g, md5(g::text)
                FROM generate_series(1, 20000) g;
            INSERT INTO oc_activity
              SELECT g, 1700000000 + g, 'file_changed', 'user' || g % 50, 'user' || g % 50, 'files',
                     'changed_self', '/file' || g FROM generate_series(1, 10000) g;
            INSERT INTO oc_preferences SELECT 'user' || g, 'core', 'lang', 'en' FROM generate_series(1, 500) g;
            INSERT INTO oc_file_locks (key) SELECT 'files/' || md5(g::text) FROM generate_series(1, 100) g;
            INSERT INTO oc_previews SELECT g, lo_from_bytea(0, convert_to(repeat('preview ' || g, 200), 'UTF8'))
                FROM generate_series(1, 50) g;
            ANALYZE;
        """)


def _wiki(dsn: str) -> None:
    with connect(dsn, dbname="Team Wiki") as conn:
        conn.execute("""
            CREATE TABLE public.site_settings (key text PRIMARY KEY, value jsonb);
            INSERT INTO public.site_settings VALUES ('title', '"Team Wiki"'), ('theme', '"dark"');
        """)
        conn.execute("CREATE SCHEMA wiki AUTHORIZATION \"wiki-js\"")
        _as_owner(conn, "wiki-js")
        conn.execute("""
            CREATE TYPE wiki.page_state AS ENUM ('draft', 'published', 'archived');
            CREATE TABLE wiki.pages (id serial PRIMARY KEY, path text NOT NULL UNIQUE, title text NOT NULL,
                content text NOT NULL, state wiki.page_state NOT NULL DEFAULT 'draft',
                "updatedAt" timestamptz NOT NULL DEFAULT now());
            CREATE TABLE wiki."pageHistory" (id serial PRIMARY KEY, "pageId" integer REFERENCES wiki.pages(id),
                content text, "createdAt" timestamptz DEFAULT now());
            CREATE FUNCTION wiki.touch() RETURNS trigger LANGUAGE plpgsql AS
              $$ BEGIN NEW."updatedAt" := now(); RETURN NEW; END $$;
            CREATE TRIGGER pages_touch BEFORE UPDATE ON wiki.pages FOR EACH ROW EXECUTE FUNCTION wiki.touch();
            INSERT INTO wiki.pages (path, title, content, state)
              SELECT 'page/' || g, 'Page ' || g || ' — Überblick', repeat('Lorem ipsum dolor sit amet. ', 40),
                     (ARRAY['draft','published','archived'])[1 + g % 3]::wiki.page_state
                FROM generate_series(1, 300) g;
            INSERT INTO wiki."pageHistory" ("pageId", content) SELECT 1 + g % 300, 'rev ' || g
                FROM generate_series(1, 900) g;
            ANALYZE;
        """)
