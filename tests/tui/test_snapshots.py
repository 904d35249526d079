"""What the main screens look like (SVG snapshots, pytest-textual-snapshot), from the example plan so the
pictures do not depend on a live server: regenerate with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` after looking at the differences in the report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.session import Session

EXAMPLE = Path(__file__).resolve().parents[2] / "plans" / "example"
WIDE, SMALL = (120, 34), (80, 24)


def example_app(tmp_path: Path) -> ConsolidatorApp:
    """The TUI on a copy of plans/example, offline (no source to inventory)."""
    plan_dir = tmp_path / "plan"
    shutil.copytree(EXAMPLE, plan_dir)
    session = Session()
    session.open_plan(plan_dir)
    session.source = None
    return ConsolidatorApp(session)


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_connect_screen(snap_compare: Any) -> None:
    assert snap_compare(ConsolidatorApp(Session()), terminal_size=WIDE, run_before=settled)


def test_apps_tab(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(example_app(tmp_path), press=["2"], terminal_size=WIDE, run_before=settled)


def test_apps_tab_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(example_app(tmp_path), press=["2"], terminal_size=SMALL, run_before=settled)


def test_manifests_tab(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(example_app(tmp_path), press=["3"], terminal_size=WIDE, run_before=settled)


def test_help_over_the_apps_tab(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(example_app(tmp_path), press=["2", "f1"], terminal_size=WIDE, run_before=settled)
