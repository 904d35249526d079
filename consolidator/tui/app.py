"""``consolidator tui``: the interactive face. Screens and panes call :class:`~.session.Session`, which calls
the core; every database, disk or Kubernetes call runs in a worker thread and reports back by message."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from consolidator.errors import ConsolidatorError
from consolidator.tui.commands import ConsolidatorCommands
from consolidator.tui.screens.error import ErrorScreen
from consolidator.tui.screens.help import HelpScreen
from consolidator.tui.session import Session


class ConsolidatorApp(App[int]):
    """Start on the connect screen, or straight on the main screen with ``source``/``plan_dir``."""

    TITLE = "consolidator"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {ConsolidatorCommands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="help", tooltip="help for this screen"),
        Binding("question_mark", "help", "Help", show=False, id="help_alt"),
        Binding("ctrl+q", "quit", "Quit", id="quit", tooltip="leave (a running copy can be resumed)"),
    ]

    def __init__(self, session: Session | None = None) -> None:
        super().__init__()
        self.session = session or Session()

    def on_mount(self) -> None:
        from consolidator.tui.screens.connect import ConnectScreen
        from consolidator.tui.screens.main import MainScreen

        if self.session.plan_dir is not None or self.session.source:
            self.push_screen(MainScreen())
        else:
            self.push_screen(ConnectScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The App's own workers; screens and panes mix in :class:`~.workers.ShowsWorkerErrors`."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)

    def show_error(self, error: BaseException) -> None:
        if isinstance(error, ConsolidatorError):
            self.push_screen(ErrorScreen(error.message, error.hint or ""))
        else:
            self.push_screen(ErrorScreen(f"{type(error).__name__}: {error}", "this is a bug: please report it"))


def run_tui(source: str | None = None, plan_dir: Path | None = None, **options: object) -> int:
    """Entry point of ``consolidator tui``."""
    session = Session(source=source)
    for key, value in options.items():
        if value is not None and hasattr(session.options, key):
            setattr(session.options, key, value)
    if plan_dir is not None:
        session.plan_dir = plan_dir
        if (plan_dir / "plan.yaml").exists():
            session.open_plan(plan_dir)
    return ConsolidatorApp(session).run() or 0
