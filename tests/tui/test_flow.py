"""The whole path in one pilot session against real PostgreSQL: connect → inventory → edit an app → save the
plan → execute one app on a local target → the typed go → cut over and verified."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.widgets import Input, Select

from consolidator.engine.lifecycle import rollback, status, teardown
from consolidator.plan.store import load_plan
from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.panes.cutover import CutoverPane
from consolidator.tui.panes.execute import ExecutePane
from consolidator.tui.screens.confirm import TypeToConfirm
from consolidator.tui.screens.main import MainScreen
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE
from tests.tui.test_apps import open_apps, type_into
from tests.tui.test_execute import APP, finished, settle, show_tab


async def test_connect_to_cutover(legacy_tui: Server, local_root: Path, tmp_path: Path) -> None:
    session = Session(sample_seconds=0)
    session.options.local_root = str(local_root)
    session.options.default_strategy = "dump"
    plan_dir = tmp_path / "plan"
    app = ConsolidatorApp(session)
    messages: list[Message] = []
    try:
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            # connect: the DSN field, then Continue; the inventory and the plan follow in workers
            app.screen.query_one("#dsn", Input).value = legacy_tui.dsn
            await pilot.press("ctrl+o")
            await settle(pilot)
            assert isinstance(app.screen, MainScreen) and session.inventory is not None
            assert session.plan is not None and len(session.plan.apps) == 4

            # edit: more memory for the app, derived on the spot
            pane = await open_apps(app, pilot, APP)
            await type_into(pilot, pane.query_one("#override-memory", Input), "1Gi", enter=True)
            assert session.plan.app(APP).overrides.get("memory") == "1Gi"

            # save the plan where the Plan tab says
            await show_tab(pilot, "plan")
            app.screen.query_one("#plan-dir", Input).value = str(plan_dir)
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert load_plan(plan_dir).app(APP).overrides == {"memory": "1Gi"}

            # execute the one app up to its gate
            await show_tab(pilot, "execute")
            await settle(pilot)
            app.screen.query_one(ExecutePane).query_one("#execute-app", Select).value = APP
            await pilot.click("#execute-start")
            await settle(pilot)
            assert finished(messages, "execute") == [{APP: "awaiting_cutover"}]

            # the go, with the app's name typed
            await show_tab(pilot, "cutover")
            await settle(pilot)
            assert app.screen.query_one(CutoverPane).current == APP
            await pilot.click("#cutover-go")
            await pilot.pause()
            assert isinstance(app.screen, TypeToConfirm)
            await pilot.press("shift+tab", *APP, "enter")
            await settle(pilot)
            assert finished(messages, "cutover") == [{APP: "cut_over"}]
        state = next(a for a in status(plan_dir)["apps"] if a["name"] == APP)
        assert state["state"] == "cut_over" and all(s["state"] == "done" for s in state["steps"])
        assert session.verification(APP) is not None
    finally:
        if (plan_dir / "state.json").exists():
            if next(a for a in status(plan_dir)["apps"] if a["name"] == APP)["state"] == "cut_over":
                rollback(plan_dir, APP)
            teardown(plan_dir, force=True)
