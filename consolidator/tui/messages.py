"""Messages workers post back to the UI thread (never touch widgets from a worker).

How panes hear of each other's work (one pattern, no pane queries a sibling):

- Announcements (:class:`InventoryReady`, :class:`PlanChanged`, :class:`PlanSaved`) are posted **to the
  screen**, from the UI thread: ``announce(self, PlanChanged(app))`` (or
  ``self.screen.post_message(...)``; from a worker thread ``self.app.call_from_thread(announce, self, msg)``).
- ``MainScreen`` relays each announcement to every pane as a fresh copy that does not bubble back up; a pane
  that cares defines ``on_plan_changed`` / ``on_inventory_ready`` / ``on_plan_saved``. The pane that announced
  gets the copy too, so refresh in the handler rather than twice.
- Don't post an announcement to the pane itself (``self.post_message``): it would reach its own handler once
  on the way up and once more from the relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from consolidator.events import Event

if TYPE_CHECKING:
    from textual.dom import DOMNode


@dataclass
class InventoryReady(Message):
    """A fresh inventory is in the session (``session.inventory``)."""


@dataclass
class PlanChanged(Message):
    """The session's plan was built or edited; ``app`` names the one app that changed, or None for all."""

    app: str | None = None


@dataclass
class PlanSaved(Message):
    path: Path


@dataclass
class EngineEvent(Message):
    """One event of the engine's stream (the same events the CLI renders)."""

    event: Event


@dataclass
class RunFinished(Message):
    """An execute/cutover/rollback worker ended; ``states``: app → state."""

    kind: str
    states: dict[str, str]


def announce(node: DOMNode, message: Message) -> None:
    """Tell every pane of ``node``'s screen (see the module docstring); call on the UI thread."""
    node.screen.post_message(message)
