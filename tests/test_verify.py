"""Verification against real servers: a pg_dump/pg_restore copy must verify clean, and every kind of
difference planted in a copy must be found on the right object with the right classification."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import sql

from consolidator.errors import ConfigError, ConnectionFailure, StepFailed
from consolidator.events import Event
from consolidator.pg.binaries import available
from consolidator.pg.connect import connect
from consolidator.serde import to_data
from consolidator.verify.model import DatabaseReport, TableResult, VerifyReport
from consolidator.verify.run import compare_tables, verify_database
from consolidator.verify.session import PINNED, HashMethod
from tests import verify_fixtures as vf
from tests.harness import Server, running_server

_names = itertools.count(1)


@pytest.fixture(scope="module")
def src() -> Iterator[Server]:
    """PostgreSQL 15 with odd session defaults, the app roles and the realistic ``shop`` database."""
    with running_server(15, vf.ODD_SETTINGS_A) as server:
        vf.create_roles(server)
        vf.build_source(server)
        yield server


@pytest.fixture(scope="module")
def dump_file(src: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vf.dump(src, "shop", tmp_path_factory.mktemp("verify") / "shop.dump")


@pytest.fixture()
def make_copy(src: Server, dump_file: Path) -> Callable[[], str]:
    """A fresh pg_restore copy of ``shop`` on the same server; returns its name (a name needing quotes)."""

    def make() -> str:
        name = f"copy {next(_names)}"
        vf.restore_copy(src, dump_file, name, source=src)
        return name

    return make


@pytest.fixture(scope="module")
def same(src: Server, dump_file: Path) -> str:
    """One untouched copy shared by read-only tests."""
    vf.restore_copy(src, dump_file, "same copy", source=src)
    return "same copy"


def verify(src: Server, target_db: str, **kwargs: object) -> DatabaseReport:
    return verify_database(src.dsn, src.dsn, source_db="shop", target_db=target_db, roles=vf.ROLES, **kwargs)  # type: ignore[arg-type]


def failures(report: DatabaseReport) -> set[tuple[str, str, str]]:
    """(category, object, status) of everything failing; tables count as category "data"."""
    return {
        ("data", d.object, d.status) if isinstance(d, TableResult) else (d.category, d.object, d.status)
        for d in report.differences()
        if not d.ok
    }


def test_identical_copy_verifies_clean(src: Server, same: str) -> None:
    events: list[Event] = []
    report = verify(src, same, sink=events.append, jobs=3)
    assert report.ok, report.differences()
    assert failures(report) == set()
    assert report.snapshot and report.hash_method == "hashextended"
    by_name = {t.name: t for t in report.tables}
    assert by_name["measurements"].status == "skipped" and by_name["measurements"].kind == "partitioned"
    assert by_name["measurements_2023"].kind == "partition" and by_name["measurements_2023"].status == "match"
    assert by_name["measurements_2023"].rows_source + by_name["measurements_2024"].rows_source == 4000
    assert by_name["order_lines"].key == ["order_id", "line"] and by_name["event_log"].key == []
    assert by_name['Quarterly "Report"'].schema == "Sales & Co" and by_name['Quarterly "Report"'].status == "match"
    assert by_name["cache"].status == "match"  # unlogged, copied by pg_dump
    assert all(t.hash_source == t.hash_target for t in report.tables if t.status == "match")
    # every category compared, none empty where the source has objects
    categories = {c.category: c for c in report.checks if c.object == "*"}
    for name in ("relations", "columns", "constraints", "indexes", "views", "functions", "triggers", "types",
                 "sequences", "owners", "acl", "roles", "memberships", "settings", "database", "sequence_values",
                 "large_objects", "role_passwords"):  # fmt: skip
        assert categories[name].status == "match", name
    assert categories["acl"].source and int(categories["acl"].source.split()[0]) > 100
    assert categories["settings"].source == "3 objects"
    assert categories["large_objects"].source == "5 objects"
    # matviews: the plain one matches; the one over now() differs after restore but only warns
    mv = {c.object: c for c in report.checks if c.category == "matviews"}
    assert mv["public.order_totals"].status == "match"
    assert mv["public.refreshed"].status == "warning" and "now()" in mv["public.refreshed"].detail
    # progress: per table, done/total and bytes, then a summary
    progress = [e for e in events if e.type == "step_progress" and "total" in e.fields]
    assert progress[-1].fields["done"] == progress[-1].fields["total"] == len(
        [t for t in report.tables if t.hash_source]
    ) + 2  # + the two matviews
    assert progress[-1].fields["bytes_done"] == progress[-1].fields["bytes_total"] > 0
    assert events[-1].type == "log" and events[-1].fields["ok"] and "no differences" in events[-1].message
    data = json.loads(json.dumps(to_data(VerifyReport([report]))))
    assert data["databases"][0]["tables"][0]["status"] in ("match", "skipped")
    assert VerifyReport([report]).ok


MUTATIONS: dict[str, tuple[list[str], set[tuple[str, str, str]]]] = {
    "delete_row": (["DELETE FROM sessions WHERE token = md5('s17')::uuid"],
                   {("data", "public.sessions", "differs")}),
    "change_value": (["UPDATE products SET price = 99 WHERE sku = 'SKU-00042'"],
                     {("data", "public.products", "differs")}),
    "insert_row": (["INSERT INTO order_lines VALUES (1, 99, 'SKU-00001', 1)"],
                   {("data", "public.order_lines", "differs")}),
    "duplicate_row_no_pk": (["INSERT INTO event_log SELECT * FROM event_log WHERE kind = 'kind1' LIMIT 1"],
                            {("data", "public.event_log", "differs")}),
    "change_in_partition": (["UPDATE measurements SET temp = -1 WHERE id = (SELECT min(id) FROM measurements_2024)"],
                            {("data", "public.measurements_2024", "differs")}),
    "drop_index": (["DROP INDEX orders_placed_idx"], {("indexes", "public.orders_placed_idx", "missing_on_target")}),
    "revoke_grant": (['REVOKE SELECT ON customers FROM "ünïcødé reader"'],
                     {("acl", "table public.customers to ünïcødé reader: SELECT", "missing_on_target")}),
    "revoke_column_grant": (["""REVOKE UPDATE (name) ON customers FROM "o'brien\""""],
                            {("acl", "column public.customers.name to o'brien: UPDATE", "missing_on_target")}),
    "change_default": (["ALTER TABLE orders ALTER status SET DEFAULT 'paid'"],
                       {("columns", "public.orders.status", "differs")}),
    "sequence_lower": (["SELECT setval('invoice_no', 1000)"], {("sequence_values", "public.invoice_no", "differs")}),
    "delete_large_object": (["SELECT lo_unlink(max(oid)) FROM pg_largeobject_metadata"],
                            {("large_objects", "large object {max_lo}", "missing_on_target"),
                             ("large_objects", "large objects owned by app owner", "differs")}),
    "db_setting": (["ALTER DATABASE {db} SET work_mem = '16MB'"], {("settings", "database: work_mem", "differs")}),
    # other session defaults on the target database: only the settings differ, never the data
    "db_session_defaults": ([
        "ALTER DATABASE {db} SET timezone = 'Asia/Kathmandu'", "ALTER DATABASE {db} SET datestyle = 'Postgres, MDY'",
        "ALTER DATABASE {db} SET intervalstyle = 'sql_standard'", "ALTER DATABASE {db} SET extra_float_digits = -2",
        "ALTER DATABASE {db} SET bytea_output = 'hex'",
    ], {("settings", f"database: {name}", "extra_on_target")
        for name in ("timezone", "datestyle", "intervalstyle", "extra_float_digits", "bytea_output")}),
    "matview_not_populated": (["REFRESH MATERIALIZED VIEW order_totals WITH NO DATA"],
                              {("matviews", "public.order_totals", "differs")}),
    "duplicate_key_after_lost_pk": (["ALTER TABLE widths DROP CONSTRAINT widths_pkey",
                                     "INSERT INTO widths SELECT * FROM widths WHERE id = 7"],
                                    {("data", "public.widths", "differs"),
                                     ("constraints", "public.widths widths_pkey", "missing_on_target"),
                                     ("indexes", "public.widths_pkey", "missing_on_target")}),
    "columns_reordered": ([
        'SET ROLE "app owner"',
        "CREATE TABLE widths2 (b int, a text, id int CONSTRAINT widths_pkey2 PRIMARY KEY)",
        "INSERT INTO widths2 (id, a, b) SELECT id, a, b FROM widths",
        "DROP TABLE widths", "ALTER TABLE widths2 RENAME TO widths",
        "ALTER TABLE widths RENAME CONSTRAINT widths_pkey2 TO widths_pkey",
    ], set()),
}  # fmt: skip


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_planted_difference_is_found(src: Server, make_copy: Callable[[], str], mutation: str) -> None:
    statements, expected = MUTATIONS[mutation]
    db = make_copy()
    with connect(src.conninfo(db)) as conn:
        max_lo = conn.execute("SELECT max(oid) FROM pg_largeobject_metadata").fetchone()[0]
        for stmt in statements:
            conn.execute(stmt.replace("{db}", sql.Identifier(db).as_string(conn)))
    report = verify(src, db, jobs=2)
    wanted = {(c, o.replace("{max_lo}", str(max_lo)), s) for c, o, s in expected}
    assert failures(report) == wanted
    assert report.ok is (not wanted)
    tables = {t.name: t for t in report.tables}
    if mutation == "delete_row":
        t = tables["sessions"]
        assert (t.missing, t.extra, t.changed) == (1, 0, 0) and t.rows_target == t.rows_source - 1
        assert t.detail.startswith("1 row missing on target; first: missing (")
        with connect(src.conninfo("shop")) as conn:
            key = conn.execute("SELECT md5('s17')::uuid::text").fetchone()[0]
        assert t.samples == [f"missing ({key})"]
    if mutation == "change_value":
        t = tables["products"]
        assert (t.missing, t.extra, t.changed) == (0, 0, 1) and t.rows_target == t.rows_source
        assert t.samples == ["changed (SKU-00042): price"]
    if mutation == "insert_row":
        t = tables["order_lines"]
        assert (t.missing, t.extra, t.changed) == (0, 1, 0) and t.samples == ["extra (1,99)"]
    if mutation == "duplicate_row_no_pk":
        t = tables["event_log"]
        assert (t.missing, t.extra, t.changed) == (0, 1, 0) and t.samples[0].startswith('extra ("2024-')
    if mutation == "change_in_partition":
        t = tables["measurements_2024"]
        assert t.changed == 1 and t.samples[0].startswith('changed ("City ') and t.samples[0].endswith(": temp")
        assert tables["measurements_2023"].status == "match"
    if mutation == "duplicate_key_after_lost_pk":
        t = tables["widths"]
        assert (t.missing, t.extra, t.changed) == (0, 1, 0) and t.key == ["id"]
        assert t.samples == ["duplicate key (7): 1 on source, 2 on target"]
    if mutation == "sequence_lower":
        check = next(c for c in report.checks if c.object == "public.invoice_no")
        assert (check.source, check.target) == ("1010", "1000") and "setval" in check.detail


