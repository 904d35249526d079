"""The workflow in tabs: Inventory → Apps → Manifests → Plan → Execute → Cutover."""

from __future__ import annotations

import dataclasses

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from consolidator.tui.messages import InventoryReady, PlanChanged, PlanSaved
from consolidator.tui.panes.apps import AppsPane
from consolidator.tui.panes.cutover import CutoverPane
from consolidator.tui.panes.execute import ExecutePane
from consolidator.tui.panes.inventory import InventoryPane
from consolidator.tui.panes.manifests import ManifestsPane
from consolidator.tui.panes.plan import PlanPane

TABS = (
    ("inventory", "Inventory", InventoryPane), ("apps", "Apps", AppsPane), ("manifests", "Manifests", ManifestsPane),
    ("plan", "Plan", PlanPane), ("execute", "Execute", ExecutePane), ("cutover", "Cutover", CutoverPane),
)  # fmt: skip


class MainScreen(Screen[None]):
    HELP_TITLE = "consolidator"
    HELP = ("Work from left to right: take the inventory, group databases into apps and size them, review the "
            "manifests, save the plan, execute it, then give each app its go at cutover.")  # fmt: skip
    BINDINGS = [
        Binding(str(i + 1), f"show_tab('{tab_id}')", title, id=f"tab_{tab_id}", tooltip=f"the {title} tab")
        for i, (tab_id, title, _) in enumerate(TABS)
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        start = "apps" if self.app.session.plan is not None and self.app.session.inventory is None else "inventory"
        with TabbedContent(initial=start, id="tabs"):
            for tab_id, title, pane in TABS:
                with TabPane(title, id=tab_id):
                    yield pane(id=f"{tab_id}-pane")
        yield Footer()

    def action_show_tab(self, tab_id: str) -> None:
        # Blur first: a focused widget of the pane being hidden hands the focus to a sibling in that pane,
        # whose TabPane.Focused would switch straight back to it (the new pane focuses itself on Show).
        self.set_focus(None)
        self.query_one(TabbedContent).active = tab_id

    @on(InventoryReady)
    @on(PlanChanged)
    @on(PlanSaved)
    def relay(self, message: Message) -> None:
        """Announcements reach every pane (see messages.py): a fresh copy each, stopped so it cannot bubble back."""
        for tab_id, _, _ in TABS:
            for pane in self.query(f"#{tab_id}-pane"):
                copy = dataclasses.replace(message)  # type: ignore[type-var]
                copy.stop()
                pane.post_message(copy)
