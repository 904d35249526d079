"""The parallel COPY: large tables split into CTID ranges share one snapshot and arrive complete."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from consolidator.engine.copy import CopyTask, TableCopier, plan_tasks, split_limit
from consolidator.engine.dump import Snapshot
from consolidator.pg.connect import connect
from consolidator.verify.run import compare_tables
from tests.harness import Server, running_server

SCHEMA = """
CREATE TABLE big (id bigint PRIMARY KEY, body text, n numeric);
CREATE TABLE "Small ünï" (id int, v text);
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(15) as srv:
        with connect(srv.dsn) as conn:
            conn.execute("CREATE DATABASE src")
            conn.execute("CREATE DATABASE dst")
        for db in ("src", "dst"):
            with connect(srv.conninfo(db)) as conn:
                conn.execute(SCHEMA)
        with connect(srv.conninfo("src")) as conn:
            conn.execute("INSERT INTO big SELECT g, repeat(md5(g::text), 3), g / 3.0 FROM generate_series(1, 30000) g")
            conn.execute("DELETE FROM big WHERE id % 7 = 0")  # holes in the pages the ranges cut through
            conn.execute("""INSERT INTO "Small ünï" SELECT g, 'v' || g FROM generate_series(1, 50) g""")
            conn.execute("VACUUM ANALYZE")
        yield srv


def test_split_limit_leaves_a_core_per_backend() -> None:
    assert split_limit(jobs=2, cores=2) == 1  # one stream already keeps both cores busy
    assert split_limit(jobs=4, cores=8) == 4
    assert split_limit(jobs=8, cores=6) == 3
    assert split_limit(jobs=64, cores=64) == 8  # MAX_PARTS


def test_split_table_copies_every_row_once(server: Server) -> None:
    with Snapshot(server.dsn, "src") as snap:
        tasks = plan_tasks(snap.conn, split_bytes=1 << 20, max_parts=4)
        big = [t for t in tasks if t.name == "big"]
        assert len(big) == 4 and [t.part for t in big] == [0, 1, 2, 3]
        assert big[0].first_page == 0 and big[-1].last_page is None  # the last range is open-ended
        assert all(a.last_page == b.first_page for a, b in itertools.pairwise(big))
        assert [t.name for t in tasks if t.parts == 1] == ["Small ünï"]
        # rows committed after the snapshot must not travel
        with connect(server.conninfo("src")) as conn:
            conn.execute("INSERT INTO big VALUES (100001, 'late', 0)")
        copier = TableCopier(server.dsn, server.dsn, "src", "dst", snapshot=snap.id, jobs=3)
        rows: dict[tuple[str, int], int] = {}

        def done(task: CopyTask, result: object) -> None:
            rows[(task.name, task.part)] = result.rows  # type: ignore[attr-defined]

        copier.run(tasks, done=done)
    assert sum(n for (name, _), n in rows.items() if name == "big") == 30000 - 30000 // 7
    with connect(server.conninfo("src")) as conn:
        conn.execute("DELETE FROM big WHERE id = 100001")
    results = {r.name: r for r in compare_tables(server.conninfo("src"), server.conninfo("dst"))}
    assert results["big"].status == "match" and results["big"].rows_target == 30000 - 30000 // 7
    assert results["Small ünï"].status == "match"