def test_drill_down_classifies_and_moves_little(src: Server, make_copy: Callable[[], str]) -> None:
    db = make_copy()
    vf.execute(src, db,
               "DELETE FROM customers WHERE id IN (2990, 2991, 2992)",
               "UPDATE customers SET name = 'Renamed', tags = '{}' WHERE id = 100",
               "INSERT INTO customers (id, email) VALUES (5001, 'new1@example.com'), (5002, 'new2@example.com')",
               "UPDATE page_views SET path = '/changed' WHERE id IN (777, 31337)")  # fmt: skip
    report = verify(src, db)
    assert failures(report) == {("data", "public.customers", "differs"), ("data", "public.page_views", "differs")}
    c = report.table("public", "customers")
    assert c is not None and (c.missing, c.extra, c.changed) == (3, 2, 1)
    assert c.samples == ["missing (2990)", "missing (2991)", "missing (2992)", "changed (100): name, tags",
                         "extra (5001)", "extra (5002)"]  # fmt: skip
    assert c.detail.startswith("3 rows missing on target, 2 rows extra on target, 1 row changed; first: missing (2990)")
    pv = report.table("public", "page_views")
    assert pv is not None and (pv.missing, pv.extra, pv.changed) == (0, 0, 2)
    assert pv.samples == ["changed (777): path", "changed (31337): path"]
    # 40,000 rows per side; the drill-down fetched two sub-buckets' worth (~160 rows each) per side
    assert 0 < pv.drill_rows < 1000


