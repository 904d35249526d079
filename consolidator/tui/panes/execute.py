"""The execute tab: the saved plan runs up to each app's go, with a bar per app, a row per table, the live log,
a safe cancel and resume (the journal keeps every step).

The run is one thread worker calling :meth:`Session.execute`; the engine's events come back as
:class:`EngineEvent` messages, update a model here and are drawn at most ten times a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, ProgressBar, RichLog, Select, Static, TabbedContent
from textual.worker import WorkerState

from consolidator.engine.copy import PROGRESS_INTERVAL
from consolidator.engine.executor import DONE_STATES
from consolidator.errors import ConsolidatorError, PreconditionError
from consolidator.events import Event
from consolidator.report.format import human_bytes, human_duration
from consolidator.tui.messages import EngineEvent, PlanChanged, PlanSaved, RunFinished
from consolidator.tui.workers import ShowsWorkerErrors

RUN_GROUPS = ("execute", "cutover")  # workers that hold the plan directory: one at a time
TICK_SECONDS = 0.1  # redraw the progress at most this often
PROGRESS_EVERY = 0.2  # in-flight progress events passed on per table (or step) at most this often

STATE_TEXT = {
    "pending": "not started",
    "running": "running",
    "awaiting_cutover": "ready for its go",
    "interrupted": "interrupted — resume continues",
    "failed": "failed — fix, then resume continues",
    "cut_over": "cut over",
    "rolled_back": "rolled back: the source is authoritative",
    "finalized": "finalized",
}


class PostingSink:
    """The engine's event sink for a worker: every event becomes an :class:`EngineEvent` posted to ``target``
    (``post_message`` is thread-safe). In-flight progress passes at most every ``interval`` seconds per table
    or step; the next one supersedes a dropped one. Steps, finished tables and log lines always pass."""

    def __init__(self, target: MessagePump, interval: float = PROGRESS_EVERY) -> None:
        self.target, self.interval = target, interval
        self._last: dict[tuple[str, str, str], float] = {}

    def __call__(self, event: Event) -> None:
        f = event.fields
        if event.type == "step_progress" and "rows" not in f:
            key = (str(f.get("step_id", "")), str(f.get("table", "")), str(f.get("part", "")))
            now = time.monotonic()
            if now - self._last.get(key, float("-inf")) < self.interval:
                return
            self._last[key] = now
        self.target.post_message(EngineEvent(event))


def app_of(event: Event) -> str:
    """The app an event is about: its ``app`` field, else the first part of its ``step_id`` (``app/step``)."""
    name = event.fields.get("app")
    if name:
        return str(name)
    step_id = str(event.fields.get("step_id") or "")
    return step_id.rsplit("/", 1)[0] if "/" in step_id else ""


def disk_signature(plan_dir: Path | None) -> tuple[int, ...]:
    """How the saved plan, its journal and its verification reports look on disk (one stat each). Panes read
    them again only when this changed: parsing a plan is pure Python, which a running copy competes with."""
    out: list[int] = []
    for path in (plan_dir / "plan.yaml", plan_dir / "state.json", plan_dir / "verify") if plan_dir else ():
        try:
            stat = path.stat()
        except OSError:
            out += [0, 0]
        else:
            out += [stat.st_mtime_ns, stat.st_size]
    return tuple(out)


def run_busy(app: Any) -> bool:
    """Whether an execute, cutover or rollback worker is running (they take the plan directory's lock)."""
    return any(w.group in RUN_GROUPS and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers)


@dataclass
class AppView:
    """What the pane knows of one app's run."""

    name: str
    state: str = "pending"
    steps: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    databases: int = 1
    step: str | None = None  # running now
    bytes: int | None = None
    bytes_total: int | None = None
    rate: float | None = None
    lag: int | None = None
    note: str = ""  # the last progress message of a step without bytes (e.g. "3/4 tables ready")
    error: str | None = None

    def step_label(self) -> str:
        if not self.step:
            return ""
        where = f" {self.steps.index(self.step) + 1}/{len(self.steps)}" if self.step in self.steps else ""
        return f"{self.step}{where}"

    def detail(self) -> str:
        if self.state != "running":
            text = f"{self.state} — {STATE_TEXT.get(self.state, self.state)}"
            return text + (f": {self.error}" if self.error and self.state == "failed" else "")
        parts = [self.step_label() or "running"]
        if self.bytes is not None and self.bytes_total:
            parts.append(f"{human_bytes(self.bytes)}/{human_bytes(self.bytes_total)}")
        if self.rate:
            parts.append(f"{human_bytes(self.rate)}/s")
            if self.bytes is not None and self.bytes_total and self.bytes < self.bytes_total:
                parts.append(f"eta {human_duration((self.bytes_total - self.bytes) / self.rate)}")
        if self.lag is not None:
            parts.append(f"lag {human_bytes(self.lag)}")
        elif self.note and self.bytes is None:
            parts.append(self.note)
        return " · ".join(parts)


@dataclass
class TableView:
    """One table of an app: in flight (from progress events) or done (from the events or the journal)."""

    app: str
    database: str
    table: str
    state: str = "copying"
    part_bytes: dict[int, int] = field(default_factory=dict)
    part_estimate: dict[int, int] = field(default_factory=dict)
    parts: int = 1
    parts_done: set[int] = field(default_factory=set)
    rows: int | None = None
    seconds: float = 0.0
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.app}\x00{self.database}/{self.table}"

    @property
    def bytes(self) -> int:
        return sum(self.part_bytes.values())

    @property
    def estimate(self) -> int:
        return sum(self.part_estimate.values())

    def rate(self) -> float | None:
        if self.state == "done":
            return self.bytes / self.seconds if self.seconds > 0 else None
        if not self.first_seen:
            return None
        elapsed = self.last_seen - self.first_seen + PROGRESS_INTERVAL  # the first report comes after one interval
        return self.bytes / elapsed if elapsed > 0 else None

    def cells(self, show_database: bool) -> tuple[str, ...]:
        rate = self.rate()
        eta = "—"
        if self.state != "done" and rate and self.estimate > self.bytes:
            eta = human_duration((self.estimate - self.bytes) / rate)  # estimate: pg_relation_size, not COPY bytes
        state = self.state
        if self.state == "copying" and self.parts > 1:
            state = f"part {len(self.parts_done)}/{self.parts}"
        name = f"{self.database}/{self.table}" if show_database else self.table
        rows = f"{self.rows:,}" if self.rows is not None else "…"
        moved = human_bytes(self.bytes) if self.bytes or self.state == "done" else "—"
        return (self.app, name, rows, moved, f"{human_bytes(rate)}/s" if rate else "—", eta, state)


