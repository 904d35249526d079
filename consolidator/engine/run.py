"""What one app's run carries between steps: plan, app, connections, provider, journal, options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from consolidator.engine.copy import SPLIT_BYTES
from consolidator.engine.journal import Journal
from consolidator.engine.provider import Provider, TargetHandle
from consolidator.errors import PreconditionError
from consolidator.events import EventSink
from consolidator.plan.model import App, Plan


@dataclass
class RunOptions:
    jobs: int = 4
    force: bool = False  # accept non-empty target databases
    copy_format: str = "binary"
    split_bytes: int = SPLIT_BYTES  # tables above this are copied in CTID ranges (cores permitting)


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

    def step_id(self, name: str) -> str:
        return f"{self.app.name}/{name}"
