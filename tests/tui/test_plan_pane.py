"""The manifests and plan tabs against the demo's legacy server: YAML, diff, save, report, staleness."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Static, TabbedContent

from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.messages import PlanChanged, PlanSaved
from consolidator.tui.panes.manifests import ManifestsPane
from consolidator.tui.panes.plan import PlanPane
from consolidator.tui.screens.error import ErrorScreen
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE
from tests.tui.test_inventory import make_app, settle


def shown(app: ConsolidatorApp, widget_id: str) -> str:
    return str(app.screen.query_one(widget_id, Static).render())


async def choose_app(app: ConsolidatorApp, pilot: Pilot[int], name: str) -> ManifestsPane:
    """Press "a" (next app) until the manifests tab shows ``name``."""
    pane = app.screen.query_one(ManifestsPane)
    for _ in range(len(app.session.plan.apps) if app.session.plan else 0):
        if pane.app_name == name:
            break
        await pilot.press("a")
        await settle(app, pilot)
    assert pane.app_name == name
    return pane


async def test_manifests_show_the_cluster_yaml_one_object_or_all(legacy_tui: Server) -> None:
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await settle(app, pilot)
        assert app.screen.query_one(TabbedContent).active == "manifests", app.focused
        pane = await choose_app(app, pilot, "nextcloud")
        assert "kind: Cluster" in pane.text and "kind: Secret" in pane.text
        assert re.search(r"^  name: nextcloud$", pane.text, re.M)
        assert "nextcloud: 2 objects in manifests/nextcloud/" in shown(app, "#manifests-status")
        names = [name for name, _ in pane.files]
        for _ in names[: names.index("cluster-nextcloud.yaml") + 1]:
            await pilot.press("o")
            await settle(app, pilot)
        assert pane.object == "cluster-nextcloud.yaml"
        assert pane.text.startswith("# manifests/nextcloud/cluster-nextcloud.yaml\n")
        assert "kind: Secret" not in pane.text
        for _ in names[names.index("cluster-nextcloud.yaml") :]:  # past the last object: all of them again
            await pilot.press("o")
            await settle(app, pilot)
        assert pane.object == "*" and "kind: Secret" in pane.text


async def test_save_report_and_diff_after_an_edit(legacy_tui: Server, tmp_path: Path) -> None:
    messages: list[Message] = []
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(app, pilot)
        await pilot.press("4")
        await pilot.pause()
        pane = app.screen.query_one(PlanPane)
        dir_input = pane.query_one("#plan-dir", Input)
        assert dir_input.value.startswith("plans/")  # default: plans/<source host>
        assert "not saved yet" in shown(app, "#plan-state")
        await pilot.press("ctrl+r")  # refused before the first save
        await pilot.pause()
        assert not (tmp_path / "plan" / "report.html").exists() and pane.report_path is None

        dir_input.value = str(tmp_path / "plan")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert (tmp_path / "plan" / "plan.yaml").exists()
        assert (tmp_path / "plan" / "manifests" / "nextcloud" / "cluster-nextcloud.yaml").exists()
        assert app.session.saved and app.session.plan_dir == tmp_path / "plan"
        assert any(isinstance(m, PlanSaved) for m in messages)
        assert f"saved in {tmp_path / 'plan'}" in shown(app, "#plan-state")
        assert "plan.yaml" in shown(app, "#plan-files")

        await pilot.press("ctrl+r")
        await settle(app, pilot)
        report = tmp_path / "plan" / "report.html"
        assert report.exists() and "nextcloud" in report.read_text()
        assert str(report) in shown(app, "#plan-report-path")
        assert "still matches" in shown(app, "#plan-staleness")

        # the manifests match the saved plan: an empty diff
        await pilot.press("3")
        await settle(app, pilot)
        manifests = await choose_app(app, pilot, "nextcloud")
        await pilot.press("d")
        await settle(app, pilot)
        assert manifests.text == "No changes." and "no changes against" in shown(app, "#manifests-status")

        # what the Apps pane does after an edit
        app.session.set_override("nextcloud", "instances", 3)
        app.screen.post_message(PlanChanged("nextcloud"))
        await settle(app, pilot)
        assert re.search(r"^-\s+instances: 1$", manifests.text, re.M), manifests.text
        assert re.search(r"^\+\s+instances: 3$", manifests.text, re.M)
        assert "+++ edited/cluster-nextcloud.yaml" in manifests.text
        assert "unsaved edits" in shown(app, "#plan-state")
        await pilot.press("d")  # back to the YAML, with the edit in it
        await settle(app, pilot)
        assert re.search(r"^  instances: 3$", manifests.text, re.M)


async def test_staleness_warns_when_the_source_changed(legacy_tui: Server, tmp_path: Path) -> None:
    session = Session(source=legacy_tui.dsn, sample_seconds=0)
    session.take_inventory()
    session.build()
    session.save(tmp_path / "plan")
    opened = Session(sample_seconds=0)
    opened.open_plan(tmp_path / "plan")
    with psycopg.connect(legacy_tui.conninfo("nextcloud"), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.tui_added_later (id int PRIMARY KEY)")
    try:
        app = ConsolidatorApp(opened)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            assert app.session.inventory is not None  # taken for the Apps pane…
            assert app.session.saved  # …without touching the opened plan
            await pilot.press("4")  # the check runs when the tab opens on a saved plan
            await settle(app, pilot)
            pane = app.screen.query_one(PlanPane)
            assert pane.problems and any("nextcloud" in p for p in pane.problems), pane.problems
            warning = shown(app, "#plan-staleness")
            assert "stale" in warning and "nextcloud" in warning and "re-sample" in warning
            await pilot.press("ctrl+r")  # like the CLI, no report of a stale plan
            await settle(app, pilot)
            assert isinstance(app.screen, ErrorScreen) and "stale" in app.screen.message
            assert not (tmp_path / "plan" / "report.html").exists()
    finally:
        with psycopg.connect(legacy_tui.conninfo("nextcloud"), autocommit=True) as conn:
            conn.execute("DROP TABLE public.tui_added_later")
