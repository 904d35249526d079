"""Giving the focus to a pane's main widget when its tab opens, so its keys work at once."""

from __future__ import annotations

from textual.widget import Widget


def on_view(pane: Widget) -> bool:
    """True when the pane and every container above it are displayed (its tab is the active one)."""
    return all(node.display for node in pane.ancestors_with_self if isinstance(node, Widget))


def focus_when_shown(pane: Widget, target: Widget) -> None:
    """Focus ``target`` unless the focus is already inside ``pane``.

    A Show event can arrive after the person switched to another tab, and focusing a widget of a hidden
    tab makes TabbedContent switch back to it: so only while the pane is really on view.
    """
    if not on_view(pane):
        return
    focused = pane.screen.focused
    if focused is None or pane not in focused.ancestors_with_self:
        target.focus()