@dataclass
class StatusLoaded(Message):
    """The journal's view of the saved plan (``Session.status()``), or why it could not be read."""

    status: dict[str, Any] | None
    error: str | None = None


@dataclass
class ResumeOffered(Message):
    """A start was refused because a previous run did not finish: resume is the way on."""

    reason: str


class ResumeOffer(ModalScreen[bool]):
    """'A previous run did not finish': resume it (the default way on) or leave it."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel", id="cancel_resume_offer",
                        tooltip="leave the run as it is")]  # fmt: skip

    def __init__(self, reason: str, plan_dir: str) -> None:
        super().__init__()
        self.reason, self.plan_dir = reason, plan_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Static("A previous run did not finish", classes="modal-title")
            yield Static(f"{self.reason}.", markup=False)
            yield Static("Resume continues it from the journal: finished steps are not repeated, an interrupted "
                         "table is copied again. To start over instead, run "
                         f"`consolidator execute {self.plan_dir} --restart` in a terminal.", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Cancel", id="offer-cancel")
                yield Button("Resume", id="offer-resume", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#offer-resume", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "offer-resume")


class AppRow(Horizontal):
    """One app: name, a bar (bytes of the running step, or steps done while idle), step and state."""

    def __init__(self, app_name: str) -> None:
        super().__init__(classes="app-row")
        self.app_name = app_name
        self._detail = ""

    def compose(self) -> ComposeResult:
        yield Label(self.app_name, classes="app-name", markup=False)
        yield ProgressBar(total=None, show_eta=False, classes="app-bar")
        yield Label("", classes="app-detail", markup=False)

    def show(self, view: AppView) -> None:
        bar = self.query_one(ProgressBar)
        if view.state == "running":
            if view.bytes is not None and view.bytes_total and view.bytes < view.bytes_total:
                # never 100 % before the step completes: the total is an estimate
                bar.update(total=view.bytes_total, progress=min(view.bytes, int(view.bytes_total * 0.99)))
            elif bar.total is not None:
                bar.update(total=None)  # no bytes, or more than estimated: indeterminate
        elif view.state in ("awaiting_cutover", *DONE_STATES):
            bar.update(total=1, progress=1)
        else:
            bar.update(total=max(1, len(view.steps)), progress=len(view.done & set(view.steps)))
        detail = view.detail()
        if detail != self._detail:  # a fixed-size line: no layout pass (it would cost every widget on the screen)
            self._detail = detail
            self.query_one(".app-detail", Label).update(detail, layout=False)


class ExecutePane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Execute"
    HELP = ("Runs the saved plan (all apps, or the one selected) up to each app's go: provisioning, roles, "
            "schema, copy, indexes, sequences and, for offline strategies, verification. Each app gets a bar "
            "(bytes of the running step; indeterminate when a step reports none) and the table shows every "
            "table in flight or done with rows, bytes, rate and ETA (sizes are estimates: the bar never shows "
            "100 % before a step completes). Cancel stops at the next safe point; every step is journaled, so "
            "Resume continues where the run stopped. An app at 'awaiting_cutover' is ready for its go on the "
            "Cutover tab.")  # fmt: skip
    BINDINGS = [
        Binding("s", "start", "Start", id="execute_start",
                tooltip="run the saved plan (the selected app, or all) up to each app's go"),
        Binding("r", "resume", "Resume", id="execute_resume", tooltip="continue the journaled run where it stopped"),
        Binding("x", "cancel", "Cancel run", id="execute_cancel",
                tooltip="stop at the next safe point; Resume continues"),
        Binding("l", "clear_log", "Clear log", id="execute_clear_log", tooltip="empty the log below", show=False),
    ]  # fmt: skip
    DEFAULT_CSS = """
    ExecutePane {
        height: 1fr;
        #execute-controls { height: auto; }
        #execute-app { width: 30; }
        #execute-controls Button { margin-left: 1; min-width: 10; }
        #execute-status { height: auto; max-height: 2; color: $text-muted; }
        #execute-apps { height: auto; max-height: 6; }
        .app-row { height: 1; }
        .app-name { width: 19; padding-right: 1; text-style: bold; text-wrap: nowrap; text-overflow: ellipsis; }
        .app-bar { width: 1fr; max-width: 38; }
        .app-bar Bar { width: 1fr; }
        .app-detail { width: 2fr; padding-left: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        #execute-tables { height: 1fr; min-height: 4; }
        #execute-log { height: 6; min-height: 3; background: $boost; }
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.apps: dict[str, AppView] = {}
        self.tables: dict[str, TableView] = {}
        self.journal_status: dict[str, Any] | None = None
        self._options: list[str] = []
        self._loaded: tuple[int, ...] | None = None  # disk_signature of what is on screen
        self._dirty: set[str] = set()  # app names and table keys to redraw
        self._log: list[str] = []
        self._cancel: threading.Event | None = None
        self._run_active = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="execute-controls"):
            yield Select([], prompt="all apps", allow_blank=True, compact=True, id="execute-app")
            yield Button("Start", id="execute-start", variant="primary", compact=True)
            yield Button("Resume", id="execute-resume", compact=True)
            yield Button("Cancel", id="execute-cancel", variant="warning", compact=True, disabled=True)
            yield Button("Plan tab", id="execute-to-plan", compact=True)
        yield Static("", id="execute-status", markup=False)
        yield VerticalScroll(id="execute-apps")
        table: DataTable[str] = DataTable(id="execute-tables", cursor_type="row", zebra_stripes=True)
        for label, key in (("app", "app"), ("table", "table"), ("rows", "rows"), ("bytes", "bytes"),
                           ("rate", "rate"), ("ETA", "eta"), ("state", "state")):  # fmt: skip
            table.add_column(label, key=key)
        yield table
        yield RichLog(id="execute-log", max_lines=5000, wrap=True, markup=False, highlight=False)

    def on_mount(self) -> None:
        self.set_interval(TICK_SECONDS, self._draw)
        self._controls()

    def on_show(self) -> None:
        self.refresh_status()
        if self.app.focused is None or self not in self.app.focused.ancestors:
            self.query_one("#execute-app", Select).focus()

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # a thread cannot be killed: the run stops at its next safe point

    # -- state

    def _plan_ready(self) -> bool:
        plan_dir = self.app.session.plan_dir
        return plan_dir is not None and (plan_dir / "plan.yaml").exists()

    def _selected(self) -> list[str]:
        value = self.query_one("#execute-app", Select).value
        return [] if value is Select.BLANK or value is None else [str(value)]

    def _controls(self) -> None:
        ready = self._plan_ready()
        busy = self._run_active or run_busy(self.app)
        has_run = bool(self.journal_status and self.journal_status.get("started_at"))
        self.query_one("#execute-start", Button).disabled = busy or not ready
        self.query_one("#execute-resume", Button).disabled = busy or not ready or not has_run
        self.query_one("#execute-cancel", Button).disabled = not self._run_active
        self.query_one("#execute-to-plan", Button).display = not ready

    def _say(self, text: str) -> None:
        self.query_one("#execute-status", Static).update(text)

    def refresh_status(self, force: bool = False) -> None:
        """Read the saved plan and its journal (in a worker) when they changed on disk, or say that the plan
        must be saved first."""
        self._controls()
        session = self.app.session
        if not self._plan_ready():
            self._loaded = None
            self._say("No saved plan: save the plan first (Plan tab), then execute it here.")
            return
        signature = disk_signature(session.plan_dir)
        if self._run_active or (signature == self._loaded and not force):
            return
        self._loaded = signature
        self._load_status(session)

    @work(thread=True, exclusive=True, group="execute-status", exit_on_error=False)
    def _load_status(self, session: Any) -> None:
        try:
            status = session.status()
        except ConsolidatorError as exc:
            self.post_message(StatusLoaded(None, f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")))
            return
        self.post_message(StatusLoaded(status))

    def on_status_loaded(self, message: StatusLoaded) -> None:
        message.stop()
        if message.status is None:
            self._say(f"The saved plan cannot be read: {message.error}")
            return
        self.journal_status = message.status
        for app in message.status["apps"]:
            view = self.apps.setdefault(app["name"], AppView(app["name"]))
            view.steps = [s["name"] for s in app["steps"]]
            view.databases = len(app.get("databases") or []) or 1
            if not self._run_active:
                view.done = {s["name"] for s in app["steps"] if s["state"] == "done"}
                view.state, view.step = app["state"], None
                failed = [s for s in app["steps"] if s["state"] == "failed"]
                view.error = failed[0]["error"] if failed else None
            journaled = set()
            for key, table in app.get("tables", {}).items():
                database, _, qualified = key.partition("/")
                self._journal_table(app["name"], database, qualified, table)
                journaled.add(qualified)
            for stray in [k for k, t in self.tables.items() if t.app == app["name"] and not t.database
                          and t.table in journaled]:  # fmt: skip
                self._forget_table(stray)  # reported without its database (a cutover copy): the journal has it
            self._dirty.add(app["name"])
        names = [a["name"] for a in message.status["apps"]]
        for gone in [n for n in self.apps if n not in names]:
            del self.apps[gone]
        self._sync_rows(names)
        self._controls()
        self._say(self._summary())

    def _forget_table(self, key: str) -> None:
        del self.tables[key]
        grid: DataTable[str] = self.query_one("#execute-tables", DataTable)
        if key in grid.rows:
            grid.remove_row(key)

    def _journal_table(self, app: str, database: str, qualified: str, data: dict[str, Any]) -> None:
        view = self.tables.get(f"{app}\x00{database}/{qualified}")
        if view is None:
            view = TableView(app, database, qualified, state=data.get("state") or "pending")
            self.tables[view.key] = view
        if data.get("state") == "done" or view.state != "copying":
            view.state = data.get("state") or view.state
            if data.get("rows") is not None:
                view.rows = int(data["rows"])
            if data.get("bytes") and not view.bytes:
                view.part_bytes = {0: int(data["bytes"])}
        self._dirty.add(view.key)

    def _sync_rows(self, names: list[str]) -> None:
        box = self.query_one("#execute-apps", VerticalScroll)
        rows = {row.app_name: row for row in box.query(AppRow)}
        for name, row in rows.items():
            if name not in names:
                row.remove()
        box.mount_all([AppRow(name) for name in names if name not in rows])
        select = self.query_one("#execute-app", Select)
        if names != self._options:
            keep = select.value
            self._options = list(names)
            select.set_options([(name, name) for name in names])
            if keep in names:
                select.value = keep

    def _summary(self) -> str:
        plan_dir = self.app.session.plan_dir
        if not self.apps:
            return f"Plan {plan_dir}: no apps."
        counts: dict[str, int] = {}
        for view in self.apps.values():
            counts[view.state] = counts.get(view.state, 0) + 1
        states = ", ".join(f"{n} {s}" for s, n in counts.items())
        unsaved = "" if self.app.session.saved else " The plan on screen has unsaved edits: this runs the saved one."
        started = (self.journal_status or {}).get("started_at")
        run = f"run started {started}" if started else "not executed yet"
        ready = [v.name for v in self.apps.values() if v.state == "awaiting_cutover"]
        go = f" Ready for the go on the Cutover tab: {', '.join(ready)}." if ready else ""
        return f"Plan {plan_dir} · {run} · {states}.{go}{unsaved}"

    def on_plan_saved(self, message: PlanSaved) -> None:
        """Another tab saved the plan: this is what Start runs now."""
        if self.display and not self._run_active:
            self.refresh_status(force=True)

    def on_plan_changed(self, message: PlanChanged) -> None:
        if self.journal_status is not None and self._plan_ready() and not self._run_active:
            self._say(self._summary())  # says that the plan on screen has unsaved edits

    # -- actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"execute-start": "start", "execute-resume": "resume", "execute-cancel": "cancel",
                   "execute-to-plan": "to_plan"}  # fmt: skip
        if event.button.id in actions:
            event.stop()
            getattr(self, f"action_{actions[event.button.id]}")()

    def action_start(self) -> None:
        self._launch(resume=False)

    def action_resume(self) -> None:
        self._launch(resume=True)

    def action_cancel(self) -> None:
        if self._cancel is None or not self._run_active:
            self.notify("Nothing is running.", severity="warning")
            return
        self._cancel.set()
        self._say("Cancelling: the run stops at the next safe point (a table in flight is copied again on resume).")

    def action_clear_log(self) -> None:
        self.query_one("#execute-log", RichLog).clear()

    def action_to_plan(self) -> None:
        for tabs in self.screen.query(TabbedContent):
            tabs.active = "plan"

    def _launch(self, resume: bool) -> None:
        if not self._plan_ready():
            self._say("No saved plan: save the plan first (Plan tab), then execute it here.")
            return
        if self._run_active or run_busy(self.app):
            self.notify("A run is in progress: wait for it or cancel it.", severity="warning")
            return
        apps = self._selected()
        self._cancel = threading.Event()  # made here: a cancel pressed at once must reach the run
        self._run_active = True
        for name in apps or list(self.apps):
            view = self.apps.get(name)
            if view is not None and view.state not in (*DONE_STATES, "awaiting_cutover"):
                view.error, view.lag, view.note = None, None, ""
        self._controls()
        which = ", ".join(apps) if apps else "all apps"
        self._say(f"{'Resuming' if resume else 'Starting'} {which}…")
        self._log.append(f"── {'resume' if resume else 'execute'} {which}")
        self._run(self.app.session, apps, resume, self._cancel)

    @work(thread=True, exclusive=True, group="execute", exit_on_error=False)
    def _run(self, session: Any, apps: list[str], resume: bool, cancel: threading.Event) -> None:
        states: dict[str, str] = {}
        try:
            result = session.execute(apps, PostingSink(self), resume=resume, cancel=cancel)
            states = {a.name: a.state for a in result.apps}
        except PreconditionError as exc:
            if resume or not self._unfinished(session):
                raise
            self.post_message(ResumeOffered(exc.message))  # the core refused to start over a run: offer resume
        finally:
            self.post_message(RunFinished("execute", states))

    @staticmethod
    def _unfinished(session: Any) -> list[str]:
        try:
            status = session.status()
        except ConsolidatorError:
            return []
        if not status.get("started_at"):
            return []
        return [a["name"] for a in status["apps"] if a["state"] not in (*DONE_STATES, "rolled_back")]

    def on_resume_offered(self, message: ResumeOffered) -> None:
        message.stop()
        self._say(f"Refused: {message.reason}. Resume continues it.")

        def answered(resume: bool | None) -> None:
            if resume:
                self.action_resume()

        self.app.push_screen(ResumeOffer(message.reason, str(self.app.session.plan_dir)), answered)

    def on_run_finished(self, message: RunFinished) -> None:
        if message.kind != "execute":
            return
        self._run_active = False
        for name, state in message.states.items():
            view = self.apps.setdefault(name, AppView(name))
            view.state, view.step = state, None
            self._dirty.add(name)
        self._controls()
        if message.states:
            self._log.append("── " + ", ".join(f"{n}: {s}" for n, s in message.states.items()))
        self.refresh_status(force=True)

    # -- the engine's events

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        self.apply(message.event)

    def apply(self, event: Event) -> None:
        """Fold one engine event into the model; drawing happens on the next tick."""
        f = event.fields
        name = app_of(event)
        view = self.apps.get(name) if name else None
        if view is None and name:
            view = self.apps[name] = AppView(name)
        if view is not None:
            self._dirty.add(name)
        if event.type == "step_start":
            if view is not None and "step" in f:
                view.state, view.step = "running", str(f["step"])
                view.bytes = view.bytes_total = view.rate = view.lag = None
                view.note = ""
                self._log.append(f"▶ {event.message}")
            elif view is not None and f.get("bytes_total") is not None:  # the copier: this database's total
                view.bytes, view.bytes_total = 0, int(f["bytes_total"])
                self._log.append(f"  {event.message} ({human_bytes(int(f['bytes_total']))} estimated)")
        elif event.type == "step_complete":
            if view is not None and f.get("step"):
                view.done.add(str(f["step"]))
                view.step = None
            self._log.append(f"✓ {event.message} in {human_duration(float(f.get('seconds') or 0))}")
        elif event.type == "step_errored":
            if view is not None:
                view.state = "interrupted" if event.level == "warning" else "failed"
                view.error, view.step = event.message.removeprefix(f"{name}: "), None
            mark = "■" if event.level == "warning" else "✗"
            self._log.append(f"{mark} {event.message}" + (f"\n    hint: {f['hint']}" if f.get("hint") else ""))
        elif event.type == "step_progress":
            self._progress(event, view)
        elif event.type == "log":
            if view is not None and f.get("gate"):
                view.state, view.step = "awaiting_cutover", None
            prefix = {"warning": "! ", "error": "✗ "}.get(event.level, "  ")
            self._log.append(prefix + event.message)

    def _progress(self, event: Event, view: AppView | None) -> None:
        f = event.fields
        if view is not None:
            if "lag_bytes" in f:
                view.lag = int(f["lag_bytes"])
            if "rows" not in f and "bytes" in f and f.get("bytes_total"):
                view.bytes, view.bytes_total = int(f["bytes"]), int(f["bytes_total"])
                view.rate = float(f["rate"]) if f.get("rate") else view.rate
            if "rows" not in f:
                view.note = event.message.split(": ", 1)[-1] if ": " in event.message else ""
        if "table" not in f or view is None:
            return
        database = str(f.get("database") or "")
        key = f"{view.name}\x00{database}/{f['table']}"
        table = self.tables.get(key)
        if table is None:
            table = self.tables[key] = TableView(view.name, database, str(f["table"]))
        part = int(f.get("part") or 0)
        table.parts = int(f.get("parts") or table.parts)
        if "rows" in f:  # one table (or part) finished
            table.part_bytes[part] = int(f.get("bytes") or 0)
            table.parts_done.add(part)
            table.rows = (table.rows or 0) + int(f["rows"]) if len(table.parts_done) > 1 else int(f["rows"])
            table.seconds = max(table.seconds, float(f.get("seconds") or 0))
            if len(table.parts_done) >= table.parts:
                table.state = "done"
            self._log.append(f"  ✓ {view.name} {table.table} {int(f['rows']):,} rows "
                             f"{human_bytes(int(f.get('bytes') or 0))} in "
                             f"{human_duration(float(f.get('seconds') or 0))}")  # fmt: skip
        elif "table_bytes" in f:
            table.state = "copying"
            table.part_bytes[part] = int(f["table_bytes"])
            table.part_estimate[part] = int(f.get("table_bytes_total") or 0)
            table.first_seen = table.first_seen or event.timestamp
            table.last_seen = event.timestamp
        self._dirty.add(key)

    # -- drawing (at most every TICK_SECONDS)

    def _draw(self) -> None:
        if self._log:
            log = self.query_one("#execute-log", RichLog)
            for line in self._log:
                log.write(line)
            self._log.clear()
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = {row.app_name: row for row in self.query(AppRow)}
        missing = [n for n in self.apps if n not in rows]
        if missing:
            self._sync_rows(list(self.apps))
        for name in dirty & set(rows):
            try:
                rows[name].show(self.apps[name])
            except NoMatches:  # mounted, not composed yet
                self._dirty.add(name)
        grid: DataTable[str] = self.query_one("#execute-tables", DataTable)
        for key in sorted(k for k in dirty if k in self.tables):
            table = self.tables[key]
            app = self.apps.get(table.app)
            cells = table.cells(show_database=bool(app and app.databases > 1))
            if key in grid.rows:
                for column, value in zip(("app", "table", "rows", "bytes", "rate", "eta", "state"), cells,
                                         strict=True):  # fmt: skip
                    grid.update_cell(key, column, value)
            else:
                grid.add_row(*cells, key=key)
        if missing:
            self._dirty.update(missing)  # rows mounted just now: draw them next tick
