"""Execute and Cutover tabs against a real legacy server and local targets: start → awaiting its go → typed
go → verified and cut over → typed rollback; cancel → interrupted → refused start → resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, ProgressBar, RichLog, Select, TabbedContent

from consolidator.engine.lifecycle import rollback, status, teardown
from consolidator.events import Event
from consolidator.pg.connect import connect
from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.messages import EngineEvent, RunFinished
from consolidator.tui.panes.cutover import CutoverPane
from consolidator.tui.panes.execute import AppRow, ExecutePane, ResumeOffer
from consolidator.tui.screens.confirm import TypeToConfirm
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE

APP = "keycloak"  # the smallest demo app: four tables, 15,002 rows


@pytest.fixture()
def saved_plan(legacy_tui: Server, local_root: Path, tmp_path: Path) -> Iterator[Session]:
    """Inventory → plan (dump, local targets) → saved; afterwards the source is opened again and targets go."""
    session = Session(source=legacy_tui.dsn, sample_seconds=0)
    session.options.local_root = str(local_root)
    session.options.default_strategy = "dump"
    session.take_inventory()
    session.build()
    session.save(tmp_path / "plan")
    plan_dir = session.plan_dir
    assert plan_dir is not None
    try:
        yield session
    finally:
        if (plan_dir / "state.json").exists():
            for app in status(plan_dir)["apps"]:
                if app["state"] == "cut_over":  # teardown keeps a cut-over app's source fenced
                    rollback(plan_dir, app["name"])
            teardown(plan_dir, force=True)


async def settle(pilot: Pilot[Any], seconds: float = 60.0) -> None:
    """Until no worker runs and the panes drew what the last messages brought (their tick is 0.1 s)."""
    app = pilot.app
    async with asyncio.timeout(seconds):
        while True:
            await app.workers.wait_for_complete()
            await pilot.pause(0.25)
            if not any(w.is_running for w in app.workers):
                await pilot.pause(0.15)
                if not any(w.is_running for w in app.workers):
                    return


async def show_tab(pilot: Pilot[Any], tab: str) -> None:
    await settle(pilot)  # the main screen is mounted, on its first tab, which took the focus
    pilot.app.screen.action_show_tab(tab)  # what its number key does
    await pilot.pause()
    assert pilot.app.screen.query_one(TabbedContent).active == tab


async def until(pilot: Pilot[Any], read: Any, wanted: str, seconds: float = 15.0) -> str:
    """Poll ``read()`` until it contains ``wanted`` (or time runs out); returns the last value read."""
    deadline = time.monotonic() + seconds
    value = str(read())
    while wanted not in value and time.monotonic() < deadline:
        await pilot.pause(0.1)
        value = str(read())
    return value


def finished(messages: list[Message], kind: str) -> list[dict[str, str]]:
    """RunFinished of one kind, once each (the hook sees a bubbling message at every node it reaches)."""
    unique = {id(m): m for m in messages if isinstance(m, RunFinished) and m.kind == kind}
    return [m.states for m in unique.values()]


def rows_of(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def source_connects(server: Server) -> bool:
    """Whether an app role gets into the app's source database (a fenced source refuses it); the reader's
    password is SCRAM (keycloak's own is md5, which this server's authentication rules refuse)."""
    try:
        connect(server.conninfo(APP, "grafana_reader")).close()
    except (psycopg.Error, Exception) as exc:  # our connect raises ConsolidatorError subclasses too
        assert "permission denied" in str(exc) or "CONNECT" in str(exc), exc
        return False
    return True


async def test_execute_then_go_then_rollback(saved_plan: Session, legacy_tui: Server) -> None:
    app = ConsolidatorApp(saved_plan)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await show_tab(pilot, "execute")
        await settle(pilot)
        pane = app.screen.query_one(ExecutePane)
        assert set(pane.apps) == {"keycloak", "mastodon_production", "nextcloud", "Team Wiki"}
        pane.query_one("#execute-app", Select).value = APP
        await pilot.click("#execute-start")
        await settle(pilot)

        assert finished(messages, "execute") == [{APP: "awaiting_cutover"}]
        events = [m.event for m in messages if isinstance(m, EngineEvent)]
        assert {e.fields.get("step") for e in events if e.type == "step_complete"} >= {"copy", "verify"}
        row = next(r for r in pane.query(AppRow) if r.app_name == APP)
        assert "awaiting_cutover" in str(row.query_one(".app-detail").render())
        assert row.query_one(ProgressBar).percentage == 1
        tables = {r[1]: r for r in rows_of(pane.query_one("#execute-tables", DataTable)) if r[0] == APP}
        assert set(tables) == {"public.credential", "public.realm", "public.user_entity", "public.user_role_mapping"}
        assert tables["public.user_entity"][2] == "5,000" and tables["public.realm"][2] == "2"
        assert all(r[6] == "done" for r in tables.values())
        assert not source_connects(legacy_tui)  # dump: the source is fenced while it waits for the go

        await show_tab(pilot, "cutover")
        await settle(pilot)
        cut = app.screen.query_one(CutoverPane)
        assert cut.current == APP and cut.app_status and cut.app_status["state"] == "awaiting_cutover"
        checklist = {r[0]: r[2] for r in rows_of(cut.query_one("#cutover-checklist", DataTable))}
        assert list(checklist) == ["fence", "sequences", "verify", "cutover"]
        assert checklist["verify"].startswith("✓ done") and checklist["cutover"] == "· pending"

        await pilot.click("#cutover-go")
        await pilot.pause()
        assert isinstance(app.screen, TypeToConfirm)
        await pilot.press("enter")  # Cancel has the focus: nothing happens without the typed name
        await pilot.pause()
        assert not isinstance(app.screen, TypeToConfirm) and not finished(messages, "cutover")
        await pilot.click("#cutover-go")
        await pilot.pause()
        await pilot.press("shift+tab", *APP, "enter")  # from Cancel back to the name field
        await settle(pilot)

        assert finished(messages, "cutover") == [{APP: "cut_over"}]
        assert cut.app_status and cut.app_status["state"] == "cut_over" and cut.app_status["verified"]
        checklist = {r[0]: r[2] for r in rows_of(cut.query_one("#cutover-checklist", DataTable))}
        assert all(v.startswith("✓ done") for v in checklist.values()), checklist
        results = rows_of(cut.query_one("#cutover-verify", DataTable))
        assert {r[0]: (r[1], r[2]) for r in results} == {
            "public.credential": ("match", "5,000"), "public.realm": ("match", "2"),
            "public.user_entity": ("match", "5,000"), "public.user_role_mapping": ("match", "5,000"),
        }  # fmt: skip
        assert "4/4 tables match, no differences" in str(cut.query_one("#cutover-verify-summary").render())
        assert cut.query_one("#cutover-go", Button).disabled and not cut.query_one("#cutover-rollback").disabled

        await pilot.click("#cutover-rollback")
        await pilot.pause()
        assert isinstance(app.screen, TypeToConfirm)
        await pilot.press("shift+tab", *APP, "enter")  # from Cancel back to the name field
        await settle(pilot)
        assert finished(messages, "rollback") == [{APP: "rolled_back"}]
        assert cut.app_status and cut.app_status["state"] == "rolled_back"
        assert "rolled back" in str(cut.query_one("#cutover-state").render())
    assert source_connects(legacy_tui)  # the source is open to the app again


async def test_cancel_then_refused_start_offers_resume(saved_plan: Session) -> None:
    app = ConsolidatorApp(saved_plan)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await show_tab(pilot, "execute")
        await settle(pilot)
        pane = app.screen.query_one(ExecutePane)
        assert pane.query_one("#execute-resume", Button).disabled  # nothing to resume yet
        pane.query_one("#execute-app", Select).value = APP
        await pilot.click("#execute-start")
        await pilot.click("#execute-cancel")  # at once: the run stops at its first safe point
        await settle(pilot)
        assert finished(messages, "execute") == [{APP: "interrupted"}]
        row = next(r for r in pane.query(AppRow) if r.app_name == APP)
        assert "interrupted — resume continues" in str(row.query_one(".app-detail").render())
        assert not pane.query_one("#execute-resume", Button).disabled

        await pilot.click("#execute-start")  # not resume: the core refuses to start over a run
        await settle(pilot)
        assert isinstance(app.screen, ResumeOffer) and "did not finish" in app.screen.reason
        await pilot.click("#offer-resume")
        await settle(pilot)
        assert finished(messages, "execute")[-1] == {APP: "awaiting_cutover"}
        assert pane.apps[APP].state == "awaiting_cutover"
        assert "awaiting_cutover" in str(row.query_one(".app-detail").render())


async def test_without_a_saved_plan_the_plan_tab_is_offered(legacy_tui: Server) -> None:
    app = ConsolidatorApp(Session(source=legacy_tui.dsn, sample_seconds=0))
    async with app.run_test(size=SIZE) as pilot:
        await show_tab(pilot, "execute")
        await settle(pilot)
        pane = app.screen.query_one(ExecutePane)
        status = await until(pilot, lambda: str(pane.query_one("#execute-status").render()), "save the plan first")
        assert "save the plan first" in status, status
        assert pane.query_one("#execute-start", Button).disabled
        pane.query_one("#execute-to-plan", Button).press()
        active = await until(pilot, lambda: app.screen.query_one(TabbedContent).active, "plan")
        assert active == "plan"


async def test_progress_follows_the_copy_events(legacy_tui: Server) -> None:
    """A table in flight shows its bytes, rate and ETA; the app's bar never reaches 100 % before its step
    completes (indeterminate past the estimate); a finished table shows its rows (dump's event shapes)."""
    app = ConsolidatorApp(Session(source=legacy_tui.dsn, sample_seconds=0))
    async with app.run_test(size=SIZE) as pilot:
        await show_tab(pilot, "execute")
        pane = app.screen.query_one(ExecutePane)
        now = time.time()

        def event(type_: str, message: str, at: float = 0.0, **fields: Any) -> Event:
            return Event(type_, message, fields={"step_id": "shop/copy", **fields}, timestamp=now + at)

        def progress(at: float, sent: int, table_bytes: int) -> Event:
            return event("step_progress", "copy shop public.big", at, table="public.big", bytes=sent,
                         bytes_total=1000, rate=200, database="shop", part=0, parts=1, table_bytes=table_bytes,
                         table_bytes_total=800)  # fmt: skip

        async def draw() -> None:
            await pilot.pause(0.25)  # the pane draws every 0.1 s

        pane.apply(event("step_start", "shop: copy", app="shop", step="copy"))
        pane.apply(event("step_start", "copy 2 tasks of shop", tasks=2, bytes_total=1000))
        pane.apply(progress(0.0, 400, 400))
        pane.apply(progress(0.5, 600, 600))
        await draw()
        row = next(r for r in pane.query(AppRow) if r.app_name == "shop")
        bar = row.query_one(ProgressBar)
        assert (bar.total, bar.progress) == (1000, 600)
        detail = str(row.query_one(".app-detail").render())
        assert detail.startswith("copy") and "600 B/1000 B" in detail and "200 B/s" in detail, detail
        grid = pane.query_one("#execute-tables", DataTable)
        assert rows_of(grid) == [["shop", "public.big", "…", "600 B", "600 B/s", "< 1s", "copying"]]

        pane.apply(progress(1.0, 1000, 800))  # as much as estimated, the step not done: no 100 %
        await draw()
        assert bar.total is None and bar.percentage is None

        pane.apply(event("step_progress", "copied shop public.big", table="public.big", rows=42, bytes=800,
                         seconds=2.0, bytes_total=1000, database="shop", part=0, parts=1))  # fmt: skip
        pane.apply(event("step_complete", "shop: copy done", app="shop", step="copy", seconds=2.1))
        await draw()
        assert rows_of(grid) == [["shop", "public.big", "42", "800 B", "400 B/s", "—", "done"]]
        assert "copy" in pane.apps["shop"].done
        log = "\n".join(str(line.text) for line in pane.query_one("#execute-log", RichLog).lines)
        assert "✓ shop public.big 42 rows 800 B in 2s" in log and "✓ shop: copy done in 2s" in log, log
