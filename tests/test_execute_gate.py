"""A gated run stops each app at its gate for a person's go (the TUI's cutover), and a cancelled run stops
at the next safe point; both continue with --resume."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.engine.executor import AWAITING, ExecuteOptions, execute, gate_step
from consolidator.engine.journal import Journal
from consolidator.pg.connect import connect
from consolidator.plan.store import load_plan
from tests.harness import Server, running_server
from tests.test_cli import cli


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15, {"wal_level": "logical"}) as server:
        with connect(server.dsn) as conn:
            conn.execute("CREATE ROLE shop LOGIN PASSWORD 'shop-pw'")
            conn.execute("CREATE ROLE wiki LOGIN PASSWORD 'wiki-pw'")
            conn.execute("CREATE DATABASE shop OWNER shop")
            conn.execute("CREATE DATABASE wiki OWNER wiki")
        server.add_password("shop", "shop-pw")
        server.add_password("wiki", "wiki-pw")
        for db in ("shop", "wiki"):
            with connect(server.conninfo(db)) as conn:
                conn.execute(f"SET ROLE {db}")
                conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
                conn.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
        yield server


def make_plan(source: Server, local_root: Path, out: Path) -> None:
    result = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
                 str(local_root), "--sample-seconds", "0", "--strategy", "shop=dump", "--strategy", "wiki=logical")
    assert result.returncode == 0, result.stderr


def test_gated_run_waits_before_the_writes_stop_or_the_switch(source: Server, local_root: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    plan = load_plan(out)
    assert gate_step(plan.app("shop")) == "cutover" and gate_step(plan.app("wiki")) == "fence"
    result = execute(out, ExecuteOptions(jobs=2, gated=True, source_dsn=source.dsn))
    assert [a.state for a in result.apps] == [AWAITING, AWAITING] and not result.ok
    journal = Journal.load(out)
    assert journal is not None
    shop, wiki = journal.app("shop"), journal.app("wiki")
    def done(app: object, step: str) -> bool:
        return step in app.steps and app.steps[step].state == "done"  # type: ignore[attr-defined]

    assert done(shop, "verify") and not done(shop, "cutover") and shop.verified
    assert done(wiki, "copy") and not done(wiki, "fence")
    connect(source.conninfo("wiki", "wiki")).close()  # the logical app still writes to its source
    # the go: resume one app at a time, as `consolidator cutover` does
    for name in ("wiki", "shop"):
        finished = execute(out, ExecuteOptions(jobs=2, apps=[name], resume=True, source_dsn=source.dsn))
        assert [a.state for a in finished.apps] == ["cut_over"]
    cli("teardown", str(out), "--yes", "--force")


def test_cancelled_run_stops_and_resumes(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    cancel = threading.Event()
    events = []

    def sink(event: object) -> None:
        events.append(event)
        if getattr(event, "type", "") == "step_complete" and event.fields.get("step") == "provision":  # type: ignore[attr-defined]
            cancel.set()  # the user pressed cancel while the first app was being provisioned

    result = execute(out, ExecuteOptions(jobs=2, apps=["shop"], cancel=cancel, source_dsn=source.dsn), sink)
    (app,) = result.apps
    assert app.state == "interrupted" and "stopped on request" in (app.error or "")
    journal = Journal.load(out)
    assert journal is not None and journal.app("shop").steps["provision"].state == "done"
    copy = journal.app("shop").steps.get("copy")
    assert copy is None or copy.state != "done"
    resumed = execute(out, ExecuteOptions(jobs=2, apps=["shop"], resume=True, source_dsn=source.dsn))
    assert [a.state for a in resumed.apps] == ["cut_over"]
    cli("teardown", str(out), "--yes", "--force")