def test_sum_catches_duplicates_that_xor_misses(src: Server) -> None:
    """{(1,a),(1,a),(2,b)} vs {(3,c),(3,c),(2,b)}: same count, same XOR of row hashes, different SUM."""
    for db, rows in (("xor src", "(1,'a'),(1,'a'),(2,'b')"), ("xor tgt", "(3,'c'),(3,'c'),(2,'b')")):
        with connect(src.dsn) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        vf.execute(src, db, "CREATE TABLE t (a int, b text)", f"INSERT INTO t VALUES {rows}")
    xors = []
    for db in ("xor src", "xor tgt"):
        with connect(src.conninfo(db)) as conn:
            xors.append(conn.execute(
                "SELECT count(*), bit_xor(hashtextextended(ROW(t.a, t.b)::text, 0)), "
                "bit_xor(hashtextextended(ROW(t.a, t.b)::text, 1)) FROM t"
            ).fetchone())
    assert xors[0] == xors[1]  # an XOR fingerprint would call these tables equal
    report = verify_database(src.dsn, src.dsn, source_db="xor src", target_db="xor tgt", roles=[])
    t = report.table("public", "t")
    assert t is not None and t.status == "differs" and t.rows_source == t.rows_target == 3
    assert (t.missing, t.extra) == (2, 2)
    assert t.samples == ["missing (1,a) ×2", "extra (3,c) ×2"]
    assert failures(report) == {("data", "public.t", "differs")}


