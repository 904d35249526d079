"""F1 / ?: what the current screen and tab are for, and their keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GENERAL = ("ctrl+p opens the command palette (every action by name); F1 or ? this help; ctrl+q quits. Long "
           "work runs in the background: a copy can be cancelled and resumed later (the journal keeps it).")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", id="close_help")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="modal-box", id="help-box"):
            yield Static("Help", classes="modal-title")
            for title, text in self._topics():
                yield Static(title, classes="help-title", markup=False)
                yield Static(text, markup=False)
            yield Static("Everywhere", classes="help-title")
            yield Static(GENERAL, markup=False)

    def _topics(self) -> list[tuple[str, str]]:
        """The screen's and its visible panes' HELP texts with their keys."""
        out: list[tuple[str, str]] = []
        for node in (self.under, *self.under.query("*")):
            text = getattr(type(node), "HELP", None)
            if not text or not _shown(node):
                continue
            keys = [f"{b.key}: {b.description}" for b in getattr(node, "BINDINGS", []) if getattr(b, "description", "")]
            title = getattr(type(node), "HELP_TITLE", type(node).__name__)
            out.append((title, text + ("\nKeys: " + ", ".join(keys) if keys else "")))
        return out


def _shown(node: object) -> bool:
    """Displayed itself and every ancestor up to the screen (a pane in a hidden tab is not shown)."""
    current = node
    while current is not None and not isinstance(current, Screen):
        if not getattr(current, "display", True):
            return False
        current = getattr(current, "parent", None)
    return True
