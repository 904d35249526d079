"""Inventory against a real server: what it sees, what it reports, and that it changes nothing."""

from __future__ import annotations

import json

import pytest

from consolidator.errors import PreconditionError
from consolidator.inventory.collect import InventoryOptions, _collect_catalogs, run_inventory
from consolidator.inventory.model import Inventory
from consolidator.pg.connect import connect
from consolidator.serde import to_data
from tests.harness import Server


def codes(inv: Inventory, database: str | None = None) -> set[str]:
    return {f.code for f in inv.findings if database is None or f.database == database}


def test_server_facts(inventory: Inventory, legacy: Server) -> None:
    s = inventory.server
    assert s.major == 15 and s.version.startswith("15.")
    with connect(legacy.dsn) as conn:
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    assert s.system_identifier == sysid
    for name in ("wal_level", "max_replication_slots", "max_wal_senders", "max_connections", "shared_buffers",
                 "password_encryption", "ssl"):  # fmt: skip
        assert name in s.settings
    assert s.settings["wal_level"] == "logical"
    assert "pg_trgm" in s.extensions_available
    assert s.is_superuser


def test_databases_and_tables(inventory: Inventory) -> None:
    names = {db.name for db in inventory.databases}
    assert {"keycloak", "mastodon_production", "nextcloud", "Team Wiki"} <= names
    masto = inventory.database("mastodon_production")
    assert masto.size_bytes > 5 * 1024 * 1024
    assert masto.owner == "mastodon" and masto.encoding == "UTF8"
    assert masto.tables[0].name == "statuses"  # largest first
    sizes = [t.total_bytes for t in masto.tables]
    assert sizes == sorted(sizes, reverse=True)
    statuses = masto.tables[0]
    assert statuses.rows_estimate > 10_000 and statuses.heap_bytes > 0 and statuses.index_bytes > 0
    assert {e.name for e in masto.extensions} >= {"plpgsql", "pg_trgm"}
    assert [m.name for m in masto.materialized_views] == ["account_summaries"]
    assert {s.name for s in masto.sequences} >= {"statuses_id_seq", "accounts_id_seq"}
    assert all(s.last_value is not None for s in masto.sequences if s.name == "statuses_id_seq")


def test_blockers_are_findings(inventory: Inventory) -> None:
    nc = inventory.database("nextcloud")
    activity = next(t for t in nc.tables if t.name == "oc_activity")
    assert not activity.has_primary_key and not activity.replicable
    assert [t.name for t in nc.unlogged_tables] == ["oc_file_locks"]
    assert nc.large_objects_count == 50 and nc.large_objects_bytes > 0
    assert any(r.kind == "postgres_fdw" and "keycloak" in r.target for r in nc.cross_database_refs)
    assert {"CN101", "CN102", "CN401", "CN801"} <= codes(inventory, "nextcloud")
    wiki = inventory.database("Team Wiki")
    assert any("site_settings" in o for o in wiki.superuser_owned)
    assert "CN701" in codes(inventory, "Team Wiki")
    cn901 = next(f for f in inventory.findings if f.code == "CN901" and f.database == "Team Wiki")
    assert "team-wiki" in cn901.message
    assert "CN601" in codes(inventory, "keycloak")  # md5 hash
    for f in inventory.findings:
        assert f.fix and f.message and f.severity in ("error", "warning", "info")


def test_settings_and_roles(inventory: Inventory) -> None:
    wiki = inventory.database("Team Wiki")
    assert {"role": "*", "setting": "search_path=wiki, public"} in wiki.settings
    assert {"role": "wiki-js", "setting": "work_mem=8MB"} in wiki.settings
    assert wiki.roles == ["wiki-js"]
    kc = inventory.database("keycloak")
    # owner, grantee group, and the login member of the group
    assert kc.roles == ["grafana_reader", "keycloak", "keycloak_ro"]
    reader = inventory.role("grafana_reader")
    assert reader is not None and reader.member_of == ["keycloak_ro"] and reader.password_type == "scram"
    assert inventory.role("keycloak").password_type == "md5"  # type: ignore[union-attr]
    wikirole = inventory.role("wiki-js")
    assert wikirole is not None and wikirole.settings == ["statement_timeout=30s"]
    assert "postgres" not in {r for db in inventory.databases for r in db.roles}


