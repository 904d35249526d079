"""The Apps tab against the demo's apps on a real server: names, overrides, strategies, grouping."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, SelectionList, Static, TabbedContent

from consolidator.inventory.model import Inventory
from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.messages import PlanChanged, announce
from consolidator.tui.panes.apps import DEBOUNCE_S, AppsPane
from consolidator.tui.screens.regroup import RegroupScreen
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE


@pytest.fixture(scope="module")
def inventory(legacy_tui: Server) -> Inventory:
    session = Session(source=legacy_tui.dsn, sample_seconds=0)
    return session.take_inventory()


@pytest.fixture
def session(legacy_tui: Server, inventory: Inventory) -> Iterator[Session]:
    session = Session(source=legacy_tui.dsn, sample_seconds=0)
    session.inventory = copy.deepcopy(inventory)
    session.build()
    yield session


def text(pane: AppsPane, selector: str) -> str:
    return str(pane.query_one(selector, Static).content)


def shown(pane: AppsPane, selector: str) -> bool:
    widget = pane.query_one(selector, Static)
    return widget.has_class("-shown") and bool(str(widget.content))


async def open_apps(app: ConsolidatorApp, pilot: Pilot[int], select: str) -> AppsPane:
    for _ in range(40):  # the first tab takes the focus once shown; its TabPane.Focused must land first,
        await pilot.pause(0.05)  # or it would switch back to that tab after ours
        if app.screen.focused is not None:
            break
    await pilot.pause(0.1)
    app.screen.action_show_tab("apps")  # type: ignore[attr-defined]
    pane = app.screen.query_one(AppsPane)
    for _ in range(40):  # the tab switch is laid out on the next refresh
        await pilot.pause(0.05)
        if pane.query_one("#apps-editor").region.height:
            break
    assert app.screen.query_one(TabbedContent).active == "apps" and pane.query_one("#apps-editor").region
    pane.select_app(select)
    await pilot.pause()
    assert pane.selected == select
    return pane


async def type_into(pilot: Pilot[int], widget: Input, value: str, *, enter: bool = False, keys: bool = False) -> None:
    """Key by key with ``keys``, else as one paste (faster); then Enter, or a pause longer than the debounce."""
    widget.focus()
    await pilot.pause()
    if keys:
        widget.clear()
        await pilot.press(*value)
    else:
        widget.value = value
    if enter:
        await pilot.press("enter")
    else:
        await pilot.pause(DEBOUNCE_S + 0.3)
    await pilot.pause()


async def test_rename_is_checked_as_you_type(session: Session) -> None:
    messages: list[object] = []
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        name = pane.query_one("#cluster-name", Input)
        assert name.value == "keycloak"

        await type_into(pilot, name, "SSO_prod", keys=True)
        assert shown(pane, "#error-cluster") and "DNS-1035" in text(pane, "#error-cluster")
        assert session.app("keycloak").cluster_name == "keycloak"
        assert not any(isinstance(m, PlanChanged) for m in messages)

        await type_into(pilot, name, "nextcloud", enter=True)  # another app's cluster: the core says so
        assert "already app nextcloud's cluster" in text(pane, "#error-cluster")
        assert "apps[1].cluster_name" in text(pane, "#error-cluster")
        assert session.app("keycloak").cluster_name == "keycloak"

        await type_into(pilot, name, "sso-prod")  # applied after a pause in the typing
        assert not shown(pane, "#error-cluster")
        assert session.plan is not None and session.plan.apps[1].cluster_name == "sso-prod"
        assert pane.query_one(DataTable).get_cell("keycloak", "cluster") == "sso-prod"
        assert any(isinstance(m, PlanChanged) and m.app == "keycloak" for m in messages)


async def test_memory_override_recomputes_derived_values(session: Session) -> None:
    before = session.app("nextcloud").sizing.parameters["shared_buffers"].value
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_apps(app, pilot, "nextcloud")
        memory = pane.query_one("#override-memory", Input)

        await type_into(pilot, memory, "8Gi", keys=True)  # debounced: applied once the typing pauses
        planned = session.app("nextcloud")
        assert planned.overrides == {"memory": "8Gi"} and planned.sizing.memory.value == "8Gi"
        after = planned.sizing.parameters["shared_buffers"].value
        assert after == "2GB" != before
        assert "shared_buffers = 2GB" in text(pane, "#derived")
        assert "memory 8192Mi / 4 = 2GB" in text(pane, "#derived")  # with its reason
        assert text(pane, "#value-memory") == "= 8Gi (override)"
        assert pane.query_one(DataTable).get_cell("nextcloud", "memory") == "8Gi"

        await type_into(pilot, memory, "12 potatoes", enter=True)
        error = text(pane, "#error-memory")
        assert shown(pane, "#error-memory") and error.startswith("apps[3].overrides.memory:") and "hint:" in error
        assert session.app("nextcloud").sizing.memory.value == "8Gi"  # unchanged

        await type_into(pilot, memory, "", enter=True)  # empty: back to the evidence
        assert not shown(pane, "#error-memory")
        assert session.app("nextcloud").overrides == {}
        assert session.app("nextcloud").sizing.parameters["shared_buffers"].value == before
        assert f"shared_buffers = {before}" in text(pane, "#derived")

        pooler = pane.query_one("#override-pooler", Select)
        pooler.value = "on"
        await pilot.pause()
        assert session.app("nextcloud").overrides == {"pooler": True}
        assert session.app("nextcloud").sizing.pooler.enabled and text(pane, "#value-pooler").startswith("= on")


async def test_typing_is_kept_per_app_when_switching(session: Session) -> None:
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        instances = pane.query_one("#override-instances", Input)
        instances.focus()
        await pilot.press("3")  # no pause: switching apps applies it first
        pane.select_app("nextcloud")
        await pilot.pause()
        assert session.app("keycloak").overrides == {"instances": 3}
        assert instances.value == "" and pane.selected == "nextcloud"
        pane.select_app("keycloak")
        await pilot.pause()
        assert instances.value == "3"


async def test_strategy_physical_same_major_is_allowed(session: Session) -> None:
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        assert text(pane, "#strategy-reason") == session.app("keycloak").strategy.reason
        pane.query_one("#strategy", Select).value = "physical"
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        planned = session.app("keycloak")
        assert planned.strategy.name == "physical" and planned.strategy.requested == "physical"
        assert text(pane, "#strategy-reason") == planned.strategy.reason and "whole instance" in planned.strategy.reason
        assert not shown(pane, "#error-strategy")
        assert pane.query_one(DataTable).get_cell("keycloak", "strategy") == "physical"


async def test_strategy_physical_across_majors_is_refused_inline(session: Session) -> None:
    session.options.target_version = 16
    session.build()
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        strategy = pane.query_one("#strategy", Select)
        before = session.app("keycloak").strategy
        strategy.value = "physical"
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "MainScreen"  # inline, not a modal
        error = text(pane, "#error-strategy")
        assert "same major (source 15, target 16)" in error and "hint: use dump or logical" in error
        assert session.app("keycloak").strategy == before and strategy.value == "auto"

        strategy.value = "logical"  # the refusal left nothing behind
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.app("keycloak").strategy.name == "logical" and not shown(pane, "#error-strategy")


async def test_regroup_two_databases_into_one_app(session: Session) -> None:
    messages: list[object] = []
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        session.set_override("keycloak", "memory", "2Gi")  # another tab's edit, announced to every pane
        announce(pane, PlanChanged("keycloak"))
        await pilot.pause()
        assert pane.query_one(DataTable).get_cell("keycloak", "memory") == "2Gi"
        assert pane.query_one("#override-memory", Input).value == "2Gi"
        pane.query_one(DataTable).focus()
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, RegroupScreen)
        app.screen.query_one(SelectionList).select("nextcloud")
        name = app.screen.query_one("#regroup-app", Input)
        assert name.value == "keycloak"
        name.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.plan is not None
        apps = {a.name: [d.source for d in a.databases] for a in session.plan.apps}
        assert apps["keycloak"] == ["keycloak", "nextcloud"] and "nextcloud" not in apps and len(apps) == 3
        assert session.app("keycloak").sizing.memory.value == "2Gi"  # kept by the app that kept its name
        table = pane.query_one(DataTable)
        assert table.row_count == 3 and table.get_cell("keycloak", "databases") == "keycloak, nextcloud"
        assert pane.selected == "keycloak" and "nextcloud" in text(pane, "#editor-title")
        assert any(isinstance(m, PlanChanged) and m.app is None for m in messages)

        await pilot.press("g")  # an empty name gives it its own app again
        await pilot.pause()
        app.screen.query_one(SelectionList).select("nextcloud")
        app.screen.query_one("#regroup-app", Input).clear()
        app.screen.query_one("#regroup-app", Input).focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [a.name for a in session.plan.apps] == ["Team Wiki", "keycloak", "mastodon_production", "nextcloud"]
        assert pane.selected == "nextcloud"


async def test_layout_at_80x24_and_without_a_plan(legacy_tui: Server, session: Session) -> None:
    app = ConsolidatorApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        table, editor = pane.query_one(DataTable), pane.query_one("#apps-editor")
        assert not pane.has_class("-wide")
        assert editor.region.y >= table.region.bottom and editor.region.height >= 5  # stacked under the table
        assert editor.region.right <= 80 and pane.query_one("#cluster-name").region.width > 10

    async with ConsolidatorApp(session).run_test(size=(180, 40)) as pilot:
        pane = await open_apps(pilot.app, pilot, "keycloak")  # type: ignore[arg-type]
        table, editor = pane.query_one(DataTable), pane.query_one("#apps-editor")
        assert pane.has_class("-wide") and editor.region.x >= table.region.right  # beside it

    empty = ConsolidatorApp(Session(source=legacy_tui.dsn))
    async with empty.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        empty.screen.action_show_tab("apps")  # type: ignore[attr-defined]
        await pilot.pause()
        pane = empty.screen.query_one(AppsPane)
        assert "No plan yet" in text(pane, "#apps-status") and not pane.query_one("#apps-editor").display


async def test_plan_without_inventory_edits_sizes_but_not_strategies(session: Session, tmp_path: Path) -> None:
    # as a plan opened from its directory without a source: replanning needs an inventory
    session.inventory, session.source, session.plan_dir = None, None, tmp_path
    app = ConsolidatorApp(session)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_apps(app, pilot, "keycloak")
        assert pane.query_one("#strategy", Select).disabled
        assert "inventory" in text(pane, "#apps-status")
        pane.query_one(DataTable).focus()
        await pilot.press("g")
        await pilot.pause()
        assert not isinstance(app.screen, RegroupScreen) and pane.query_one("#apps-status").has_class("-error")
        await type_into(pilot, pane.query_one("#override-instances", Input), "2", enter=True)
        assert session.app("keycloak").sizing.instances.value == 2


def test_bindings_have_ids_and_tooltips() -> None:
    for binding in [*AppsPane.BINDINGS, *RegroupScreen.BINDINGS]:
        assert binding.id and binding.tooltip, binding  # type: ignore[union-attr]
