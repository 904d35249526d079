"""What one app's run carries between steps: plan, app, connections, provider, journal, options."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from consolidator.engine.copy import SPLIT_BYTES
from consolidator.engine.journal import Journal
from consolidator.engine.provider import Provider, TargetHandle
from consolidator.errors import Interrupted, PreconditionError
from consolidator.events import EventSink
from consolidator.plan.model import App, Plan


@dataclass
class RunOptions:
    jobs: int = 4
    force: bool = False  # accept non-empty target databases
    copy_format: str = "binary"
    split_bytes: int = SPLIT_BYTES  # tables above this are copied in CTID ranges (cores permitting)
    safety_dump: bool = False  # pg_dump -Fc of each source database to the plan's S3 store before the fence
    cancel: threading.Event | None = None  # set by a face (TUI, signal) to stop at the next safe point


@dataclass
class AppRun:
    plan: Plan
    app: App
    plan_dir: Path
    source_dsn: str
    provider: Provider
    journal: Journal
    options: RunOptions = field(default_factory=RunOptions)
    sink: EventSink | None = None
    _target: TargetHandle | None = None

    @property
    def work_dir(self) -> Path:
        return self.plan_dir / "work" / self.app.cluster_name

    @property
    def target(self) -> TargetHandle:
        """The provisioned target (started when stopped)."""
        if self._target is None:
            handle = self.provider.describe(self.plan, self.app)
            if handle is None:
                raise PreconditionError(f"target of {self.app.name} is not provisioned", hint="execute --resume")
            self._target = self.provider.wait_ready(self.plan, self.app)
        return self._target

    @target.setter
    def target(self, handle: TargetHandle) -> None:
        self._target = handle

    def check_cancel(self) -> None:
        """Raise :class:`Interrupted` once the run was asked to stop: every step is journaled, so
        ``execute --resume`` continues from here."""
        if self.options.cancel is not None and self.options.cancel.is_set():
            raise Interrupted(f"{self.app.name}: stopped on request", hint="execute --resume continues from here")

    def wait(self, seconds: float) -> None:
        """Sleep between polls, but wake up and stop as soon as the run is cancelled."""
        if self.options.cancel is None:
            time.sleep(seconds)
            return
        self.options.cancel.wait(seconds)
        self.check_cancel()

    def step_id(self, name: str) -> str:
        return f"{self.app.name}/{name}"
