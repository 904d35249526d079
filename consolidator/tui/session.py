"""What the TUI holds between screens, and the core calls it makes: no migration logic lives here.

Methods that touch a database, the disk or Kubernetes are called from worker threads only; each is one
call (or a short sequence of calls) into the core that the CLI commands make too.
"""

from __future__ import annotations

import difflib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consolidator.engine.executor import ExecuteOptions, ExecuteResult, execute, gate_step
from consolidator.events import EventSink
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.inventory.model import Inventory
from consolidator.manifests.render import file_name, render_app, to_yaml
from consolidator.pg.connect import connect, describe
from consolidator.plan import edit
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.model import App, Plan
from consolidator.plan.store import load_plan


@dataclass
class Session:
    source: str | None = None  # the source DSN as typed (libpq finds the password: never stored here)
    plan_dir: Path | None = None
    options: PlanOptions = field(default_factory=PlanOptions)
    sample_seconds: float = 5.0
    inventory: Inventory | None = None
    plan: Plan | None = None
    saved: bool = False  # the plan on screen is the one in plan_dir
    jobs: int = 4
    cancel: threading.Event = field(default_factory=threading.Event)

    # -- source and inventory

    def test_connection(self) -> str:
        """``user@host:port/db — PostgreSQL 15.8`` when the source answers; raises our errors otherwise."""
        assert self.source
        with connect(self.source) as conn:
            version = conn.execute("SELECT current_setting('server_version')").fetchone()
        return f"{describe(self.source)} — PostgreSQL {version[0] if version else '?'}"

    def take_inventory(self, sink: EventSink | None = None) -> Inventory:
        assert self.source
        self.inventory = run_inventory(self.source, InventoryOptions(sample_seconds=self.sample_seconds), sink=sink)
        return self.inventory

    # -- the plan

    def build(self) -> Plan:
        """A plan from the inventory, keeping the edits of the plan on screen (overrides, names, hooks)."""
        assert self.inventory is not None and self.source
        if self.plan is None:
            self.plan = build_plan(self.inventory, self.source, self.options)
        else:
            self.plan = edit.replan(self.inventory, self.source, self.options, self.plan)
        self.saved = False
        return self.plan

    def open_plan(self, plan_dir: Path) -> Plan:
        self.plan_dir, self.plan, self.saved = plan_dir, load_plan(plan_dir), True
        if self.source is None:
            self.source = self.plan.source.conninfo
        return self.plan

    def app(self, name: str) -> App:
        assert self.plan is not None
        return self.plan.app(name)

    def set_override(self, app: str, key: str, value: Any) -> App:
        assert self.plan is not None
        changed = edit.set_override(self.plan, app, key, value)
        self.saved = False
        return changed

    def rename(self, app: str, name: str) -> App:
        assert self.plan is not None
        changed = edit.rename_cluster(self.plan, app, name)
        self.saved = False
        return changed

    def set_strategy(self, app: str, strategy: str) -> Plan:
        assert self.plan is not None and self.inventory is not None and self.source
        self.plan = edit.set_strategy(self.inventory, self.source, self.options, self.plan, app, strategy)
        self.saved = False
        return self.plan

    def regroup(self, mapping: dict[str, str]) -> Plan:
        """Databases → apps (``--map DB=APP``); an empty mapping is one app per database.

        A refused grouping leaves the previous one (and the plan) in place."""
        previous, self.options.mapping = self.options.mapping, dict(mapping)
        try:
            return self.build()
        except Exception:
            self.options.mapping = previous
            raise

    # -- manifests, saving, reports

    def manifests(self, app: str) -> list[tuple[str, str]]:
        """(file name, YAML) of every object the app's cluster needs, as ``plan`` writes them."""
        assert self.plan is not None
        return [(file_name(obj), to_yaml(obj)) for obj in render_app(self.plan, self.app(app))]

    def manifest_diff(self, app: str) -> str:
        """A unified diff of the app's manifests against the saved plan directory ('' when equal)."""
        saved_dir = self.plan_dir / "manifests" / self.app(app).cluster_name if self.plan_dir else None
        out: list[str] = []
        for name, text in self.manifests(app):
            path = saved_dir / name if saved_dir else None
            before = path.read_text() if path and path.exists() else ""
            out += difflib.unified_diff(before.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"saved/{name}", f"edited/{name}")  # fmt: skip
        return "".join(out)

    def save(self, plan_dir: Path | None = None) -> list[Path]:
        from consolidator.plan.write import write_plan_dir

        assert self.plan is not None
        self.plan_dir = plan_dir or self.plan_dir
        assert self.plan_dir is not None
        written = write_plan_dir(self.plan, self.plan_dir)
        self.saved = True
        return written

    def write_report(self, fmt: str = "html") -> Path:
        from consolidator.engine.safety import recorded_safety_dumps
        from consolidator.fsutil import write_atomic
        from consolidator.plan.write import manifest_files
        from consolidator.report.render import render_report

        assert self.plan is not None and self.plan_dir is not None
        path = self.plan_dir / f"report.{fmt}"
        write_atomic(path, render_report(self.plan, fmt, manifest_files(self.plan_dir),
                                         recorded_safety_dumps(self.plan_dir)))
        return path

    def staleness(self) -> list[str]:
        """What changed on the source since the plan was made (empty when it still matches)."""
        from consolidator.plan.fingerprint import differences, live

        assert self.plan is not None and self.source
        return differences(self.plan.fingerprint, live(self.source, list(self.plan.fingerprint.databases)))

    # -- execution

    def execute(self, apps: list[str], sink: EventSink, *, resume: bool,
                cancel: threading.Event | None = None) -> ExecuteResult:  # fmt: skip
        """Every step up to each app's gate (the cutover screen gives the go); cancellable.

        ``cancel``: made on the UI thread before the worker starts, so a cancel pressed at once is not lost.
        """
        assert self.plan_dir is not None
        self.cancel = cancel or threading.Event()
        opts = ExecuteOptions(jobs=self.jobs, apps=apps, resume=resume, gated=True, cancel=self.cancel,
                              source_dsn=self.source)  # fmt: skip
        return execute(self.plan_dir, opts, sink)

    def cutover(self, app: str, sink: EventSink, cancel: threading.Event | None = None) -> ExecuteResult:
        """The go for one app: fence, drain, verify and switch (resumes its run past the gate)."""
        assert self.plan_dir is not None
        self.cancel = cancel or threading.Event()
        opts = ExecuteOptions(jobs=self.jobs, apps=[app], resume=True, cancel=self.cancel, source_dsn=self.source)
        return execute(self.plan_dir, opts, sink)

    def rollback(self, app: str, sink: EventSink) -> None:
        from consolidator.engine.lifecycle import rollback

        assert self.plan_dir is not None
        rollback(self.plan_dir, app, sink)

    def status(self) -> dict[str, Any]:
        from consolidator.engine.lifecycle import status

        assert self.plan_dir is not None
        return status(self.plan_dir)

    def gate(self, app: str) -> str:
        return gate_step(self.app(app))

    def verification(self, app: str) -> dict[str, Any] | None:
        """The last verification report of the app (``DIR/verify/<cluster>.json``), or None."""
        assert self.plan_dir is not None
        path = self.plan_dir / "verify" / f"{self.app(app).cluster_name}.json"
        return json.loads(path.read_text()) if path.exists() else None
