"""Benchmark: the TUI stays responsive while a copy runs (target: key → redraw < 100 ms, at the 95th percentile).

Setup (untimed): a pgbench source of a few hundred MB, inventoried and planned with the dump strategy onto a
local target, the plan saved. The app then runs headless (Textual's ``run_test``, the real app with every
tab) and its Execute tab starts the run in its worker, exactly as a person would.

Measured: while the copy step runs, keys are sent one after another — the table cursor down and up in the
Execute tab's list of tables, and switches to the Cutover tab and back (its number keys) — and each latency is
the time from sending the key until the first screen update that shows its effect (the compositor's render
included; headless, so the terminal's own write is not). The same keys are measured again with nothing
running (after the run), as a baseline. The copy's threads share the interpreter with the UI: that is what
the number shows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchlib import (
    busy_cores,
    cleanup,
    destroy_local_targets,
    journal_steps,
    machine_notes,
    pgbench_source,
    run_main,
    scratch_dir,
    wait_idle,
)

from consolidator.engine.lifecycle import teardown
from consolidator.tui.app import ConsolidatorApp
from consolidator.tui.panes.execute import ExecutePane
from consolidator.tui.session import Session

DBNAME = "bench"
OWNER = "bench_app"
SOURCE_SETTINGS = {"max_connections": "100"}
LIMIT_MS = 100.0


class DisplayProbe:
    """Wraps the app's ``_display`` (called with every compositor update, headless too): wakes a waiter at the
    first update after which its condition holds, and counts updates."""

    def __init__(self, app: Any) -> None:
        self._orig = app._display
        app._display = self._display
        self.updates = 0
        self._cond: Callable[[], bool] | None = None
        self._done: asyncio.Future[float] | None = None

    def _display(self, screen: Any, renderable: Any) -> None:
        self._orig(screen, renderable)
        if renderable is None:
            return
        self.updates += 1
        if self._cond is not None and self._done is not None and not self._done.done() and self._cond():
            self._done.set_result(time.perf_counter())
            self._cond = None

    async def latency(self, pilot: Any, key: str, shown: Callable[[], bool], timeout: float = 10.0) -> float:
        """Milliseconds from sending ``key`` to the first screen update showing ``shown()``.

        The key goes in as the terminal driver delivers it (``pilot.press`` would also wait for the whole
        app to go idle, which a running copy keeps it from doing)."""
        from textual import events

        self._done = asyncio.get_running_loop().create_future()
        self._cond = shown
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(pilot.app)
        started = time.perf_counter()
        pilot.app._driver.send_message(event)
        try:
            finished = await asyncio.wait_for(asyncio.shield(self._done), timeout)
        finally:
            self._cond = None
        return (finished - started) * 1000


@dataclass
class Samples:
    by_kind: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, ms: float) -> None:
        self.by_kind.setdefault(kind, []).append(ms)

    @property
    def all(self) -> list[float]:
        return [v for values in self.by_kind.values() for v in values]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def describe(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"n={len(values)}, median {statistics.median(values):.1f} ms, p95 {p95(values):.1f} ms, "
            f"max {max(values):.1f} ms")  # fmt: skip


async def settle(pilot: Any) -> None:
    """Until no worker runs (then one more tick of the panes' drawing)."""
    while True:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        if not any(w.is_running for w in pilot.app.workers):
            return


async def one_round(pilot: Any, probe: DisplayProbe, pane: ExecutePane, samples: Samples,
                    args: argparse.Namespace) -> None:  # fmt: skip
    """Tab to Cutover and back; then the table cursor down and up (when the list has rows to move over)."""
    from textual.widgets import DataTable, TabbedContent

    app = pilot.app
    tabs = app.screen.query_one(TabbedContent)
    for key, tab in (("6", "cutover"), ("5", "execute")):
        samples.add("tab switch", await probe.latency(pilot, key, lambda tab=tab: tabs.active == tab))
        await asyncio.sleep(args.gap_tab)
    table = pane.query_one("#execute-tables", DataTable)
    if table.row_count < 2:
        return
    table.focus()
    table.move_cursor(row=0)
    await pilot.pause()
    rows = [1, 2, 1, 0] if table.row_count > 2 else [1, 0]
    for row in rows:
        key = "down" if row > table.cursor_row else "up"
        samples.add("table cursor", await probe.latency(pilot, key, lambda row=row: table.cursor_row == row))
        await asyncio.sleep(args.gap_cursor)


@dataclass
class Outcome:
    idle: Samples
    busy: Samples
    copy_updates_per_s: float = 0.0
    copy_seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    state: str = ""


async def drive(session: Session, app_name: str, args: argparse.Namespace) -> Outcome:
    from textual.widgets import Select

    app = ConsolidatorApp(session)
    idle, busy = Samples(), Samples()
    async with app.run_test(size=(args.width, args.height)) as pilot:
        probe = DisplayProbe(app)
        await settle(pilot)
        app.screen.action_show_tab("execute")
        await settle(pilot)
        pane = app.screen.query_one(ExecutePane)
        pane.query_one("#execute-app", Select).value = app_name
        pane.action_start()
        view = None
        async with asyncio.timeout(600):
            while view is None or view.step != "copy":
                await asyncio.sleep(0.05)
                view = pane.apps.get(app_name)
                if view is not None and view.state in ("failed", "interrupted"):
                    raise RuntimeError(f"the run stopped before the copy: {view.state} {view.error}")
        print("  copy step started: measuring", flush=True)
        started, updates = time.perf_counter(), probe.updates
        while view.step == "copy":
            await one_round(pilot, probe, pane, busy, args)
        copy_wall = time.perf_counter() - started
        rate = (probe.updates - updates) / copy_wall if copy_wall > 0 else 0.0
        pane.action_cancel()  # measured: stop at the next safe point instead of building indexes and verifying
        await settle(pilot)
        state = pane.apps[app_name].state
        app.screen.action_show_tab("execute")
        await settle(pilot)
        for _ in range(args.idle_rounds):  # the baseline: the same keys, the same tables listed, nothing running
            await one_round(pilot, probe, pane, idle, args)
    steps = journal_steps(session.plan_dir, app_name) if session.plan_dir else {}
    return Outcome(idle, busy, rate, copy_wall, steps, state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale of the source (30 ≈ 450 MB)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel COPY workers of the execute")
    parser.add_argument("--idle-rounds", type=int, default=10, help="rounds of keys with nothing running")
    parser.add_argument("--gap-cursor", type=float, default=0.05,
                        help="seconds from a cursor move's redraw to the next key (0.05: about key repeat)")
    parser.add_argument("--gap-tab", type=float, default=0.5,
                        help="seconds from a tab switch's redraw to the next key: a switch moves the focus, which "
                        "recomposes the footer twice after the redraw (Textual), so switches in quick bursts queue "
                        "behind each other")  # fmt: skip
    parser.add_argument("--width", type=int, default=120, help="terminal columns")
    parser.add_argument("--height", type=int, default=40, help="terminal lines")
    parser.add_argument("--keep", action="store_true", help="leave the source and directories behind")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before measuring, wait up to this long for other work on the machine to stop")
    args = parser.parse_args()

    print(f"machine: {machine_notes()}")
    with cleanup() as items:
        source, _ = pgbench_source(items, SOURCE_SETTINGS, DBNAME, args.scale, OWNER)
        work = scratch_dir("consolidator-bench-")
        items.append(work)
        local_root = work / "targets"
        plan_dir = work / "plan"
        items.append(lambda: destroy_local_targets(local_root))
        items.append(lambda: teardown(plan_dir, force=True) if (plan_dir / "plan.yaml").exists() else None)

        session = Session(source=source.conninfo(), sample_seconds=0, jobs=args.jobs)
        session.options.local_root = str(local_root)
        session.options.default_strategy = "dump"
        session.take_inventory()
        plan = session.build()
        session.save(plan_dir)
        app = next(a for a in plan.apps if any(d.source == DBNAME for d in a.databases))
        print(f"plan: app {app.name}, strategy dump, local target, jobs {args.jobs}; terminal "
              f"{args.width}×{args.height}; next key {args.gap_cursor} s after a cursor move's redraw, "
              f"{args.gap_tab} s after a tab switch's; {wait_idle(args.wait_idle)}", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory() as config:  # recent sources and the like stay out of the user's config
            import os

            os.environ["XDG_CONFIG_HOME"] = config
            outcome = asyncio.run(drive(session, app.name, args))

        print(f"\nresults (machine busy after the run: {busy_cores():.2f} cores):")
        copy_journal = outcome.steps.get("copy")
        journal_note = f", journal {copy_journal:.1f} s" if copy_journal else ""
        print(f"  keys sent during the copy step for {outcome.copy_seconds:.1f} s{journal_note}; screen updates "
              f"during it {outcome.copy_updates_per_s:.1f}/s; the run was cancelled after the copy: "
              f"{outcome.state}")  # fmt: skip
        print(f"  idle:        {describe(outcome.idle.all)}")
        for kind, values in outcome.idle.by_kind.items():
            print(f"    {kind:<12} {describe(values)}")
        print(f"  during copy: {describe(outcome.busy.all)}")
        for kind, values in outcome.busy.by_kind.items():
            print(f"    {kind:<12} {describe(values)}")
        if not outcome.busy.all:
            print("  no samples during the copy (too short: raise --scale)")
            return 1
        verdicts = {kind: p95(values) < LIMIT_MS for kind, values in outcome.busy.by_kind.items()}
        print(f"  key → redraw during the copy, p95 per kind of key (target < {LIMIT_MS:.0f} ms): " + ", ".join(
            f"{kind} {p95(outcome.busy.by_kind[kind]):.1f} ms {'met' if ok else 'MISSED'}"
            for kind, ok in verdicts.items()))  # fmt: skip
        print(f"  all keys together: p95 {p95(outcome.busy.all):.1f} ms")
        if args.keep:
            print(f"\n--keep: left behind: {source.root}, {work}")
            items.clear()
        return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    run_main(main)