NATIVE = """
CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE typed (id int PRIMARY KEY, a int, b int, s smallint, big bigint, flag boolean, t text,
                    ci text COLLATE nocase, v varchar(20), c char(5), u uuid, ts timestamp, tz timestamptz,
                    tm time, n numeric, iv interval, j jsonb, f float8, d date);
INSERT INTO typed SELECT g, g, g + 1, g, g::bigint * 1000000000, g % 2 = 0, 't' || g, 'ci' || g, 'v' || g, 'c' || g,
       md5(g::text)::uuid, '2024-01-01'::timestamp + g * interval '1 hour',
       '2024-01-01 00:00+00'::timestamptz + g * interval '1 s',
       '12:00'::time + g * interval '1 s', 1.5, interval '1 day', '{"a": 1.0}', 0, '2024-01-01'::date + g
  FROM generate_series(1, 50) g;
UPDATE typed SET t = NULL, a = NULL WHERE id = 3;
"""

# One value changed in a way each column's type might not see: every one must still be found.
NATIVE_CHANGES = {
    "swap_between_columns": "UPDATE typed SET a = b, b = a WHERE id = 5",
    "null_to_zero": "UPDATE typed SET a = 0 WHERE id = 3",
    "null_to_empty": "UPDATE typed SET t = '' WHERE id = 3",
    "case_under_nondeterministic_collation": "UPDATE typed SET ci = upper(ci) WHERE id = 7",
    "one_microsecond": "UPDATE typed SET tz = tz + interval '1 microsecond' WHERE id = 9",
    "bool_flip": "UPDATE typed SET flag = NOT flag WHERE id = 11",
    "char_value": "UPDATE typed SET c = 'cX' WHERE id = 12",
    "numeric_scale": "UPDATE typed SET n = 1.50 WHERE id = 13",
    "interval_units": "UPDATE typed SET iv = interval '24 hours' WHERE id = 14",
    "jsonb_number_scale": """UPDATE typed SET j = '{"a": 1.00}' WHERE id = 15""",
    "negative_zero": "UPDATE typed SET f = '-0' WHERE id = 16",
    "rows_swap_values": "UPDATE typed SET big = CASE id WHEN 17 THEN 18000000000 ELSE 17000000000 END "
                        "WHERE id IN (17, 18)",
}


@pytest.fixture(scope="module")
def typed(src: Server) -> str:
    with connect(src.dsn) as conn:
        conn.execute("CREATE DATABASE typed")
    vf.execute(src, "typed", NATIVE)
    return "typed"


@pytest.mark.parametrize("change", list(NATIVE_CHANGES))
def test_column_hashes_see_every_change(src: Server, typed: str, change: str) -> None:
    """Native per-type hashes where exact, text where a type's hash equates distinct values."""
    db = f"typed {change}"
    with connect(src.dsn) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE typed").format(sql.Identifier(db)))
    assert verify_database(src.dsn, src.dsn, source_db=typed, target_db=db, roles=[]).ok
    vf.execute(src, db, NATIVE_CHANGES[change])
    report = verify_database(src.dsn, src.dsn, source_db=typed, target_db=db, roles=[])
    assert failures(report) == {("data", "public.typed", "differs")}
    t = report.table("public", "typed")
    assert t is not None and t.rows_source == t.rows_target and t.changed >= 1


