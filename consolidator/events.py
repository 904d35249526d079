"""Progress as a stream of events: the core emits, every face (rich, plain, NDJSON, TUI) renders.

Events carry raw numbers (bytes, rows, seconds); pretty units are the renderer's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UI_VERSION = "1.0"


@dataclass
class Event:
    type: str  # log | diagnostic | step_start | step_progress | step_complete | step_errored | summary
    message: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """The sink used when nobody listens."""


_DELIVER = threading.Lock()


def emit(sink: EventSink | None, type_: str, message: str, level: str = "info", **fields: Any) -> None:
    """Deliver one event. Work runs on several threads; sinks see one event at a time, so none needs a lock."""
    event = Event(type=type_, message=message, level=level, fields=fields)
    with _DELIVER:
        (sink or discard)(event)