def test_activity_measured(inventory: Inventory) -> None:
    masto = inventory.database("mastodon_production").activity
    assert masto.window_seconds >= 1.5
    assert masto.commits_per_s > 5 and masto.rows_written_per_s > 5
    assert masto.backends_peak >= 1
    assert masto.wal_bytes_per_s > 0
    assert masto.working_set_bytes is not None and masto.working_set_bytes > 0
    assert inventory.server.wal_bytes_per_s >= masto.wal_bytes_per_s
    wiki = inventory.database("Team Wiki").activity
    assert wiki.commits_per_s < masto.commits_per_s


def test_no_secret_in_json(inventory: Inventory, legacy: Server) -> None:
    text = json.dumps(to_data(inventory))
    with connect(legacy.dsn) as conn:
        hashes = [r[0] for r in conn.execute("SELECT rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL")]
    assert hashes
    for h in hashes:
        assert h not in text
        assert h.split("$")[-1] not in text


def test_inventory_changes_nothing(legacy: Server) -> None:
    def writes() -> dict[str, int]:
        out = {}
        with connect(legacy.dsn) as conn:
            for (name,) in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall():
                with connect(legacy.dsn, dbname=name) as dbconn:
                    out[name] = dbconn.execute(
                        "SELECT count(*) FROM pg_class WHERE relnamespace::regnamespace::text !~ '^pg_'"
                    ).fetchone()[0]
        return out

    before = writes()
    run_inventory(legacy.dsn, InventoryOptions(sample_seconds=0))
    assert writes() == before


def test_monitor_role_degrades_gracefully(scratch: Server) -> None:
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE ROLE watcher LOGIN PASSWORD 'w-secret' IN ROLE pg_monitor")
        conn.execute("CREATE DATABASE closed")
        conn.execute("REVOKE CONNECT ON DATABASE closed FROM PUBLIC")
    scratch.add_password("watcher", "w-secret")
    inv = run_inventory(scratch.conninfo(user="watcher"), InventoryOptions(sample_seconds=0))
    assert not inv.server.is_superuser
    closed = inv.database("closed")
    assert closed.size_bytes > 0  # pg_read_all_stats sees sizes
    assert any("CONNECT" in text for text in closed.limitations)
    assert any(f.code == "CN001" and f.database == "closed" for f in inv.findings)
    assert all(r.password_type == "unknown" for r in inv.roles)


def test_role_without_privileges_is_refused(scratch: Server) -> None:
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE ROLE nobody LOGIN PASSWORD 'n-secret'")
    scratch.add_password("nobody", "n-secret")
    with pytest.raises(PreconditionError, match="GRANT pg_monitor") as err:
        run_inventory(scratch.conninfo(user="nobody"), InventoryOptions(sample_seconds=0))
    assert "n-secret" not in str(err.value)


def test_database_dropped_during_inventory(scratch: Server) -> None:
    from consolidator.inventory.model import DatabaseInfo

    with connect(scratch.dsn) as conn:
        conn.execute("CREATE DATABASE ephemeral")
        conn.execute("DROP DATABASE ephemeral")
    with pytest.raises(PreconditionError, match="'ephemeral' was dropped") as err:
        _collect_catalogs(scratch.dsn, [DatabaseInfo(name="ephemeral")], jobs=2, sink=None)
    assert "--exclude" in (err.value.hint or "")


def test_postgresql_16_source() -> None:
    """Version-specific catalog SQL works on another major (the pgserver wheel's 16)."""
    from consolidator.pg.binaries import available
    from tests.harness import running_server

    if 16 not in available():
        pytest.skip("no PostgreSQL 16 binaries")
    with running_server(16) as server:
        with connect(server.dsn) as conn:
            conn.execute("CREATE DATABASE \"Ünïcode 'db'\"")
        with connect(server.dsn, dbname="Ünïcode 'db'") as conn:
            conn.execute('CREATE TABLE "Mixed Case" (id int PRIMARY KEY, "quoted ""name""" text)')
        inv = run_inventory(server.dsn, InventoryOptions(sample_seconds=0))
        assert inv.server.major == 16
        db = inv.database("Ünïcode 'db'")
        assert [t.name for t in db.tables] == ["Mixed Case"] and db.tables[0].has_primary_key
        assert any(f.code == "CN901" for f in db.findings)
