"""Where the source is: a DSN, or host/port/user/database fields with a masked password; test, then go."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Static

from consolidator.errors import ConfigError
from consolidator.pg.connect import redact, without_password
from consolidator.tui.workers import ShowsWorkerErrors

RECENT_MAX = 8


def recent_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "consolidator" / "recent-sources.json"


def load_recent() -> list[str]:
    try:
        data = json.loads(recent_file().read_text())
    except (OSError, ValueError):
        return []
    return [str(d) for d in data if isinstance(d, str)][:RECENT_MAX]


def remember(dsn: str) -> None:
    """Recent sources, never with a password (pgpass/PGPASSWORD give it next time)."""
    from consolidator.fsutil import write_atomic

    clean = without_password(dsn)
    items = [clean, *[d for d in load_recent() if d != clean]][:RECENT_MAX]
    path = recent_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(items, indent=1) + "\n")


class ConnectScreen(ShowsWorkerErrors, Screen[None]):
    HELP_TITLE = "Connect"
    HELP = ("Give the legacy server as a DSN (host=… port=… user=… dbname=… or postgresql://…) or fill the "
            "fields. The password field is masked and never stored: recent sources are kept without it, and "
            "PGPASSWORD or ~/.pgpass work as for the CLI. Test checks the connection; Continue takes the "
            "inventory.")  # fmt: skip
    BINDINGS = [
        Binding("ctrl+t", "test", "Test connection", id="test_connection", tooltip="connect once and report"),
        Binding("ctrl+o", "go", "Continue", id="continue", tooltip="take the inventory of this source"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="connect"):
            yield Label("Source DSN")
            yield Input(placeholder="host=legacy.example port=5432 user=postgres dbname=postgres", id="dsn")
            yield Static("or", classes="status-line")
            with Horizontal(id="fields"):
                yield Input(placeholder="host", id="host")
                yield Input(placeholder="5432", id="port", type="integer")
                yield Input(placeholder="user", id="user")
                yield Input(placeholder="dbname", id="dbname")
            yield Input(placeholder="password (masked, not stored)", password=True, id="password")
            with Horizontal(id="connect-buttons"):
                yield Button("Test connection", id="test")
                yield Button("Continue", id="go", variant="primary")
            yield Static("", id="connect-status", markup=False)
            yield Label("Recent sources")
            yield OptionList(*load_recent(), id="recent")
        yield Footer()

    def dsn(self) -> str:
        """The DSN the fields describe; the password only goes into the in-memory DSN."""
        typed = self.query_one("#dsn", Input).value.strip()
        password = self.query_one("#password", Input).value
        if typed:
            return make_conninfo(typed, password=password) if password else typed
        params = {k: self.query_one(f"#{k}", Input).value.strip() for k in ("host", "port", "user", "dbname")}
        params = {k: v for k, v in params.items() if v}
        if password:
            params["password"] = password
        return make_conninfo(**params)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#dsn", Input).value = str(event.option.prompt)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.run_action("test" if event.button.id == "test" else "go")

    def action_test(self) -> None:
        self._start(go=False)

    def action_go(self) -> None:
        self._start(go=True)

    def _start(self, go: bool) -> None:
        try:
            self.app.session.source = self.dsn()
        except psycopg.ProgrammingError as exc:
            self.app.show_error(ConfigError(f"not a connection string: {redact(str(exc))}",
                                            hint="host=… port=… user=… dbname=… or postgresql://user@host/db"))
            return
        self.query_one("#connect-status", Static).update("connecting…" if go else "testing…")
        self._test(go=go)

    @work(thread=True, exclusive=True, group="connect", exit_on_error=False)
    def _test(self, go: bool) -> None:
        answer = self.app.session.test_connection()
        remember(self.app.session.source or "")
        self.app.call_from_thread(self._connected, answer, go)

    def _connected(self, answer: str, go: bool) -> None:
        self.query_one("#connect-status", Static).update(f"connected: {answer}")
        if go:
            from consolidator.tui.screens.main import MainScreen

            self.app.switch_screen(MainScreen())
