"""Render the engine's event stream: rich bars on a TTY, plain heartbeat lines otherwise, NDJSON."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from consolidator import __version__
from consolidator.events import UI_VERSION, Event
from consolidator.report.format import human_bytes, human_duration

HEARTBEAT_SECONDS = 10.0


class JsonSink:
    """NDJSON on stdout; the first line declares the schema version."""

    def __init__(self) -> None:
        self._line({"@level": "info", "@message": f"consolidator {__version__}", "type": "version",
                    "consolidator": __version__, "ui": UI_VERSION})  # fmt: skip

    def _line(self, data: dict[str, Any]) -> None:
        data.setdefault("@timestamp", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def __call__(self, event: Event) -> None:
        ts = dt.datetime.fromtimestamp(event.timestamp, dt.UTC).isoformat(timespec="seconds")
        self._line({"@level": event.level, "@message": event.message, "@timestamp": ts, "type": event.type,
                    **event.fields})  # fmt: skip


def _eta(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or total <= done or elapsed <= 0:
        return "—"
    return human_duration((total - done) / (done / elapsed))


class PlainSink:
    """Lines on stderr: every step, every finished table, a heartbeat with rate and ETA while copying."""

    def __init__(self) -> None:
        self._last_beat = 0.0
        self._last_message: str | None = None

    def __call__(self, event: Event) -> None:
        text = self.render(event)
        if text:
            print(text, file=sys.stderr)

    def render(self, event: Event) -> str | None:
        """The line for an event, or None while a heartbeat is not due."""
        f = event.fields
        if event.type != "step_progress" or "rows" in f:
            return _plain(event)
        now = time.monotonic()
        first = event.message != self._last_message and "phase" in f
        if not first and now - self._last_beat < HEARTBEAT_SECONDS:
            return None
        self._last_beat, self._last_message = now, event.message
        if "bytes_total" in f and "bytes" in f:
            done, total = int(f["bytes"]), int(f["bytes_total"])
            elapsed = float(f.get("elapsed_seconds", 0))
            rate = human_bytes(int(f.get("rate", 0)))
            eta = _eta(done, total, elapsed)
            return f"  {event.message}: {human_bytes(done)}/{human_bytes(total)} {rate}/s eta {eta}"
        if "done" in f and "total" in f:
            return f"  {event.message}: {f['done']}/{f['total']}"
        if "lag_bytes" in f:
            return f"  {event.message}: lag {human_bytes(int(f['lag_bytes']))}"
        return f"  {event.message}"


class RichSink:
    """A live byte bar per copy step on a terminal; finished tables and steps are logged above it."""

    def __init__(self) -> None:
        self.console = Console(file=sys.stderr)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=self.console,
                                 transient=True)  # fmt: skip
        self._tasks: dict[str, Any] = {}
        self._lines = PlainSink()

    def __call__(self, event: Event) -> None:
        f = event.fields
        step = str(f.get("step_id"))
        if event.type == "step_progress" and "rows" not in f and f.get("bytes_total"):
            if step not in self._tasks:
                if not self._tasks:
                    self.progress.start()
                self._tasks[step] = self.progress.add_task(step, total=int(f["bytes_total"]))
            self.progress.update(self._tasks[step], completed=int(f.get("bytes", 0)))
            return
        if event.type in ("step_complete", "step_errored") and step in self._tasks:
            self.progress.remove_task(self._tasks.pop(step))
            if not self._tasks:
                self.progress.stop()
        text = self._lines.render(event)
        if text:
            self.progress.console.print(text, highlight=False, markup=False)


def _plain(event: Event) -> str | None:
    f = event.fields
    if event.type == "step_progress":
        return (f"✓ {f.get('table')} {f.get('rows')} rows {human_bytes(int(f.get('bytes', 0)))} "
                f"{human_duration(float(f.get('seconds', 0)))}")  # fmt: skip
    if event.type == "step_complete":
        return f"{event.message} in {human_duration(float(f.get('seconds', 0)))}"
    if event.type == "step_errored":
        return f"error: {event.message}" + (f"\n  hint: {f['hint']}" if f.get("hint") else "")
    return event.message


def make_sink(json_mode: bool, quiet: bool) -> Any:
    if json_mode:
        return JsonSink()
    if quiet:
        return lambda _event: None
    return RichSink() if sys.stderr.isatty() else PlainSink()
