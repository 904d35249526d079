"""Where output goes: data on stdout, progress and diagnostics on stderr (rich on a TTY)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console

from consolidator.errors import ConsolidatorError
from consolidator.events import Event


def stdout_console() -> Console:
    # Not a terminal: wide lines, no wrapping, so pipes and files get whole lines.
    return Console(file=sys.stdout, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=not sys.stdout.isatty(),
                   width=None if sys.stdout.isatty() else 10_000)


def stderr_console() -> Console:
    return Console(file=sys.stderr, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=True)


def print_error(exc: ConsolidatorError | str, hint: str | None = None) -> None:
    """One plain line for the error and one for the fix: no panels, no traceback."""
    message = exc.message if isinstance(exc, ConsolidatorError) else exc
    hint = exc.hint if isinstance(exc, ConsolidatorError) else hint
    print(f"consolidator: error: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


class ProgressPrinter:
    """Event sink for commands without a live display: throttled plain lines on stderr."""

    def __init__(self, quiet: bool = False, interval: float = 2.0) -> None:
        self.quiet = quiet
        self.interval = interval
        self._last = 0.0

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if event.type == "step_progress":
            done, total = event.fields.get("done"), event.fields.get("total")
            if done != total and now - self._last < self.interval:
                return
            self._last = now
            print(f"  {event.message} ({done}/{total})", file=sys.stderr)
            return
        print(f"{event.message}", file=sys.stderr)
