"""The Apps tab: group databases into apps, name their clusters, pick a strategy, edit the sizes.

Every edit is one call into the core through the session, which validates it (errors name their key
path) and derives the sizing again from the evidence; the pane only shows what comes back, each number
with its reason. Overrides and names are in-memory edits (fast, applied as you type); a strategy change
or a regrouping plans again from the inventory in a worker.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize, Show
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static

from consolidator.errors import ConfigError, ConsolidatorError
from consolidator.names import cluster_name_problem
from consolidator.plan.edit import EDITABLE
from consolidator.plan.model import STRATEGIES, App
from consolidator.report.format import human_bytes, human_duration
from consolidator.tui.messages import InventoryReady, PlanChanged, announce
from consolidator.tui.screens.regroup import Regrouping, RegroupScreen
from consolidator.tui.workers import ShowsWorkerErrors

DEBOUNCE_S = 0.3  # typing pauses this long before an override is applied (Enter applies at once)
WIDE = 150  # from this width the editor sits beside the table, below it stacks underneath
COLUMNS = (
    ("app", "App"), ("cluster", "Cluster"), ("databases", "Databases"), ("strategy", "Strategy"),
    ("instances", "Inst."), ("cpu", "CPU"), ("memory", "Memory"), ("storage", "Storage"), ("pooler", "Pooler"),
    ("downtime", "Downtime"),
)  # fmt: skip
TEXT_KEYS = tuple(k for k in EDITABLE if k != "pooler")  # typed as text; the pooler is a choice
WHOLE_NUMBERS = ("instances", "max_connections")
EXAMPLES = {"instances": "1, 2 or 3", "cpu": "500m, 2", "memory": "768Mi, 8Gi", "storage": "20Gi",
            "wal_storage": "4Gi, none", "max_connections": "at least 10"}  # fmt: skip
POOLER_CHOICES = [("from evidence", "auto"), ("on", "on"), ("off", "off")]
NO_INVENTORY = "Opened from a plan file: strategies and grouping plan again from an inventory (Inventory tab)."
STRATEGY_CHOICES = [("auto (the tool picks)", "auto"), *((s, s) for s in STRATEGIES)]


def error_text(exc: ConsolidatorError) -> str:
    return exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")


def pooler_choice(overrides: dict[str, Any]) -> str:
    """The choice that shows the app's pooler override (a hand-written mapping is 'custom')."""
    if "pooler" not in overrides:
        return "auto"
    value = overrides["pooler"]
    if isinstance(value, dict):
        return "custom"
    return "on" if value else "off"


def typed(key: str, text: str) -> Any:
    """What the plan file would hold for the typed text (whole numbers as numbers); the core validates."""
    text = text.strip()
    return int(text) if key in WHOLE_NUMBERS and text.isdigit() else text


