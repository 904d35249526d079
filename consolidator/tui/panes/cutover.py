"""The cutover tab: per app, the checklist of the switch (fence, drain, sequences, verify, cutover) from the
journal, the go with the app's name typed, the per-table verification results, and rollback until finalize."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label, RichLog, Select, Static

from consolidator.errors import ConsolidatorError
from consolidator.events import Event
from consolidator.report.format import human_duration
from consolidator.tui.messages import EngineEvent, RunFinished
from consolidator.tui.panes.execute import PostingSink, app_of, disk_signature, run_busy
from consolidator.tui.screens.confirm import TypeToConfirm
from consolidator.tui.workers import ShowsWorkerErrors

# The steps of the switch, in the words of the checklist (those of the app's strategy are shown, in plan order).
CHECKLIST = {
    "fence": "source fenced: app roles out",
    "drain": "drained to the fence LSN",
    "cutover_copy": "unlogged/keyless tables copied",
    "promote": "standby promoted",
    "drop_foreign": "other apps' databases dropped",
    "sequences": "sequences set from the source",
    "matviews": "materialized views refreshed",
    "verify": "verified: every row, hashes",
    "cutover": "switched: hooks, target open",
}
RELOAD_WHILE_RUNNING = 2.0
MARKS = {"done": "✓", "running": "…", "failed": "✗", "pending": "·"}
NO_GO = ("cut_over", "finalized", "running")
NO_ROLLBACK = ("pending", "finalized", "rolled_back")

STATE_TEXT = {
    "pending": "not executed yet: run it on the Execute tab first (Go would run every step at once)",
    "running": "a run is in progress (if it was killed, Resume on the Execute tab continues it)",
    "awaiting_cutover": "ready for its go",
    "interrupted": "interrupted: Go continues from the journal; Rollback returns to the source",
    "failed": "failed: fix the cause, then Go continues; Rollback returns to the source",
    "cut_over": "cut over: the source stays fenced until finalize; Rollback returns to it",
    "rolled_back": "rolled back: the source is authoritative again",
    "finalized": "finalized: the fallback is gone, rollback is no longer possible",
}


@dataclass
class CutoverLoaded(Message):
    """The journal's status and the chosen app's last verification report, or why they could not be read."""

    status: dict[str, Any] | None
    app: str | None
    verification: dict[str, Any] | None = None
    error: str | None = None


def verification_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(table, status, rows, detail) per table, differing ones first, then failing catalog checks."""
    databases = report.get("databases") or []
    several = len(databases) > 1
    rows: list[tuple[bool, tuple[str, str, str, str]]] = []
    for db in databases:
        for t in db.get("tables") or []:
            name = f"{db.get('target_db')}/{t.get('object')}" if several else str(t.get("object"))
            source, target = t.get("rows_source"), t.get("rows_target")
            count = "—" if source is None and target is None else (
                f"{source:,}" if source == target else f"{source if source is not None else '—'} → "
                f"{target if target is not None else '—'}")  # fmt: skip
            detail = str(t.get("detail") or "")
            if t.get("status") not in ("match", "skipped"):
                found = [f"{n} {k}" for k, n in (("missing", t.get("missing")), ("extra", t.get("extra")),
                                                 ("changed", t.get("changed"))) if n]  # fmt: skip
                detail = "; ".join(p for p in (detail, ", ".join(found), ", ".join(t.get("samples") or [])) if p)
            rows.append((t.get("status") in ("match", "skipped"), (name, str(t.get("status")), count, detail)))
        for c in db.get("checks") or []:
            if c.get("status") not in ("match", "skipped"):
                detail = "; ".join(str(p) for p in (c.get("detail"), f"source {c.get('source')}" if c.get("source")
                                                    else "", f"target {c.get('target')}" if c.get("target") else "")
                                   if p)  # fmt: skip
                rows.append((False, (f"{c.get('category')}: {c.get('object')}", str(c.get("status")), "", detail)))
    return [r for _, r in sorted(rows, key=lambda r: r[0])]


def verification_summary(report: dict[str, Any]) -> str:
    parts = []
    for db in report.get("databases") or []:
        tables = db.get("tables") or []
        matched = sum(1 for t in tables if t.get("status") == "match")
        failing = [t for t in tables if t.get("status") not in ("match", "skipped", "warning")]
        failing += [c for c in db.get("checks") or [] if c.get("status") not in ("match", "skipped", "warning")]
        parts.append(f"{db.get('target_db')}: {matched}/{len(tables)} tables match, "
                     + (f"{len(failing)} difference(s)" if failing else "no differences"))  # fmt: skip
    return "; ".join(parts) or "nothing compared"


