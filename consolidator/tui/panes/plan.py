"""The plan tab: where the plan is saved, saving it, the dry-run report, and whether the source moved on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from consolidator.errors import PreconditionError
from consolidator.tui.messages import PlanChanged, PlanSaved, announce
from consolidator.tui.panes._focus import focus_when_shown, on_view
from consolidator.tui.workers import ShowsWorkerErrors

RESAMPLE_HINT = "re-sample the inventory (Inventory tab, r), review the plan, save it again"


def default_plan_dir(host: str) -> Path:
    """``plans/<source host>`` under the current directory (``plans/local`` for a Unix socket)."""
    name = "local" if not host or host.startswith("/") else host.replace("/", "_").replace(":", "_")
    return Path("plans") / name


class PlanPane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Plan"
    HELP = ("Save writes plan.yaml and every manifest into the directory (created if needed); that directory is "
            "what execute runs and what you review or commit. Write report renders DIR/report.html, the dry-run "
            "report a reviewer approves; like the CLI it is refused when the source changed since the plan was "
            "made. Check source compares the plan's fingerprint of the source (schemas, tables, sizes) with the "
            "source as it is now, read-only; it runs by itself when this tab opens on a saved plan.")  # fmt: skip
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="plan_save",
                tooltip="write plan.yaml and the manifests into the plan directory"),
        Binding("ctrl+r", "report", "Write report", id="plan_report",
                tooltip="write DIR/report.html (refused when the source changed since the plan was made)"),
        Binding("ctrl+g", "check", "Check source", id="plan_check",
                tooltip="does the source still match the plan? (read-only)"),
    ]  # fmt: skip
    DEFAULT_CSS = """
    PlanPane {
        height: 1fr;
        padding: 0 1;
    }
    PlanPane #plan-state {
        height: auto;
        text-style: bold;
    }
    PlanPane #plan-state.-unsaved {
        color: $warning;
    }
    PlanPane .plan-row {
        height: auto;
    }
    PlanPane #plan-dir {
        width: 1fr;
    }
    PlanPane .plan-row Button {
        margin-right: 1;
    }
    PlanPane .pane-title {
        height: 1;
        text-style: bold;
        color: $accent;
        margin-top: 1;
    }
    PlanPane #plan-staleness {
        height: auto;
    }
    PlanPane #plan-staleness.-stale {
        color: $warning;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checked_plan: int | None = None  # id() of the plan last checked against the source
        self.problems: list[str] | None = None  # what the last check found (None: not checked)
        self.report_path: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="plan-state", markup=False)
        yield Label("Plan directory")
        with Horizontal(classes="plan-row"):
            yield Input(placeholder="plans/<source host>", id="plan-dir")
            yield Button("Save", id="plan-save", variant="primary")
        with Horizontal(classes="plan-row"):
            yield Button("Write report", id="plan-report")
            yield Button("Check source", id="plan-check")
        yield Static("", id="plan-files", classes="status-line", markup=False)
        yield Static("", id="plan-report-path", markup=False)
        yield Static("Source", classes="pane-title")
        yield Static("not checked yet", id="plan-staleness", markup=False)

    def on_mount(self) -> None:
        self.refresh_state()

    def on_show(self) -> None:
        focus_when_shown(self, self.query_one("#plan-save", Button))  # not the Input: it would take the keys 1–6
        self.refresh_state()
        session = self.app.session
        if not on_view(self) or session.plan is None or not session.source:
            return
        if session.saved and self.checked_plan != id(session.plan):
            self.action_check()

    def on_plan_changed(self, message: PlanChanged) -> None:
        plan = self.app.session.plan
        if plan is not None and self.checked_plan is not None and self.checked_plan != id(plan):
            self.checked_plan, self.problems = None, None
            self._show_problems(None)
        self.refresh_state()

    def on_plan_saved(self, message: PlanSaved) -> None:
        self.refresh_state()

    # -- state

    def refresh_state(self) -> None:
        session = self.app.session
        plan = session.plan
        state = self.query_one("#plan-state", Static)
        dir_input = self.query_one("#plan-dir", Input)
        if plan is None:
            state.update("No plan yet: the inventory makes one (Inventory tab).")
        elif session.saved and session.plan_dir is not None:
            state.update(f"Plan of {len(plan.apps)} apps, saved in {session.plan_dir}")
        elif session.plan_dir is not None:
            state.update(f"Plan of {len(plan.apps)} apps: unsaved edits (the saved one is in {session.plan_dir})")
        else:
            state.update(f"Plan of {len(plan.apps)} apps: not saved yet")
        state.set_class(plan is not None and not session.saved, "-unsaved")
        if not dir_input.value:
            if session.plan_dir is not None:
                dir_input.value = str(session.plan_dir)
            elif plan is not None:
                dir_input.value = str(default_plan_dir(plan.server.host))
        for button in self.query(Button):
            button.disabled = plan is None
        self.query_one("#plan-report", Button).disabled = plan is None or not session.saved

    def _show_problems(self, problems: list[str] | None, note: str = "") -> None:
        widget = self.query_one("#plan-staleness", Static)
        widget.set_class(bool(problems), "-stale")
        if problems is None:
            widget.update(note or "not checked yet")
        elif problems:
            widget.update("⚠ The plan is stale: the source changed since it was made.\n"
                          + "\n".join(f"  • {p}" for p in problems) + f"\nTo fix: {RESAMPLE_HINT}.")  # fmt: skip
        else:
            widget.update(f"✓ The source still matches the plan (checked {time.strftime('%H:%M:%S')}).")

    # -- actions

    def plan_dir(self) -> Path | None:
        value = self.query_one("#plan-dir", Input).value.strip()
        return Path(value).expanduser() if value else None

    def action_save(self) -> None:
        if self.app.session.plan is None:
            self.notify("no plan yet: take the inventory first", severity="warning")
            return
        directory = self.plan_dir()
        if directory is None:
            self.notify("give the plan directory first", severity="warning")
            self.query_one("#plan-dir", Input).focus()
            return
        self.query_one("#plan-files", Static).update(f"saving into {directory}…")
        self.save(directory)

    @work(thread=True, exclusive=True, group="plan-save", exit_on_error=False)
    def save(self, directory: Path) -> None:
        written = self.app.session.save(directory)
        self.app.call_from_thread(self._saved, directory, written)

    def _saved(self, directory: Path, written: list[Path]) -> None:
        others = len(written) - 1
        self.query_one("#plan-files", Static).update(
            f"wrote {written[0]}" + (f" and {others} more files" if others else ""))  # fmt: skip
        self.refresh_state()
        announce(self, PlanSaved(directory))

    def action_report(self) -> None:
        session = self.app.session
        if session.plan is None or session.plan_dir is None or not session.saved:
            self.notify("save the plan first (ctrl+s): the report describes the saved plan directory",
                        severity="warning")  # fmt: skip
            return
        self.query_one("#plan-report-path", Static).update("checking the source, then writing the report…")
        self.write_report()

    @work(thread=True, exclusive=True, group="plan-report", exit_on_error=False)
    def write_report(self) -> None:
        session = self.app.session
        plan = session.plan
        problems = session.staleness()
        self.app.call_from_thread(self._checked, id(plan), problems)
        if problems:
            raise PreconditionError("saved plan is stale: " + "; ".join(problems), hint=RESAMPLE_HINT)
        path = session.write_report("html")
        self.app.call_from_thread(self._reported, path)

    def _reported(self, path: Path) -> None:
        self.report_path = path
        self.query_one("#plan-report-path", Static).update(f"report written: {path.resolve()}")

    def action_check(self) -> None:
        session = self.app.session
        if session.plan is None or not session.source:
            self.notify("no plan yet: take the inventory first", severity="warning")
            return
        self._show_problems(None, "checking the source (read-only)…")
        self.check(id(session.plan))

    @work(thread=True, exclusive=True, group="plan-check", exit_on_error=False)
    def check(self, plan_id: int) -> None:
        problems = self.app.session.staleness()
        self.app.call_from_thread(self._checked, plan_id, problems)

    def _checked(self, plan_id: int, problems: list[str]) -> None:
        self.checked_plan, self.problems = plan_id, problems
        self._show_problems(problems)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The mixin shows the error (Textual calls both handlers); here the lines that said "…ing" follow."""
        if event.state is not WorkerState.ERROR:
            return
        if event.worker.group == "plan-save":
            self.query_one("#plan-files", Static).update("not saved: see the error")
        elif event.worker.group == "plan-report":
            self.query_one("#plan-report-path", Static).update("no report written: see the error")
        elif event.worker.group == "plan-check":
            self._show_problems(None, "the check failed: see the error (ctrl+g tries again)")

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"plan-save": "save", "plan-report": "report", "plan-check": "check"}
        if event.button.id in actions:
            self.run_action(actions[event.button.id])

    @on(Input.Submitted, "#plan-dir")
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_save()
