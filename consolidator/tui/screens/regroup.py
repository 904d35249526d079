"""Move databases into another app or a new one (the TUI's ``--map DB=APP``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, SelectionList, Static
from textual.widgets.selection_list import Selection

# (ticked databases, app name): an empty name gives each ticked database its own app
Regrouping = tuple[list[str], str]


class RegroupScreen(ModalScreen[Regrouping | None]):
    HELP_TITLE = "Group databases"
    HELP = ("Tick the databases to move (space), then name the app they go to: an existing app joins them, a "
            "new name makes a new app. An empty name gives each ticked database its own app again. Sizing, "
            "strategy and steps are planned again from the evidence; overrides and cluster names of apps that "
            "keep their name are kept.")  # fmt: skip
    DEFAULT_CSS = """
    RegroupScreen #regroup-databases { height: auto; max-height: 12; margin-bottom: 1; }
    RegroupScreen #regroup-error { color: $error; display: none; }
    RegroupScreen #regroup-error.-shown { display: block; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel_regroup", tooltip="close without changes")]

    def __init__(self, databases: list[tuple[str, str]], app_name: str) -> None:
        """``databases``: (database, app it belongs to now); ``app_name``: the proposed destination."""
        super().__init__()
        self.databases, self.app_name = databases, app_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="regroup-box"):
            yield Static("Group databases into an app", classes="modal-title")
            yield Static("Tick the databases to move (space), then name the app they go to.", markup=False)
            yield SelectionList[str](*(Selection(f"{db}  (now in app {app})", db) for db, app in self.databases),
                                     id="regroup-databases")  # fmt: skip
            yield Input(value=self.app_name, placeholder="app name (empty: each its own app)", id="regroup-app")
            yield Static("", id="regroup-error", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Cancel", id="regroup-cancel")
                yield Button("Move", id="regroup-move", variant="primary")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "regroup-move":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def submit(self) -> None:
        ticked = list(self.query_one(SelectionList).selected)
        if not ticked:
            error = self.query_one("#regroup-error", Static)
            error.update("tick at least one database to move")
            error.add_class("-shown")
            return
        self.dismiss((ticked, self.query_one("#regroup-app", Input).value.strip()))

    def action_cancel(self) -> None:
        self.dismiss(None)
