"""Failures of background work reach the person as a modal, wherever the worker was started.

Textual posts ``Worker.StateChanged`` to the node that started the worker and does not bubble it, so
every screen and pane that starts workers mixes this in (the App handles its own the same way).
"""

from __future__ import annotations

from typing import Any

from textual.worker import Worker, WorkerState


class ShowsWorkerErrors:
    """Mixin for a Screen or Widget: a worker of its that fails opens the error modal."""

    app: Any

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.app.show_error(event.worker.error)
