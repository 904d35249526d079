"""The inventory tab against the demo's legacy server: databases, sorting, findings, drill-down, re-sample."""

from __future__ import annotations

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.messages import InventoryReady, PlanChanged
from consolidator.tui.panes.inventory import InventoryPane
from consolidator.tui.panes.manifests import ManifestsPane
from consolidator.tui.screens.database import DatabaseScreen
from consolidator.tui.screens.main import MainScreen
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE

APPS = {"Team Wiki", "keycloak", "mastodon_production", "nextcloud"}


def make_app(server: Server) -> ConsolidatorApp:
    return ConsolidatorApp(Session(source=server.dsn, sample_seconds=0))


async def settle(app: ConsolidatorApp, pilot: Pilot[int]) -> None:
    """Until no worker runs (a finished worker may start the next one through a message)."""
    for _ in range(20):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            return
    raise AssertionError("workers kept running")


def databases(app: ConsolidatorApp) -> DataTable:
    return app.screen.query_one("#inventory-databases", DataTable)


def row_names(table: DataTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


def cell(table: DataTable, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def test_inventory_loads_lists_databases_and_builds_the_plan(legacy_tui: Server) -> None:
    messages: list[Message] = []
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(app, pilot)
        table = databases(app)
        assert APPS <= set(row_names(table))
        inv = app.session.inventory
        assert inv is not None
        for name in APPS:
            assert cell(table, name, "size").endswith("MiB"), cell(table, name, "size")
            assert cell(table, name, "tables") == str(len(inv.database(name).tables))
        # largest first by default
        sizes = [inv.database(n).size_bytes for n in row_names(table)]
        assert sizes == sorted(sizes, reverse=True)
        status = str(app.screen.query_one("#inventory-status", Static).render())
        assert "PostgreSQL 15" in status and "databases" in status
        # the plan is built and every pane heard of it
        assert app.session.plan is not None and {a.name for a in app.session.plan.apps} == APPS
        assert any(isinstance(m, InventoryReady) for m in messages)
        assert any(isinstance(m, PlanChanged) for m in messages)
        assert app.screen.query_one(ManifestsPane).app_name in APPS


async def test_sorting_by_keys_and_header_click(legacy_tui: Server) -> None:
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        inv = app.session.inventory
        assert inv is not None
        table = databases(app)
        assert app.focused is table
        await pilot.press("s")  # size again: smallest first
        sizes = [inv.database(n).size_bytes for n in row_names(table)]
        assert sizes == sorted(sizes)
        assert "▲" in str(table.columns[next(k for k in table.columns if k.value == "size")].label)
        await pilot.press("n")
        assert row_names(table) == sorted(row_names(table), key=str.lower)
        await pilot.press("a")  # busiest first
        rates = [inv.database(n).activity.commits_per_s for n in row_names(table)]
        assert rates == sorted(rates, reverse=True)
        await pilot.press("f")  # most findings first: nextcloud has the most warnings
        assert row_names(table)[0] == "nextcloud"
        # a click on the "tables" header sorts by table count, most first
        x = sum(col.get_render_width(table) for col in table.ordered_columns[:2]) + 1
        await pilot.click("#inventory-databases", offset=(x, 0))
        await pilot.pause()
        counts = [len(inv.database(n).tables) for n in row_names(table)]
        assert app.screen.query_one(InventoryPane).sort_by == "tables"
        assert counts == sorted(counts, reverse=True)


async def test_palette_runs_the_pane_actions(legacy_tui: Server) -> None:
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"inventory: sort name")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(InventoryPane).sort_by == "name"
        names = row_names(databases(app))
        assert names == sorted(names, key=str.lower)


async def test_findings_of_the_highlighted_database_and_of_all(legacy_tui: Server) -> None:
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = databases(app)
        await pilot.press("n")  # keycloak, mastodon_production, nextcloud, …
        table.move_cursor(row=0)
        await pilot.press("down", "down")
        await pilot.pause()
        assert row_names(table)[table.cursor_row] == "nextcloud"
        findings = app.screen.query_one("#inventory-findings", DataTable)
        rows = [[str(c) for c in findings.get_row_at(i)] for i in range(findings.row_count)]
        assert ["CN101", "warning", "nextcloud.public.oc_activity"] in [r[:3] for r in rows]
        assert all(r[2].startswith("nextcloud") or r[2] == "database nextcloud" for r in rows), rows
        assert all(r[3] for r in rows)  # every finding has its fix
        detail = str(app.screen.query_one("#inventory-finding-detail", Static).render())
        assert detail.startswith(rows[0][0])
        await pilot.press("v")
        codes = {str(findings.get_row_at(i)[0]) for i in range(findings.row_count)}
        assert {"CN101", "CN601", "CN001"} <= codes  # nextcloud's, keycloak's md5 role, the server's


async def test_drill_down_shows_tables_roles_extensions_settings(legacy_tui: Server) -> None:
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = databases(app)
        table.move_cursor(row=table.get_row_index("nextcloud"))
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DatabaseScreen) and screen.db.name == "nextcloud"
        tables = screen.query_one("#db-tables-table", DataTable)
        rows = {str(r[0]): [str(c) for c in r] for r in (tables.get_row_at(i) for i in range(tables.row_count))}
        assert "public.oc_activity" in rows and rows["public.oc_activity"][-1] == "none"
        assert rows["public.oc_file_locks"][1] == "table, unlogged"
        assert all(r[2].endswith(("B", "KiB", "MiB")) for r in rows.values())
        await pilot.press("2")
        roles = screen.query_one("#db-roles-table", DataTable)
        assert "nextcloud" in {str(roles.get_row_at(i)[0]) for i in range(roles.row_count)}
        await pilot.press("3")
        extensions = screen.query_one("#db-extensions-table", DataTable)
        assert "postgres_fdw" in {str(extensions.get_row_at(i)[0]) for i in range(extensions.row_count)}
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        # Team Wiki has ALTER DATABASE … SET settings
        databases(app).move_cursor(row=databases(app).get_row_index("Team Wiki"))
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("4")
        settings = app.screen.query_one("#db-settings-table", DataTable)
        values = {str(settings.get_row_at(i)[1]) for i in range(settings.row_count)}
        assert "search_path=wiki, public" in values


