"""Benchmark: the window in which an app's writes fail during a logical migration's cutover (target ≤ 2 s).

A writer commits pgbench-like transactions (one UPDATE of pgbench_accounts + one INSERT into
pgbench_history) at ``--rate`` per second as the app role, first on the source; once the source refuses
it (fence) it keeps trying the source and the target's app address, and stays on the target after its
first successful commit there (the target opens to app roles at cutover). Printed windows:

- client view: first failed write → first successful write on the target (the issue's definition),
  and last commit on the source → first commit on the target (what users notice);
- engine view: start of the ``fence`` step → end of the ``cutover`` step (from the executor's events).

Also checked: every write acknowledged by the source or the target is on the target afterwards.
Until the engine executes the ``logical`` strategy, this prints so and exits 0 without creating anything.
``--strategy dump`` measures the same window for the offline dump strategy (expected: the whole copy).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from benchlib import (
    cleanup,
    destroy_local_targets,
    human,
    load_pgbench,
    machine_notes,
    make_plan,
    scratch_dir,
    start_instance,
    verdict,
    wait_idle,
)
from psycopg.conninfo import make_conninfo

from consolidator.engine.executor import ExecuteOptions, execute, strategy_for
from consolidator.errors import ConfigError
from consolidator.events import Event
from consolidator.pg.connect import connect, lookup_passfile

DBNAME = "bench"
OWNER = "bench_app"
SOURCE_SETTINGS = {"max_connections": "100", "wal_level": "logical", "max_wal_senders": "10",
                   "max_replication_slots": "10"}  # fmt: skip
TARGET_SECONDS = 2.0


def logical_available() -> bool:
    """Ask the executor itself, with a stand-in app: a ConfigError means "not executable by this version"."""
    probe: Any = SimpleNamespace(name="probe", strategy=SimpleNamespace(name="logical"))
    try:
        strategy_for(probe)
    except ConfigError:
        return False
    except Exception:  # needs more of a real App than the stand-in has: the strategy exists
        return True
    return True


class Writer(threading.Thread):
    """Commits at a fixed rate as the app role; moves to the target once the source refuses it."""

    def __init__(self, source: str, password: str, plan_dir: Path, app: str, rate: float, accounts: int) -> None:
        super().__init__(name="writer", daemon=True)
        self.source = source
        self.password = password
        self.state_file = plan_dir / "state.json"
        self.app = app
        self.interval = 1.0 / rate
        self.accounts = accounts
        self.stop = threading.Event()
        self.refused = False  # the source refused us at least once (fenced)
        self.side: str | None = None
        self.ok = {"source": 0, "target": 0}
        self.first_source_ok: float | None = None
        self.last_source_ok: float | None = None
        self.first_fail: float | None = None
        self.first_target_ok: float | None = None
        self.failures = 0
        self.error: str | None = None

    def _target_conninfo(self) -> str | None:
        try:
            state = json.loads(self.state_file.read_text())
            address = state["apps"][self.app]["target"].get("app_conninfo")
        except (OSError, ValueError, KeyError):
            return None
        if not address:
            return None
        return make_conninfo(address, user=OWNER, dbname=DBNAME, password=self.password, connect_timeout="2")

    def _connect(self) -> psycopg.Connection[Any]:
        """The source until it refused us once; then the target when it lets us in, else the source."""
        candidates = [("source", self.source)]
        if self.refused:
            target = self._target_conninfo()
            if target:
                candidates.insert(0, ("target", target))
        last: Exception | None = None
        for side, conninfo in candidates:
            try:
                conn = psycopg.connect(conninfo, autocommit=False)
            except psycopg.Error as exc:
                last = exc
                if side == "source":
                    self.refused = True
                continue
            self.side = side
            return conn
        raise last or RuntimeError("no address to write to")

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        due = time.monotonic()
        while not self.stop.is_set():
            due += self.interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                due = time.monotonic()  # fell behind (outage): do not burst afterwards
            try:
                if conn is None:
                    conn = self._connect()
                aid = random.randint(1, self.accounts)
                with conn.transaction():
                    conn.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s", (aid,))
                    conn.execute("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                                 "VALUES (1, 1, %s, 1, now())", (aid,))  # fmt: skip
                now = time.time()
                side = self.side or "source"
                self.ok[side] += 1
                if side == "source":
                    self.first_source_ok = self.first_source_ok or now
                    self.last_source_ok = now
                elif self.first_target_ok is None:
                    self.first_target_ok = now
            except (psycopg.Error, RuntimeError) as exc:
                self.failures += 1
                if self.first_fail is None:
                    self.first_fail = time.time()
                    self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if self.side == "source":
                    self.refused = True
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


class StepClock:
    """Event sink keeping wall-clock start/end of every executor step (the journal keeps whole seconds)."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.errors: list[str] = []

    def __call__(self, event: Event) -> None:
        step = event.fields.get("step")
        if event.type == "step_errored" or event.level == "error":
            self.errors.append(event.message)
        if not step or "app" not in event.fields:
            return
        if event.type == "step_start":
            self.start.setdefault(step, event.timestamp)
        elif event.type == "step_complete":
            self.end[step] = event.timestamp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale of the app database")
    parser.add_argument("--rate", type=float, default=200, help="writer transactions per second")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--after", type=float, default=2.0, help="seconds the writer keeps going after execute")
    parser.add_argument("--strategy", default="logical", choices=("logical", "dump"),
                        help="dump: the same window for the offline strategy (for comparison)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="leave instances and directories behind")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before the migration, wait up to this long for other work on the machine to stop")
    args = parser.parse_args()

    if args.strategy == "logical" and not logical_available():
        print("logical strategy not available yet: consolidator.engine.executor.strategy_for cannot build it; "
              "nothing measured")  # fmt: skip
        return 0
    print(f"machine: {machine_notes()}")
    with cleanup() as items:
        source = start_instance(SOURCE_SETTINGS)
        items.append(source)
        loaded = load_pgbench(source, DBNAME, args.scale, owner=OWNER)
        print(f"source PostgreSQL {source.binaries.version}, pgbench -i -s {args.scale} ({loaded:.1f} s)", flush=True)
        password = lookup_passfile(str(source.passfile), {"host": "127.0.0.1", "port": str(source.port),
                                                          "dbname": DBNAME, "user": OWNER})  # fmt: skip
        assert password is not None
        work = scratch_dir("consolidator-bench-")
        items.append(work)
        local_root = work / "targets"
        items.append(lambda: destroy_local_targets(local_root))
        plan_dir = work / "plan"
        plan = make_plan(source.conninfo(), plan_dir, local_root, strategy=args.strategy)
        app = next(a for a in plan.apps if any(d.source == DBNAME for d in a.databases))
        print(f"app {app.name}: strategy {app.strategy.name}, steps {', '.join(s.name for s in app.steps)}")

        writer = Writer(source.conninfo(DBNAME, user=OWNER), password, plan_dir, app.name, args.rate,
                        accounts=100_000 * args.scale)  # fmt: skip
        print(wait_idle(args.wait_idle), flush=True)
        writer.start()
        time.sleep(1.0)  # steady state before the migration starts
        clock = StepClock()
        started = time.time()
        result = execute(plan_dir, ExecuteOptions(jobs=args.jobs), sink=clock)
        finished = time.time()
        time.sleep(args.after)
        writer.stop.set()
        writer.join(timeout=10)
        if not result.ok:
            for line in clock.errors:
                print(f"  error: {line}")
            print("execute failed: no window measured")
            return 1

        state = json.loads((plan_dir / "state.json").read_text())
        with connect(state["apps"][app.name]["target"]["conninfo"], dbname=DBNAME) as conn:
            row = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
        on_target = int(row[0]) if row else 0
        acked = writer.ok["source"] + writer.ok["target"]

        print(f"\nexecute {finished - started:.2f} s; writer: {writer.ok['source']} commits on the source, "
              f"{writer.ok['target']} on the target, {writer.failures} failed attempts"
              + (f" (first error: {writer.error})" if writer.error else ""))  # fmt: skip
        if writer.first_source_ok and writer.last_source_ok:
            span = max(writer.last_source_ok - writer.first_source_ok, 1e-9)
            print(f"  achieved rate on the source: {writer.ok['source'] / span:.0f} tx/s (asked {args.rate:.0f})")
        print(f"  acknowledged writes {acked}, history rows on the target {on_target}: "
              + ("none lost" if on_target >= acked else f"{acked - on_target} LOST"))  # fmt: skip

        print(f"\nresults (strategy {app.strategy.name}, scale {args.scale}, {human(app.databases[0].size_bytes)}, "
              f"{args.rate:.0f} tx/s):")  # fmt: skip
        if writer.first_fail and writer.first_target_ok:
            window = writer.first_target_ok - writer.first_fail
            print(f"  first failed write → first write on the target: {window:.2f} s "
                  f"(target ≤ {TARGET_SECONDS} s: {verdict(window, TARGET_SECONDS)})")  # fmt: skip
        else:
            print("  first failed write → first write on the target: not observed "
                  f"(failed writes: {writer.failures}, target commits: {writer.ok['target']})")  # fmt: skip
        if writer.last_source_ok and writer.first_target_ok:
            print(f"  last commit on the source → first commit on the target: "
                  f"{writer.first_target_ok - writer.last_source_ok:.2f} s")  # fmt: skip
        if "fence" in clock.start and "cutover" in clock.end:
            engine = clock.end["cutover"] - clock.start["fence"]
            print(f"  fence step start → cutover step end (executor events): {engine:.2f} s "
                  f"(target ≤ {TARGET_SECONDS} s: {verdict(engine, TARGET_SECONDS)})")  # fmt: skip
            fenced = [s for s in clock.start if clock.start[s] >= clock.start["fence"] and s in clock.end]
            print("    " + ", ".join(f"{s} {clock.end[s] - clock.start[s]:.2f} s" for s in fenced))
        if args.keep:
            print(f"\n--keep: left behind: {source.root}, {work}")
            items.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
