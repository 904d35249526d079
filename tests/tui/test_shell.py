"""The shell: connect screen → main screen, help, errors as modals, the core never imports textual."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.screens.connect import load_recent
from consolidator.tui.screens.error import ErrorScreen
from consolidator.tui.screens.help import HelpScreen
from consolidator.tui.screens.main import MainScreen
from consolidator.tui.session import Session
from tests.harness import Server
from tests.tui.conftest import SIZE


async def test_connect_then_main_screen(legacy_tui: Server) -> None:
    app = ConsolidatorApp(Session())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#dsn")
        await pilot.press(*legacy_tui.dsn)
        await pilot.press("ctrl+o")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.session.source == legacy_tui.dsn
    assert load_recent() and all("password" not in d for d in load_recent())


async def test_failed_connection_is_a_modal_not_a_traceback(legacy_tui: Server) -> None:
    app = ConsolidatorApp(Session())
    async with app.run_test(size=SIZE) as pilot:
        params = conninfo_to_dict(legacy_tui.dsn)
        params.update(user="nobody_here", passfile="/nonexistent")
        await pilot.click("#dsn")
        await pilot.press(*make_conninfo(**params))
        await pilot.click("#password")
        await pilot.press(*"wrong")
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen), app.screen
        assert "nobody_here" in app.screen.message and app.screen.hint


async def test_help_on_f1(legacy_tui: Server) -> None:
    app = ConsolidatorApp(Session(source=legacy_tui.dsn))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_malformed_dsn_is_a_modal(legacy_tui: Server) -> None:
    app = ConsolidatorApp(Session())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#dsn")
        await pilot.press(*"host=x bogus_option=1")
        await pilot.press("ctrl+t")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen) and "connection string" in app.screen.message
        assert "bogus_option" in app.screen.message
