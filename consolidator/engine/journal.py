"""The run journal: every step of every app, recorded in ``PLANDIR/state.json`` with atomic writes.

``execute --resume`` reads it to skip what is done and redo what was interrupted; ``status``
reads it from another terminal. One writer at a time (an exclusive lock on ``PLANDIR/.lock``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consolidator.errors import PreconditionError
from consolidator.fsutil import write_atomic
from consolidator.serde import from_data, to_data

STATE_FILE = "state.json"
LOCK_FILE = ".lock"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclass
class StepState:
    name: str
    state: str = "pending"  # pending | running | done | failed
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    error: str | None = None
    attempts: int = 0


@dataclass
class TableState:
    name: str
    database: str
    state: str = "pending"  # pending | copying | done
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    parts_done: list[int] = field(default_factory=list)


@dataclass
class AppState:
    name: str
    state: str = "pending"  # pending | running | cut_over | failed | rolled_back | finalized
    steps: dict[str, StepState] = field(default_factory=dict)
    tables: dict[str, TableState] = field(default_factory=dict)
    fence: dict[str, Any] = field(default_factory=dict)  # database → recorded ACL, to undo the fence
    target_fence: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)  # conninfo, passfile (never a password)
    hooks_run: list[str] = field(default_factory=list)
    verified: bool = False
    facts: dict[str, Any] = field(default_factory=dict)  # strategy bookkeeping (fence LSN, slot names…)
    safety_dumps: dict[str, Any] = field(default_factory=dict)  # source database → url, bytes, sha256, seconds


@dataclass
class RunState:
    plan_sha256: str
    started_at: str
    apps: dict[str, AppState] = field(default_factory=dict)
    updated_at: str = ""


def plan_digest(plan_dir: Path) -> str:
    return hashlib.sha256((plan_dir / "plan.yaml").read_bytes()).hexdigest()


class Journal:
    """Thread-safe access to the run state; every change is written through atomically."""

    def __init__(self, plan_dir: Path, state: RunState) -> None:
        self.plan_dir = plan_dir
        self.state = state
        self._lock = threading.RLock()
        self._last_save = 0.0
        # Called with the text of every save once it is on disk (a copy Job mirrors it into a ConfigMap).
        self.mirror: Callable[[str], None] | None = None

    @property
    def path(self) -> Path:
        return self.plan_dir / STATE_FILE

    @classmethod
    def load(cls, plan_dir: Path) -> Journal | None:
        path = plan_dir / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise PreconditionError(f"{path} is not valid JSON", hint="restore it, or start over with --restart") \
                from None  # fmt: skip
        return cls(plan_dir, from_data(RunState, data))

    @classmethod
    def create(cls, plan_dir: Path, app_names: list[str]) -> Journal:
        state = RunState(plan_sha256=plan_digest(plan_dir), started_at=now_iso())
        for name in app_names:
            state.apps[name] = AppState(name=name)
        journal = cls(plan_dir, state)
        journal.save()
        return journal

    def save(self, *, throttle: float = 0.0) -> None:
        with self._lock:
            now = time.monotonic()
            if throttle and now - self._last_save < throttle:
                return
            self._last_save = now
            self.state.updated_at = now_iso()
            text = json.dumps(to_data(self.state), indent=1, ensure_ascii=False) + "\n"
            write_atomic(self.path, text)
            if self.mirror is not None:
                self.mirror(text)

    def app(self, name: str) -> AppState:
        with self._lock:
            return self.state.apps.setdefault(name, AppState(name=name))

    def step(self, app: str, name: str) -> StepState:
        with self._lock:
            return self.app(app).steps.setdefault(name, StepState(name=name))

    def is_done(self, app: str, name: str) -> bool:
        return self.step(app, name).state == "done"

    @contextmanager
    def run_step(self, app: str, name: str) -> Iterator[StepState]:
        """Mark a step running, then done or failed (with the error's one-line message)."""
        step = self.step(app, name)
        with self._lock:
            step.state, step.started_at, step.error = "running", now_iso(), None
            step.attempts += 1
            self.save()
        started = time.monotonic()
        try:
            yield step
        except BaseException as exc:
            with self._lock:
                step.state, step.finished_at = "failed", now_iso()
                step.seconds = round(step.seconds + time.monotonic() - started, 3)
                step.error = str(getattr(exc, "message", exc) or type(exc).__name__).splitlines()[0][:500]
                self.save()
            raise
        with self._lock:
            step.state, step.finished_at = "done", now_iso()
            step.seconds = round(step.seconds + time.monotonic() - started, 3)
            self.save()

    def reset_step(self, app: str, name: str) -> None:
        with self._lock:
            self.app(app).steps[name] = StepState(name=name)
            self.save()

    def table(self, app: str, database: str, name: str) -> TableState:
        key = f"{database}/{name}"
        with self._lock:
            return self.app(app).tables.setdefault(key, TableState(name=name, database=database))

    def record_copied(self, app: str, database: str, table: str, *, part: int, parts: int, rows: int, size: int,
                      seconds: float) -> None:  # fmt: skip
        """One copied table (or one part of a split table); done when every part is in."""
        with self._lock:
            entry = self.table(app, database, table)
            entry.rows += rows
            entry.bytes += size
            entry.seconds = round(entry.seconds + seconds, 3)
            if part not in entry.parts_done:
                entry.parts_done.append(part)
            entry.state = "done" if len(entry.parts_done) == parts else "copying"
            self.save()

    def update(self, fn: Any) -> None:
        """Apply ``fn(state)`` under the lock and save (for small multi-field changes)."""
        with self._lock:
            fn(self.state)
            self.save()


@contextmanager
def exclusive(plan_dir: Path) -> Iterator[None]:
    """One run per plan directory at a time."""
    plan_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(plan_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PreconditionError(
                f"another consolidator run holds {plan_dir / LOCK_FILE}",
                hint="wait for it to finish (consolidator status shows it)",
            ) from None
        yield
    finally:
        os.close(fd)