class AppsPane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Apps"
    HELP = ("One row per app: the databases that move together into one CloudNativePG cluster. Pick a row; "
            "below (beside on wide terminals) edit its cluster name (a DNS-1035 label, unique in its "
            "namespace, checked as you type), its strategy (the tool's reason is shown; a choice that cannot "
            "work is refused with the fix) and its overrides: instances, cpu, memory, storage, wal_storage "
            "(none: WAL on the data volume), max_connections and the pooler. Overrides apply as you type "
            "(Enter at once); an empty field goes back to the value derived from the evidence. Every derived "
            "value and postgresql parameter is listed with its reason and recomputes from your overrides "
            "(raise memory and shared_buffers follows). Errors show under the field with their key path in "
            "plan.yaml. g moves databases into another app or a new one.")  # fmt: skip
    BINDINGS = [
        Binding("g", "regroup", "Group databases", id="apps_regroup",
                tooltip="move databases into another app or a new one"),
        Binding("e", "edit", "Edit app", id="apps_edit", tooltip="go to the selected app's cluster name"),
        Binding("escape", "to_table", "Apps table", id="apps_table", show=False, tooltip="back to the apps table"),
    ]  # fmt: skip
    DEFAULT_CSS = """
    AppsPane { height: 1fr; }
    AppsPane #apps-body { layout: vertical; height: 1fr; }
    AppsPane #apps-table { height: auto; max-height: 40%; }
    AppsPane #apps-editor { height: 1fr; padding: 0 1; border-top: solid $primary; }
    AppsPane.-wide #apps-body { layout: horizontal; }
    AppsPane.-wide #apps-table { width: 1fr; height: 1fr; max-height: 100%; }
    AppsPane.-wide #apps-editor { width: 72; border-top: none; border-left: solid $primary; }
    AppsPane #editor-title { text-style: bold; color: $accent; margin-bottom: 1; }
    AppsPane .field { height: auto; }
    AppsPane .field-label { width: 17; color: $text-muted; }
    AppsPane .field Input { width: 22; }
    AppsPane .field #cluster-name { width: 1fr; max-width: 52; }
    AppsPane .field Select { width: 28; }
    AppsPane .field-value { width: 1fr; padding-left: 1; }
    AppsPane .field-reason { color: $text-muted; padding-left: 17; }
    AppsPane .field-error { color: $error; display: none; padding-left: 17; }
    AppsPane .field-error.-shown { display: block; }
    AppsPane #derived { margin-top: 1; }
    AppsPane #apps-status { height: auto; max-height: 3; color: $text-muted; }
    AppsPane #apps-status.-error { color: $error; }
    AppsPane #apps-editor:disabled { opacity: 0.6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.selected: str | None = None  # the app in the editor
        self.busy = False  # a replan runs in a worker: edits wait for it
        self._pending: dict[str, tuple[Timer, str]] = {}  # field → (debounce timer, app)
        self._pooler_custom = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="apps-body"):
            yield DataTable(id="apps-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="apps-editor"):
                yield Static("", id="editor-title", markup=False)
                with Horizontal(classes="field"):
                    yield Label("cluster name", classes="field-label")
                    yield Input(id="cluster-name", compact=True, placeholder="a DNS-1035 label, e.g. sso-prod")
                yield Static("", id="error-cluster", classes="field-error", markup=False)
                with Horizontal(classes="field"):
                    yield Label("strategy", classes="field-label")
                    yield Select(STRATEGY_CHOICES, allow_blank=False, id="strategy", compact=True)
                yield Static("", id="strategy-reason", classes="field-reason", markup=False)
                yield Static("", id="error-strategy", classes="field-error", markup=False)
                for key in TEXT_KEYS:
                    with Horizontal(classes="field"):
                        yield Label(key, classes="field-label")
                        yield Input(id=f"override-{key}", compact=True, placeholder=f"e.g. {EXAMPLES[key]}")
                        yield Static("", id=f"value-{key}", classes="field-value", markup=False)
                    yield Static("", id=f"error-{key}", classes="field-error", markup=False)
                with Horizontal(classes="field"):
                    yield Label("pooler", classes="field-label")
                    yield Select(POOLER_CHOICES, allow_blank=False, id="override-pooler", compact=True)
                    yield Static("", id="value-pooler", classes="field-value", markup=False)
                yield Static("", id="error-pooler", classes="field-error", markup=False)
                yield Static("", id="derived")
        yield Static("", id="apps-status", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.refresh_plan()

    def on_show(self, event: Show) -> None:
        self.refresh_plan()
        self.call_after_refresh(self.take_focus)

    def take_focus(self) -> None:
        """The table gets the focus so the pane's keys work at once, unless the tab was left meanwhile:
        focusing inside a hidden tab would switch back to it."""
        focused = self.screen.focused
        visible = all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))
        if visible and (focused is None or self not in focused.ancestors):
            self.query_one(DataTable).focus()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    def on_plan_changed(self, message: PlanChanged) -> None:
        """Every tab's plan edits, ours included (MainScreen relays announcements to each pane)."""
        self.refresh_plan()

    def on_inventory_ready(self, message: InventoryReady) -> None:
        self.refresh_plan()

    # -- showing the plan

    def refresh_plan(self) -> None:
        """The table and the editor from ``session.plan``; never overwrites what is being typed."""
        plan = self.app.session.plan
        table = self.query_one(DataTable)
        editor = self.query_one("#apps-editor")
        if plan is None:
            table.clear()
            self.selected = None
            editor.display = False
            self.status("No plan yet: take the inventory on the Inventory tab (1).")
            return
        editor.display = True
        if not self.busy:
            self.status("" if self.app.session.inventory is not None else NO_INVENTORY)
        names = [a.name for a in plan.apps]
        if not names:
            return
        if self.selected not in names:
            self.flush()
            self.selected = None
        wanted = names.index(self.selected) if self.selected else 0
        with self.prevent(DataTable.RowHighlighted):  # the editor is loaded below, once
            if [str(k.value) for k in table.rows] != names:
                table.clear()
                for app in plan.apps:
                    table.add_row(*self.row(app), key=app.name)
            else:
                for app in plan.apps:
                    for (column, _), cell in zip(COLUMNS, self.row(app), strict=True):
                        table.update_cell(app.name, column, cell)
            if table.cursor_row != wanted:
                table.move_cursor(row=wanted)
        self.load_editor(names[wanted], fresh=self.selected is None)

    @staticmethod
    def row(app: App) -> tuple[str, ...]:
        s = app.sizing
        pooler = f"{s.pooler.instances}×{s.pooler.pool_mode}" if s.pooler.enabled else "off"
        return (app.name, app.cluster_name, ", ".join(d.source for d in app.databases), app.strategy.name,
                str(s.instances.value), str(s.cpu.value), str(s.memory.value), str(s.storage.value), pooler,
                human_duration(app.estimated_downtime_seconds))  # fmt: skip

    def find(self, name: str) -> App | None:
        """The app of that name (``Plan.app`` also matches cluster and database names)."""
        plan = self.app.session.plan
        return next((a for a in plan.apps if a.name == name), None) if plan is not None else None

    def load_editor(self, name: str, *, fresh: bool) -> None:
        """Show app ``name``; ``fresh`` (another app than before) also fills every field and clears the errors.
        Otherwise a field is filled again only when it is not being edited (focus, pending edit or error)."""
        app = self.find(name)
        if app is None:
            return
        self.selected = name
        has_inventory = self.app.session.inventory is not None
        databases = ", ".join(f"{d.source} ({human_bytes(d.size_bytes)})" for d in app.databases)
        self.query_one("#editor-title", Static).update(f"{app.name}: {databases}")
        strategy = self.query_one("#strategy", Select)
        pooler = self.query_one("#override-pooler", Select)
        if fresh:
            for field in ("cluster", "strategy", *EDITABLE):
                self.show_error(field, None)
        with self.prevent(Input.Changed, Select.Changed):
            for field, widget, value in (
                ("cluster", self.query_one("#cluster-name", Input), app.cluster_name),
                *((key, self.query_one(f"#override-{key}", Input), app.overrides.get(key)) for key in TEXT_KEYS),
            ):
                editing = widget.has_focus or field in self._pending or self.has_error(field)
                if fresh or not editing:
                    widget.value = "" if value is None else str(value)
            custom = isinstance(app.overrides.get("pooler"), dict)  # written by hand in plan.yaml
            if fresh or custom != self._pooler_custom:
                pooler.set_options(POOLER_CHOICES + ([("as in plan.yaml", "custom")] if custom else []))
                self._pooler_custom = custom
            if pooler.value != pooler_choice(app.overrides):
                pooler.value = pooler_choice(app.overrides)
            if strategy.value != app.strategy.requested:
                strategy.value = app.strategy.requested
        strategy.disabled = not has_inventory
        self.query_one("#strategy-reason", Static).update(app.strategy.reason)
        for key in TEXT_KEYS:
            value = getattr(app.sizing, key)
            shown = "none (WAL on the data volume)" if value.value is None else str(value.value)
            where = "override" if key in app.overrides else "from evidence"
            self.query_one(f"#value-{key}", Static).update(f"= {shown} ({where})")
        p = app.sizing.pooler
        state = (f"on: {p.instances} PgBouncer, pool {p.default_pool_size}, {p.pool_mode}" if p.enabled
                 else "off")  # fmt: skip
        where = "override" if "pooler" in app.overrides else "from evidence"
        self.query_one("#value-pooler", Static).update(f"= {state} ({where})")
        self.query_one("#derived", Static).update(self.derived(app))

    @staticmethod
    def derived(app: App) -> Content:
        """Every derived value with its reason: evidence, sizing, steps, parameters, notes."""
        ev, s = app.evidence, app.sizing
        parts: list[str | tuple[str, str]] = [("Evidence", "bold underline"), "\n"]
        working_set = "not measured" if ev.working_set_bytes is None else human_bytes(ev.working_set_bytes)
        parts.append(
            f"{human_bytes(ev.size_bytes)} in {len(ev.databases)} database(s), working set {working_set}, "
            f"{ev.commits_per_s:g} commits/s, peak {ev.peak_connections} connections, CPU {ev.cpu_cores:g} cores "
            f"({ev.cpu_source}), WAL {human_bytes(ev.wal_bytes_per_s)}/s, sampled over {ev.window_seconds:g} s\n\n"
        )

        def item(name: str, value: object, reason: str) -> None:
            parts.extend([(name, "bold"), f" = {value}\n", (f"  {reason}\n", "dim")])

        parts += [("Sizing", "bold underline"), "\n"]
        for key in ("instances", "cpu", "memory", "storage", "wal_storage", "max_connections"):
            v = getattr(s, key)
            item(key, "none" if v.value is None else v.value, v.reason)
        item("pooler", "on" if s.pooler.enabled else "off", s.pooler.reason)
        parts += ["\n", ("Steps", "bold underline"), "\n"]
        item("estimated downtime", human_duration(app.estimated_downtime_seconds),
             f"{app.strategy.name}: the steps that block writes; copy ~{human_duration(app.estimated_copy_seconds)}")
        for step in app.steps:
            blocked = ", writes blocked" if step.writes_blocked else ""
            parts.append(f"  {step.name} ~{human_duration(step.estimated_seconds)}{blocked}\n")
        parts += ["\n", ("postgresql.parameters", "bold underline"), "\n"]
        for name, v in s.parameters.items():
            item(name, v.value, v.reason)
        if s.notes:
            parts += ["\n", ("Notes", "bold underline"), "\n"]
            parts += [f"• {note}\n" for note in s.notes]
        return Content.assemble(*parts)

    def status(self, text: str, *, error: bool = False) -> None:
        line = self.query_one("#apps-status", Static)
        line.update(text)
        line.set_class(error, "-error")

    def has_error(self, field: str) -> bool:
        return self.query_one(f"#error-{field}", Static).has_class("-shown")

    def show_error(self, field: str, error: ConsolidatorError | None) -> None:
        widget = self.query_one(f"#error-{field}", Static)
        widget.update(error_text(error) if error else "")
        widget.set_class(error is not None, "-shown")

    # -- selecting

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = str(event.row_key.value)
        if name != self.selected and self.app.session.plan is not None:
            self.flush()
            self.load_editor(name, fresh=True)

    def select_app(self, name: str) -> None:
        """Put app ``name`` in the editor (its row gets the cursor)."""
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(name))
        if self.selected != name:
            self.flush()
            self.load_editor(name, fresh=True)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()  # Enter on a row: edit it

    def action_edit(self) -> None:
        self.query_one("#cluster-name", Input).focus()

    def action_to_table(self) -> None:
        self.query_one(DataTable).focus()

    # -- edits in memory: names and overrides

    @staticmethod
    def field_of(widget: Input) -> str:
        """'cluster' for the name, the override key for the others."""
        return "cluster" if widget.id == "cluster-name" else (widget.id or "").removeprefix("override-")

    def on_input_changed(self, event: Input.Changed) -> None:
        """A name is checked at once; the edit itself waits for a pause in the typing (or Enter)."""
        if self.selected is None or self.busy:
            return
        field = self.field_of(event.input)
        if field in self._pending:
            self._pending.pop(field)[0].stop()
        if field == "cluster":
            problem = cluster_name_problem(event.input.value)
            if problem:
                self.show_error("cluster", ConfigError(f"{event.input.value!r}: {problem}"))
                return
        timer = self.set_timer(DEBOUNCE_S, partial(self.apply_pending, field))
        self._pending[field] = (timer, self.selected)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply_pending(self.field_of(event.input))

    def apply_pending(self, field: str) -> None:
        if field in self._pending:
            timer, app = self._pending.pop(field)
            timer.stop()
            widget = self.query_one("#cluster-name" if field == "cluster" else f"#override-{field}", Input)
            if field == "cluster":
                self.rename(app, widget.value)
            else:
                self.set_override(app, field, typed(field, widget.value))

    def flush(self) -> None:
        """Apply what was typed but not yet applied (before the editor shows another app)."""
        for field in list(self._pending):
            self.apply_pending(field)

    def rename(self, app: str, name: str) -> None:
        planned = self.find(app)
        if planned is None:  # planned again meanwhile without this app
            return
        if name == planned.cluster_name:
            self.show_error("cluster", None)
            return
        try:
            self.app.session.rename(app, name)
        except ConfigError as exc:
            self.show_error("cluster", exc)
            return
        self.show_error("cluster", None)
        self.edited(app)

    def set_override(self, app: str, key: str, value: Any) -> None:
        planned = self.find(app)
        if planned is None:  # planned again meanwhile without this app: nothing to apply it to
            return
        current = planned.overrides.get(key)
        if value == ("" if current is None else current):
            self.show_error(key, None)
            return
        try:
            self.app.session.set_override(app, key, value)
        except ConfigError as exc:
            self.show_error(key, exc)
            return
        self.show_error(key, None)
        self.edited(app)

    def on_select_changed(self, event: Select.Changed) -> None:
        app = self.find(self.selected) if self.selected is not None and not self.busy else None
        if app is None:
            return
        value = event.select.value  # the widget's value now, not the one of a queued message
        if event.select.id == "strategy" and value != app.strategy.requested:
            self.show_error("strategy", None)
            self.replan_strategy(app.name, str(value))
        elif event.select.id == "override-pooler" and value not in ("custom", pooler_choice(app.overrides)):
            self.set_override(app.name, "pooler", {"auto": None, "on": True, "off": False}[str(value)])

    def edited(self, app: str) -> None:
        announce(self, PlanChanged(app))  # the relayed copy refreshes this pane too

    # -- replanning in a worker: strategies and grouping

    def start_replan(self, what: str) -> None:
        self.flush()
        self.busy = True
        self.query_one("#apps-editor").disabled = True
        self.status(f"{what}…")

    def replan_strategy(self, app: str, strategy: str) -> None:
        self.start_replan(f"planning {app} with strategy {strategy}")
        self._set_strategy(app, strategy)

    @work(thread=True, exclusive=True, group="replan", exit_on_error=False)
    def _set_strategy(self, app: str, strategy: str) -> None:
        try:
            self.app.session.set_strategy(app, strategy)
        except ConfigError as exc:  # refused: shown under the choice, with the fix
            self.app.call_from_thread(self.refused, exc, "strategy")
            return
        except BaseException:
            self.app.call_from_thread(self.refused, None, "")
            raise  # the error modal (ShowsWorkerErrors)
        self.app.call_from_thread(self.replanned, app, app)

    def done_replanning(self) -> None:
        self.busy = False
        self.query_one("#apps-editor").disabled = False
        self.refresh_plan()

    def replanned(self, select: str, changed: str | None) -> None:
        """Back on the UI thread with a new plan: show it, keep the app in the editor, tell the other tabs."""
        self.done_replanning()
        if self.find(select) is not None:
            self.select_app(select)
        announce(self, PlanChanged(changed))

    def refused(self, error: ConfigError | None, where: str) -> None:
        """The plan stays as it was; the refusal shows under ``where`` (a field, or the status line)."""
        self.done_replanning()
        if error is not None and where == "status":
            self.status(error_text(error), error=True)
        elif error is not None:
            self.show_error(where, error)

    def action_regroup(self) -> None:
        session = self.app.session
        if session.plan is None or self.busy:
            return
        if session.inventory is None:
            self.status("Grouping plans again from the inventory: take it on the Inventory tab first.", error=True)
            return
        databases = [(d.source, a.name) for a in session.plan.apps for d in a.databases]
        self.app.push_screen(RegroupScreen(databases, self.selected or ""), self.regroup)

    def regroup(self, choice: Regrouping | None) -> None:
        """Databases → app as ``--map`` takes them, on top of the grouping so far."""
        if not choice:
            return
        databases, app = choice
        mapping = {**self.app.session.options.mapping, **{db: app or db for db in databases}}
        self.start_replan(f"grouping {', '.join(databases)} into {app or 'their own apps'}")
        self._regroup(mapping, app or databases[0])

    @work(thread=True, exclusive=True, group="replan", exit_on_error=False)
    def _regroup(self, mapping: dict[str, str], select: str) -> None:
        try:
            self.app.session.regroup(mapping)
        except ConfigError as exc:
            self.app.call_from_thread(self.refused, exc, "status")
            return
        except BaseException:
            self.app.call_from_thread(self.refused, None, "")
            raise
        self.app.call_from_thread(self.replanned, select, None)