class CutoverPane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Cutover"
    HELP = ("Per app: the checklist of the switch from the journal — source fenced, drained to the fence LSN "
            "(replication strategies), sequences, verification, switch — then the go. Go asks for the app's "
            "name typed in full and runs the remaining steps; the switch happens only when verification "
            "passes, and the per-table results (rows and content hashes, what differs) are listed below. "
            "Rollback (name typed too) reverts the switch hooks, closes the target and opens the source "
            "again, as long as the app is not finalized.")  # fmt: skip
    BINDINGS = [
        Binding("g", "go", "Go (cutover)", id="cutover_go",
                tooltip="switch the selected app: fence, drain, verify, cut over (asks for its name)"),
        Binding("b", "rollback", "Rollback", id="cutover_rollback",
                tooltip="back to the source until finalize (asks for the app's name)"),
        Binding("f5", "reload", "Refresh", id="cutover_refresh", tooltip="read the journal again"),
    ]  # fmt: skip
    DEFAULT_CSS = """
    CutoverPane {
        height: 1fr;
        #cutover-controls { height: auto; }
        #cutover-app { width: 30; }
        #cutover-controls Button { margin-left: 1; min-width: 10; }
        #cutover-state { height: auto; max-height: 3; }
        #cutover-checklist { height: auto; max-height: 11; }
        .section { height: 1; margin-top: 1; text-style: bold; color: $accent; }
        #cutover-verify-summary { height: auto; color: $text-muted; }
        #cutover-verify { height: 1fr; min-height: 3; }
        #cutover-log { height: 4; min-height: 2; background: $boost; }
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current: str | None = None
        self.app_status: dict[str, Any] | None = None  # status() entry of the current app
        self.journal_status: dict[str, Any] | None = None
        self.verification: dict[str, Any] | None = None
        self._names: list[str] = []
        self._busy_with: str | None = None  # "cutover" | "rollback" while a worker of ours runs
        self._cancel: threading.Event | None = None
        self._loaded: tuple[int, ...] | None = None  # disk_signature of what is on screen
        self._loaded_at = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="cutover-controls"):
            yield Select([], prompt="app…", allow_blank=True, compact=True, id="cutover-app")
            yield Button("Go", id="cutover-go", variant="error", compact=True, disabled=True)
            yield Button("Rollback", id="cutover-rollback", variant="warning", compact=True, disabled=True)
            yield Button("Refresh", id="cutover-refresh", compact=True)
        yield Static("", id="cutover-state", markup=False)
        checklist: DataTable[str] = DataTable(id="cutover-checklist", cursor_type="row", show_cursor=False)
        for label, key in (("step", "step"), ("what", "what"), ("state", "state")):
            checklist.add_column(label, key=key)
        yield checklist
        yield Label("Verification", classes="section")
        yield Static("", id="cutover-verify-summary", markup=False)
        results: DataTable[str] = DataTable(id="cutover-verify", cursor_type="row", zebra_stripes=True)
        for label, key in (("table", "table"), ("status", "status"), ("rows", "rows"), ("detail", "detail")):
            results.add_column(label, key=key)
        yield results
        yield RichLog(id="cutover-log", max_lines=2000, wrap=True, markup=False, highlight=False)

    def on_show(self) -> None:
        self.reload(force=False)
        if self.app.focused is None or self not in self.app.focused.ancestors:
            self.query_one("#cutover-app", Select).focus()

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    # -- loading

    def _plan_ready(self) -> bool:
        plan_dir = self.app.session.plan_dir
        return plan_dir is not None and (plan_dir / "plan.yaml").exists()

    def action_reload(self) -> None:
        self.reload(force=True)

    def reload(self, force: bool) -> None:
        """Read the journal and the app's verification (in a worker) when they changed on disk; while a run
        writes its journal, at most every RELOAD_WHILE_RUNNING seconds."""
        if not self._plan_ready():
            self._loaded = None
            self._state("No saved plan: save it (Plan tab) and execute it (Execute tab) first.")
            self._controls()
            return
        signature = disk_signature(self.app.session.plan_dir)
        if not force and (signature == self._loaded or (
                run_busy(self.app) and time.monotonic() - self._loaded_at < RELOAD_WHILE_RUNNING)):  # fmt: skip
            self._controls()
            return
        self._loaded, self._loaded_at = signature, time.monotonic()
        self._load(self.app.session, self.current)

    @work(thread=True, exclusive=True, group="cutover-status", exit_on_error=False)
    def _load(self, session: Any, wanted: str | None) -> None:
        try:
            status = session.status()
            names = [a["name"] for a in status["apps"]]
            states = {a["name"]: a["state"] for a in status["apps"]}
            chosen = wanted if wanted in names else next(
                (n for want in ("awaiting_cutover", "cut_over", "interrupted", "failed") for n in names
                 if states[n] == want), names[0] if names else None)  # fmt: skip
            report = None
            if chosen is not None:
                try:
                    report = session.verification(chosen)
                except (KeyError, AssertionError, ValueError):  # the plan on screen lacks the app; a broken file
                    report = None
        except ConsolidatorError as exc:
            self.post_message(CutoverLoaded(None, None, error=exc.message))
            return
        self.post_message(CutoverLoaded(status, chosen, report))

    def on_cutover_loaded(self, message: CutoverLoaded) -> None:
        message.stop()
        if message.status is None:
            self._state(f"The saved plan cannot be read: {message.error}")
            return
        self.journal_status = message.status
        names = [a["name"] for a in message.status["apps"]]
        select = self.query_one("#cutover-app", Select)
        if names != self._names:
            self._names = names
            select.set_options([(n, n) for n in names])
        self.current = message.app
        if message.app is not None and select.value != message.app:
            select.value = message.app
        self.app_status = next((a for a in message.status["apps"] if a["name"] == message.app), None)
        self.verification = message.verification
        self._draw()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "cutover-app":
            return
        event.stop()
        value = None if event.value is Select.BLANK else str(event.value)
        if value is not None and value != self.current:
            self.current = value
            self.reload(force=True)

    # -- drawing

    def _state(self, text: str) -> None:
        self.query_one("#cutover-state", Static).update(text)

    def _controls(self) -> None:
        state = self.app_status["state"] if self.app_status else None
        busy = self._busy_with is not None or run_busy(self.app)
        self.query_one("#cutover-go", Button).disabled = busy or state is None or state in NO_GO
        self.query_one("#cutover-rollback", Button).disabled = busy or state is None or state in NO_ROLLBACK

    def _remaining(self) -> list[str]:
        steps = (self.app_status or {}).get("steps") or []
        return [s["name"] for s in steps if s["state"] != "done"]

    def _draw(self) -> None:
        self._controls()
        app = self.app_status
        if app is None:
            self._state("No apps in the saved plan." if self.journal_status else "")
            return
        text = f"{app['name']} · {app['strategy']} → {app['cluster']} · {app['state']}"
        if app.get("verified"):
            text += " · verified"
        text += f" — {STATE_TEXT.get(app['state'], app['state'])}"
        failed = [s for s in app["steps"] if s["state"] == "failed"]
        if failed and app["state"] != "rolled_back":
            text += f"\n{failed[0]['name']} failed: {failed[0]['error']}"
        if self._busy_with:
            text = f"{app['name']}: {self._busy_with} in progress…"
        self._state(text)
        checklist: DataTable[str] = self.query_one("#cutover-checklist", DataTable)
        checklist.clear()
        for step in app["steps"]:
            if step["name"] in CHECKLIST:
                checklist.add_row(step["name"], CHECKLIST[step["name"]], self._step_cell(step), key=step["name"])
        self._draw_verification()

    @staticmethod
    def _step_cell(step: dict[str, Any]) -> str:
        state = str(step.get("state") or "pending")
        seconds = float(step.get("seconds") or 0)
        text = f"{MARKS.get(state, '·')} {state}"
        return text + (f" {human_duration(seconds)}" if state == "done" and seconds else "")

    def _draw_verification(self) -> None:
        results: DataTable[str] = self.query_one("#cutover-verify", DataTable)
        results.clear()
        summary = self.query_one("#cutover-verify-summary", Static)
        if self.verification is None:
            summary.update("No verification yet (it runs before the switch).")
            return
        summary.update(verification_summary(self.verification))
        for index, row in enumerate(verification_rows(self.verification)):
            results.add_row(*row, key=str(index))

    # -- the go and the way back

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"cutover-go": "go", "cutover-rollback": "rollback", "cutover-refresh": "reload"}
        if event.button.id in actions:
            event.stop()
            getattr(self, f"action_{actions[event.button.id]}")()

    def _ready_for(self, what: str, refused: tuple[str, ...]) -> str | None:
        """The current app's name when ``what`` may start now; else says why not."""
        app = self.app_status
        if app is None:
            self.notify("Choose an app first.", severity="warning")
            return None
        if self._busy_with is not None or run_busy(self.app):
            self.notify("A run is in progress: wait for it (or cancel it on the Execute tab).", severity="warning")
            return None
        if app["state"] in refused:
            self.notify(f"{app['name']} is {app['state']}: no {what}.", severity="warning")
            return None
        return str(app["name"])

    def action_go(self) -> None:
        name = self._ready_for("go", NO_GO)
        if name is None:
            return
        assert self.app_status is not None
        remaining = ", ".join(self._remaining()) or "nothing"
        explanation = (f"Runs the remaining steps of {name}: {remaining}. The source databases stay fenced (no "
                       f"writes) and the app is switched to {self.app_status['cluster']} once verification "
                       "passes. Rollback stays possible until finalize.")  # fmt: skip

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._start("cutover", name)

        self.app.push_screen(TypeToConfirm(f"Cut over {name}", explanation, name), confirmed)

    def action_rollback(self) -> None:
        name = self._ready_for("rollback", NO_ROLLBACK)
        if name is None:
            return
        assert self.app_status is not None
        dbs = ", ".join(self.app_status.get("databases") or [])
        explanation = (f"Reverts the switch hooks of {name}, closes its target {self.app_status['cluster']} and opens "
                       f"the source databases again ({dbs}). Writes made on the target since the switch are not "
                       "copied back.")  # fmt: skip

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._start("rollback", name)

        self.app.push_screen(TypeToConfirm(f"Roll back {name}", explanation, name), confirmed)

    def _start(self, kind: str, name: str) -> None:
        self._busy_with = kind
        self._cancel = threading.Event()
        self.query_one("#cutover-log", RichLog).write(f"── {kind} {name}")
        self._draw()
        if kind == "cutover":
            self._cutover(self.app.session, name, self._cancel)
        else:
            self._rollback(self.app.session, name)

    @work(thread=True, exclusive=True, group="cutover", exit_on_error=False)
    def _cutover(self, session: Any, name: str, cancel: threading.Event) -> None:
        states: dict[str, str] = {}
        try:
            result = session.cutover(name, PostingSink(self), cancel=cancel)
            states = {a.name: a.state for a in result.apps}
        finally:
            self.post_message(RunFinished("cutover", states))

    @work(thread=True, exclusive=True, group="cutover", exit_on_error=False)
    def _rollback(self, session: Any, name: str) -> None:
        states: dict[str, str] = {}
        try:
            session.rollback(name, PostingSink(self))
            states = {name: "rolled_back"}
        finally:
            self.post_message(RunFinished("rollback", states))

    def on_run_finished(self, message: RunFinished) -> None:
        if message.kind not in ("cutover", "rollback"):
            return
        self._busy_with = None
        log = self.query_one("#cutover-log", RichLog)
        log.write("── " + (", ".join(f"{n}: {s}" for n, s in message.states.items()) or f"{message.kind} failed"))
        self._controls()
        self.reload(force=True)

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        self.apply(message.event)

    def apply(self, event: Event) -> None:
        """Progress in the checklist and the log; the journal has the last word when the worker ends."""
        f = event.fields
        log = self.query_one("#cutover-log", RichLog)
        step = f.get("step")
        if event.type in ("step_start", "step_complete", "step_errored") and app_of(event) == self.current:
            checklist: DataTable[str] = self.query_one("#cutover-checklist", DataTable)
            if step in CHECKLIST and step in checklist.rows:
                seconds = float(f.get("seconds") or 0)
                state = {"step_start": "running", "step_complete": "done"}.get(event.type)
                if state is not None:
                    checklist.update_cell(step, "state", self._step_cell({"state": state, "seconds": seconds}))
        if event.type == "step_errored":
            log.write(f"✗ {event.message}" + (f"\n    hint: {f['hint']}" if f.get("hint") else ""))
        elif event.type == "step_complete":
            log.write(f"✓ {event.message} in {human_duration(float(f.get('seconds') or 0))}")
        elif event.type == "step_start" and step:
            log.write(f"▶ {event.message}")
        elif event.type == "log":
            log.write({"warning": "! ", "error": "✗ "}.get(event.level, "  ") + event.message)
        elif event.type == "step_progress" and "rows" in f:
            log.write(f"  ✓ {f.get('table')} {int(f['rows']):,} rows")
        elif event.type == "step_progress" and "lag_bytes" in f:
            self._state(f"{self.current}: {event.message} ({int(f['lag_bytes']):,} bytes behind)")

