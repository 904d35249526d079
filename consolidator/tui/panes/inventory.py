"""The inventory tab: the source's databases (sortable), their findings, a drill-down, re-sampling.

The inventory is taken in a thread worker (the core's events become a status line); when it is in, the
plan is built from it (or re-made keeping the edits, after a re-sample) and the other panes are told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from consolidator.events import Event
from consolidator.inventory.model import DatabaseInfo, Finding, Inventory
from consolidator.report.format import human_bytes, human_rate
from consolidator.tui.messages import EngineEvent, InventoryReady, PlanChanged, announce
from consolidator.tui.panes._focus import focus_when_shown
from consolidator.tui.workers import ShowsWorkerErrors

# column key → (header, sort key, descending first)
COLUMNS: dict[str, tuple[str, Callable[[DatabaseInfo], Any], bool]] = {
    "name": ("database", lambda db: db.name.lower(), False),
    "size": ("size", lambda db: db.size_bytes, True),
    "tables": ("tables", lambda db: len(db.tables), True),
    "activity": ("commits/s", lambda db: (db.activity.commits_per_s, db.activity.active_peak), True),
    "sessions": ("sessions", lambda db: (db.activity.backends_peak, db.activity.active_peak), True),
    "findings": ("findings E/W/I", lambda db: severity_counts(db.findings), True),
}
NUMERIC = ("size", "tables", "activity", "sessions", "findings")
SEVERITY_STYLE = {"error": "bold", "warning": "", "info": "dim"}  # the word carries the meaning (NO_COLOR)


def severity_counts(findings: list[Finding]) -> tuple[int, int, int]:
    return tuple(sum(f.severity == s for f in findings) for s in ("error", "warning", "info"))  # type: ignore[return-value]


class InventoryPane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Inventory"
    HELP = ("Every database of the source with its size, tables, activity over the sampling window and its "
            "findings (errors/warnings/info). Sort with the keys below or by clicking a column header (again: "
            "reverse). The findings below are those of the highlighted database, or of the whole server. Enter "
            "opens a database: its tables, roles, extensions and settings. Re-sample takes the inventory again "
            "(read-only) and re-makes the plan from it, keeping your edits.")  # fmt: skip
    BINDINGS = [
        Binding("o", "open_database", "Open", id="inventory_open",
                tooltip="tables, roles, extensions and settings of the highlighted database (Enter too)"),
        Binding("r", "resample", "Re-sample", id="inventory_resample",
                tooltip="take the inventory again, sampling activity anew, and re-make the plan"),
        Binding("s", "sort('size')", "Sort size", id="inventory_sort_size", tooltip="largest first (again: reverse)"),
        Binding("a", "sort('activity')", "Sort activity", id="inventory_sort_activity",
                tooltip="busiest first by commits/s (again: reverse)"),
        Binding("f", "sort('findings')", "Sort findings", id="inventory_sort_findings",
                tooltip="most errors, then warnings first (again: reverse)"),
        Binding("n", "sort('name')", "Sort name", show=False, id="inventory_sort_name",
                tooltip="alphabetical (again: reverse)"),
        Binding("v", "toggle_scope", "All findings", id="inventory_findings_scope",
                tooltip="findings of the whole server, or of the highlighted database only"),
    ]  # fmt: skip
    DEFAULT_CSS = """
    InventoryPane {
        height: 1fr;
    }
    InventoryPane #inventory-status {
        height: auto;
        max-height: 2;
        color: $text-muted;
    }
    InventoryPane #inventory-databases {
        height: auto;
        max-height: 45%;
    }
    InventoryPane #inventory-findings {
        height: 1fr;
        min-height: 3;
    }
    InventoryPane .pane-title {
        height: 1;
        text-style: bold;
        color: $accent;
    }
    InventoryPane #inventory-finding-detail {
        height: auto;
        max-height: 3;
        color: $text-muted;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sort_by, self.descending = "size", True
        self.all_findings = False
        self.selected: str | None = None
        self._findings: list[Finding] = []  # the rows of the findings table
        self.busy = False
        self._sampling_until = 0.0
        self._countdown: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="inventory-status", markup=False)
        yield DataTable(id="inventory-databases", cursor_type="row")
        yield Static("Findings", id="inventory-findings-title", classes="pane-title", markup=False)
        yield DataTable(id="inventory-findings", cursor_type="row")
        yield Static("", id="inventory-finding-detail", markup=False)

    def on_mount(self) -> None:
        session = self.app.session
        if session.inventory is not None:
            self.show_inventory()
        elif session.source:
            # a plan opened from disk stays as saved; a fresh inventory makes the first plan
            self._start(build=session.plan is None)
        else:
            self._status("no source yet: connect first")

    def on_show(self) -> None:
        focus_when_shown(self, self.query_one("#inventory-databases", DataTable))

    # -- taking the inventory

    def action_resample(self) -> None:
        if not self.app.session.source:
            self._status("no source yet: connect first")
            return
        if self.busy:
            self.notify("the inventory is already being taken", severity="warning")
            return
        self._start(build=True)

    def _start(self, build: bool) -> None:
        self.busy = True
        seconds = self.app.session.sample_seconds
        self._status(f"taking the inventory (read-only; activity sampled for {seconds:g} s)…")
        self.take_inventory(build)

    @work(thread=True, exclusive=True, group="inventory", exit_on_error=False)
    def take_inventory(self, build: bool) -> None:
        session = self.app.session
        session.take_inventory(sink=self._sink)
        if get_current_worker().is_cancelled:
            return
        if build:
            session.build()
        self.app.call_from_thread(self._taken, build)

    def _sink(self, event: Event) -> None:
        """Called on the worker thread: post_message is thread-safe."""
        self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        event = message.event
        if event.type == "step_start" and event.fields.get("seconds"):
            self._sampling_until = time.monotonic() + float(event.fields["seconds"])
            self._countdown = self.set_interval(0.5, self._tick)
            self._tick()
        elif event.type == "step_progress" and event.fields.get("total"):
            self._status(f"inventory: {event.message} ({event.fields.get('done')}/{event.fields['total']})")
        else:
            self._status(f"inventory: {event.message}")

    def _tick(self) -> None:
        left = self._sampling_until - time.monotonic()
        if left <= 0 or not self.busy:
            self._stop_countdown()
            if self.busy:
                self._status("inventory: reading the activity counters…")
            return
        self._status(f"inventory: sampling activity, {left:.0f} s left (the table stays usable)")

    def _stop_countdown(self) -> None:
        if self._countdown is not None:
            self._countdown.stop()
            self._countdown = None

    def _taken(self, built: bool) -> None:
        self.busy = False
        self._stop_countdown()
        self.show_inventory()
        announce(self, InventoryReady())
        if built:
            announce(self, PlanChanged())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The mixin shows the error (Textual calls both handlers); here the status line follows."""
        if event.worker.group == "inventory" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.busy = False
            self._stop_countdown()
            self._status("the inventory failed: r tries again" if event.state is WorkerState.ERROR
                         else "the inventory was cancelled")  # fmt: skip

    # -- the tables

    @property
    def inventory(self) -> Inventory | None:
        inv: Inventory | None = self.app.session.inventory
        return inv

    def show_inventory(self) -> None:
        inv = self.inventory
        if inv is None:
            return
        s = inv.server
        sampled = (f"activity over {inv.sample_seconds:g} s" if inv.sample_seconds > 0
                   else "no sampling window: rates are zero")  # fmt: skip
        errors, warnings, infos = severity_counts(inv.findings)
        self._status(f"{len(inv.databases)} databases · {errors} errors, {warnings} warnings, {infos} notices · "
                     f"PostgreSQL {s.version} at {s.host}:{s.port} · {sampled} · taken "
                     f"{inv.collected_at.replace('T', ' ')}")  # fmt: skip
        if self.selected is None or self.selected not in {db.name for db in inv.databases}:
            self.selected = max(inv.databases, key=lambda d: d.size_bytes).name if inv.databases else None
        self.fill_databases()
        self.fill_findings()

    def fill_databases(self) -> None:
        inv = self.inventory
        if inv is None:
            return
        table = self.query_one("#inventory-databases", DataTable)
        keep = self.selected
        table.clear(columns=True)
        for key, (label, _, _) in COLUMNS.items():
            arrow = (" ▼" if self.descending else " ▲") if key == self.sort_by else ""
            table.add_column(Text(label + arrow, justify="right" if key in NUMERIC else "left"), key=key)
        order = sorted(inv.databases, key=COLUMNS[self.sort_by][1], reverse=self.descending)
        for db in order:
            e, w, i = severity_counts(db.findings)
            cells = {
                "name": db.name, "size": human_bytes(db.size_bytes), "tables": str(len(db.tables)),
                "activity": human_rate(db.activity.commits_per_s), "sessions": str(db.activity.backends_peak),
                "findings": f"{e}/{w}/{i}",
            }  # fmt: skip
            table.add_row(*(Text(cells[k], justify="right" if k in NUMERIC else "left") for k in COLUMNS), key=db.name)
        if keep is not None and order:
            table.move_cursor(row=table.get_row_index(keep))
        self.selected = keep

    def fill_findings(self) -> None:
        inv = self.inventory
        if inv is None:
            return
        if self.all_findings or self.selected is None:
            findings, scope = inv.findings, "the whole server"
        else:
            findings, scope = inv.database(self.selected).findings, self.selected
        other = "v: this database only" if self.all_findings else "v: all databases"
        self.query_one("#inventory-findings-title", Static).update(f"Findings of {scope} ({len(findings)}) · {other}")
        table = self.query_one("#inventory-findings", DataTable)
        table.clear(columns=True)
        table.add_columns("code", "severity", "object", "fix")
        for n, f in enumerate(findings):
            table.add_row(Text(f.code), Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")), Text(f.object),
                          Text(f.fix), key=str(n))  # fmt: skip
        self._findings = findings
        self._detail(findings[0] if findings else None)

    def _detail(self, finding: Finding | None) -> None:
        text = "" if finding is None else f"{finding.code} {finding.object}: {finding.message}. Fix: {finding.fix}"
        self.query_one("#inventory-finding-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#inventory-databases")
    def _database_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name is not None and name != self.selected:
            self.selected = name
            if not self.all_findings:
                self.fill_findings()

    @on(DataTable.RowHighlighted, "#inventory-findings")
    def _finding_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and int(event.row_key.value) < len(self._findings):
            self._detail(self._findings[int(event.row_key.value)])

    @on(DataTable.RowSelected, "#inventory-databases")
    def _database_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_database()

    @on(DataTable.HeaderSelected, "#inventory-databases")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.column_key.value in COLUMNS:
            self.action_sort(event.column_key.value)

    # -- actions

    def action_sort(self, column: str) -> None:
        if column == self.sort_by:
            self.descending = not self.descending
        else:
            self.sort_by, self.descending = column, COLUMNS[column][2]
        self.fill_databases()

    def action_toggle_scope(self) -> None:
        self.all_findings = not self.all_findings
        self.fill_findings()

    def action_open_database(self) -> None:
        from consolidator.tui.screens.database import DatabaseScreen

        inv = self.inventory
        if inv is None or self.selected is None:
            return
        self.app.push_screen(DatabaseScreen(inv.database(self.selected), inv))

    def _status(self, text: str) -> None:
        self.query_one("#inventory-status", Static).update(text)