async def test_resample_keeps_the_table_and_the_plan_edits(legacy_tui: Server) -> None:
    messages: list[Message] = []
    app = make_app(legacy_tui)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(app, pilot)
        first = app.session.inventory
        app.session.set_override("keycloak", "instances", 3)
        app.session.sample_seconds = 1
        pane = app.screen.query_one(InventoryPane)
        await pilot.press("r")
        await pilot.pause(0.3)
        assert pane.busy
        assert databases(app).row_count == len(first.databases)  # type: ignore[union-attr]
        await pilot.press("s")  # still usable while sampling
        assert "sampling" in str(app.screen.query_one("#inventory-status", Static).render())
        await settle(app, pilot)
        assert not pane.busy
        assert app.session.inventory is not first and app.session.inventory.sample_seconds == 1  # type: ignore[union-attr]
        assert app.session.app("keycloak").overrides == {"instances": 3}
        assert app.session.app("keycloak").sizing.instances.value == 3
        assert sum(isinstance(m, PlanChanged) for m in messages) >= 2


async def test_usable_at_80x24_without_colour(legacy_tui: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(legacy_tui)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.no_color
        screen = app.screen
        for widget_id in ("#inventory-databases", "#inventory-findings"):
            region = screen.query_one(widget_id).region
            assert region.height >= 3 and region.bottom <= 24 and region.right <= 80, (widget_id, region)
        # every database row fits in the table's height
        table = databases(app)
        assert table.region.height >= table.row_count + 1