def test_snapshot_pins_the_source(src: Server, make_copy: Callable[[], str], same: str) -> None:
    """Writes after the snapshot export are invisible to every worker; without it they are seen."""
    source = make_copy()
    with connect(src.conninfo(source)) as coordinator:
        coordinator.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = coordinator.execute("SELECT pg_export_snapshot()").fetchone()[0]
        vf.execute(src, source, "INSERT INTO event_log VALUES (now(), 'late', '{}')",
                   "DELETE FROM order_lines WHERE order_id = 3")  # fmt: skip
        pinned = compare_tables(src.conninfo(source), src.conninfo(same), snapshot=snapshot, jobs=2)
        live = compare_tables(src.conninfo(source), src.conninfo(same), jobs=2)
        coordinator.execute("ROLLBACK")
    tables = [t for t in pinned if t.kind != "matview"]  # "refreshed" holds now(): differs in every copy
    assert all(t.status in ("match", "skipped") for t in tables), [t for t in tables if t.status != "match"]
    differing = {t.name: t for t in live if t.status == "differs" and t.kind != "matview"}
    assert set(differing) == {"event_log", "order_lines"}
    assert differing["event_log"].missing == 1 and differing["order_lines"].extra == 2


def test_md5_method_also_detects(src: Server, same: str, make_copy: Callable[[], str]) -> None:
    """The encoding-proof hash (UTF-8 bytes through md5) matches and drills down like the default."""
    results = compare_tables(src.conninfo("shop"), src.conninfo(same), method=HashMethod("md5"))
    assert {t.status for t in results if t.kind != "matview"} == {"match", "skipped"}
    db = make_copy()
    vf.execute(src, db, "UPDATE products SET title = 'x' WHERE sku = 'SKU-00007'")
    results = compare_tables(src.conninfo("shop"), src.conninfo(db), method=HashMethod("md5"))
    products = next(t for t in results if t.name == "products")
    assert products.status == "differs" and products.samples == ["changed (SKU-00007): title"]


def test_binary_floats_and_no_snapshot(src: Server, same: str, make_copy: Callable[[], str]) -> None:
    """The pre-12 float path (float8send/float4send) and a run without an exported snapshot."""
    results = compare_tables(src.conninfo("shop"), src.conninfo(same), binary_floats=True)
    assert {t.status for t in results if t.kind != "matview"} == {"match", "skipped"}
    db = make_copy()
    vf.execute(src, db, "UPDATE products SET ratio = ratio + 0.5, weight = weight WHERE sku = 'SKU-00003'")
    results = compare_tables(src.conninfo("shop"), src.conninfo(db), binary_floats=True)
    products = next(t for t in results if t.name == "products")
    assert products.samples == ["changed (SKU-00003): ratio"]
    report = verify(src, same, use_snapshot=False, jobs=1)
    assert report.ok and report.snapshot is None


def test_expected_differences_are_skipped(src: Server, make_copy: Callable[[], str]) -> None:
    db = make_copy()
    vf.execute(src, db, 'REVOKE SELECT ON products FROM "ünïcødé reader"',
               "SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata")  # fmt: skip
    report = verify(src, db, expected={"acl", "large_objects", "unlogged_data"})
    assert report.ok
    cache = report.table("public", "cache")
    assert cache is not None and cache.status == "skipped" and "unlogged" in cache.detail
    skipped = {(c.category, c.object) for c in report.checks if c.status == "skipped"}
    assert ("acl", "table public.products to ünïcødé reader: SELECT") in skipped
    assert ("large_objects", "*") in skipped
    with pytest.raises(ConfigError, match="unknown verification categories: nonsense"):
        verify(src, db, expected={"nonsense"})


def test_owner_map(src: Server) -> None:
    """Same objects owned by different roles on each side: equal once the owner is mapped."""
    script = """
        CREATE TABLE items (id int PRIMARY KEY, v text);
        INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g;
        CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        GRANT SELECT ON items TO "ünïcødé reader";
        SELECT lo_from_bytea(424242, 'blob');
    """
    with connect(src.dsn) as conn:
        for role, db in (("legacy_owner", "om src"), ("app", "om tgt")):
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role)))
            with connect(src.conninfo(db)) as dbconn:
                dbconn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
                dbconn.execute(script)
    plain = verify_database(src.dsn, src.dsn, source_db="om src", target_db="om tgt", roles=["legacy_owner"])
    categories = {f[0] for f in failures(plain)}
    assert {"owners", "acl", "large_objects"} <= categories
    mapped = verify_database(src.dsn, src.dsn, source_db="om src", target_db="om tgt", roles=["legacy_owner"],
                             owner_map={"legacy_owner": "app"})  # fmt: skip
    assert mapped.ok, failures(mapped)


@pytest.mark.skipif(16 not in available(), reason="PostgreSQL 16 binaries not available")
def test_cross_major_15_to_16_under_other_session_defaults(src: Server, tmp_path: Path) -> None:
    """pg_dump 16 → PostgreSQL 16 with another TimeZone/DateStyle/IntervalStyle/extra_float_digits: clean."""
    with running_server(16, vf.ODD_SETTINGS_B) as tgt:
        vf.copy_roles(src, tgt)
        vf.restore_copy(tgt, vf.dump(src, "shop", tmp_path / "shop16.dump", major=16), "shop", source=src)
        # the same row prints differently under each server's defaults: unpinned text hashes would differ
        texts = []
        for server in (src, tgt):
            with connect(server.conninfo("shop")) as conn:
                texts.append(conn.execute("SELECT c::text FROM public.customers c WHERE id = 1").fetchone()[0])
                conn.execute("BEGIN")
                conn.execute(PINNED)
                texts.append(conn.execute("SELECT c::text FROM public.customers c WHERE id = 1").fetchone()[0])
                conn.execute("ROLLBACK")
        assert texts[0] != texts[2] and texts[1] == texts[3]
        report = verify_database(src.dsn, tgt.dsn, source_db="shop", target_db="shop", roles=vf.ROLES)
        assert report.source_version.startswith("15") and report.target_version.startswith("16")
        assert report.ok, failures(report)
        assert sum(1 for t in report.tables if t.status == "match") == 12


def test_errors_name_the_object_and_the_fix(src: Server, same: str) -> None:
    with pytest.raises(ConnectionFailure):
        verify_database("host=127.0.0.1 port=1 user=postgres connect_timeout=2", src.dsn, source_db="shop",
                        target_db=same, roles=[])  # fmt: skip
    with connect(src.dsn) as conn:
        conn.execute("CREATE ROLE verifier LOGIN PASSWORD 'pw'")
    src.add_password("verifier", "pw")
    with pytest.raises(StepFailed) as err:
        compare_tables(src.conninfo("shop", "verifier"), src.conninfo(same), jobs=1)
    assert "permission denied for table" in err.value.message and "on source" in err.value.message
    assert err.value.message.startswith("verify table ")
    assert err.value.hint and "grant SELECT" in err.value.hint


EDGE = """
CREATE TABLE nothing ();
INSERT INTO nothing DEFAULT VALUES; INSERT INTO nothing DEFAULT VALUES;
CREATE TABLE "user" ("select" int NOT NULL UNIQUE, t text, doubled int GENERATED ALWAYS AS ("select" * 2) STORED);
INSERT INTO "user" ("select", t) SELECT g, 'row ' || g FROM generate_series(1, 20) g;
CREATE TABLE parent (id int, v text);
CREATE TABLE child () INHERITS (parent);
INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (2, 'c'), (3, 'c');
CREATE SEQUENCE countdown INCREMENT -1 MINVALUE -1000 MAXVALUE 100 START 100;
SELECT nextval('countdown'), nextval('countdown');
"""


def test_edge_shapes(src: Server) -> None:
    """Zero-column tables, keyword names, generated columns, inheritance (FROM ONLY), a unique key
    instead of a primary key, a descending sequence."""
    for db in ("edge src", "edge tgt"):
        with connect(src.dsn) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        vf.execute(src, db, EDGE)
    clean = verify_database(src.dsn, src.dsn, source_db="edge src", target_db="edge tgt", roles=[])
    assert clean.ok, failures(clean)
    rows = {t.name: t.rows_source for t in clean.tables}
    assert rows == {"nothing": 2, "user": 20, "parent": 1, "child": 2}
    assert clean.table("public", "user").key == ["select"]  # type: ignore[union-attr]
    vf.execute(src, "edge tgt", "INSERT INTO nothing DEFAULT VALUES", "INSERT INTO child VALUES (4, 'c')",
               """UPDATE "user" SET t = 'x' WHERE "select" = 5""", "SELECT setval('countdown', 100)")  # fmt: skip
    report = verify_database(src.dsn, src.dsn, source_db="edge src", target_db="edge tgt", roles=[])
    assert failures(report) == {("data", "public.nothing", "differs"), ("data", 'public."user"', "differs"),
                                ("data", "public.child", "differs"),
                                ("sequence_values", "public.countdown", "differs")}  # fmt: skip
    user = report.table("public", "user")
    assert user is not None and user.samples == ["changed (5): t"]
    nothing = report.table("public", "nothing")
    assert nothing is not None and nothing.samples == ["extra ()"] and nothing.extra == 1
    assert report.table("public", "parent").status == "match"  # type: ignore[union-attr]
