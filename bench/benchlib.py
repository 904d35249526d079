"""Shared helpers of the benchmarks: throwaway instances, pgbench data, plans, timers and CPU accounting.

Every benchmark compares consolidator with a baseline measured in the same run on the same machine,
so the helpers make both sides use the same binaries, the same server settings and the same source.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from consolidator.events import Event
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.pg.connect import connect
from consolidator.pg.instance import LocalInstance
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.model import Plan
from consolidator.plan.write import write_plan_dir

COPY_STEPS = ("schema", "copy", "indexes", "large_objects", "sequences", "analyze")


def scratch_dir(prefix: str) -> Path:
    """A temporary directory the unprivileged server user may traverse (mkdtemp makes it 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def start_instance(settings: dict[str, str] | None = None, major: int | None = None) -> LocalInstance:
    """initdb + start a throwaway server (its own temporary root); the caller destroys it."""
    inst = LocalInstance.create(major=major, settings=settings)
    try:
        inst.start()
    except BaseException:
        inst.destroy()
        raise
    return inst


def create_database(inst: LocalInstance, dbname: str, owner: str | None = None) -> None:
    with connect(inst.conninfo()) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if owner:
            stmt = sql.SQL("{} OWNER {}").format(stmt, sql.Identifier(owner))
        conn.execute(stmt)


def create_app_role(inst: LocalInstance, role: str) -> str:
    """A LOGIN role with a password in the instance's pgpass file (apps own their databases); its password."""
    password = secrets.token_urlsafe(18)
    with connect(inst.conninfo()) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    inst.add_password(role, password)
    return password


def run(argv: list[str], *, env: dict[str, str] | None = None, what: str) -> float:
    """Run a client program; return its wall-clock seconds; fail loudly with its last lines."""
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {out.returncode}):\n{tail}")
    return seconds


def load_pgbench(inst: LocalInstance, dbname: str, scale: int, *, owner: str, foreign_keys: bool = True) -> float:
    """``pgbench -i -s SCALE [--foreign-keys] -q`` as ``owner`` (created, owns the database); returns seconds.

    A database owned by an app role, as on a real legacy server (and a superuser-owned one would be
    handed to role ``app`` by the plan, which a bare local target does not have). The owner's
    password is in the instance's pgpass file.
    """
    create_app_role(inst, owner)
    create_database(inst, dbname, owner=owner)
    argv = [inst.binaries.tool("pgbench"), "-i", "-s", str(scale), "-q"]
    if foreign_keys:
        argv.append("--foreign-keys")
    return run([*argv, inst.conninfo(dbname, user=owner)], what="pgbench -i")


def database_bytes(conninfo: str, dbname: str) -> int:
    with connect(conninfo) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (dbname,)).fetchone()
    return int(row[0]) if row else 0


def user_tables(conninfo: str) -> list[tuple[str, str]]:
    """Every ordinary table outside the system schemas, as (schema, name)."""
    with connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1, 2"
        ).fetchall()
    return [(str(s), str(n)) for s, n in rows]


def make_plan(source_dsn: str, plan_dir: Path, local_root: Path, strategy: str = "dump",
              target_version: int | None = None) -> Plan:  # fmt: skip
    """Inventory (no activity window) → plan with one strategy and local targets → plan directory."""
    inv = run_inventory(source_dsn, InventoryOptions(sample_seconds=0))
    opts = PlanOptions(provider="local", local_root=str(local_root), default_strategy=strategy,
                       target_version=target_version)  # fmt: skip
    plan = build_plan(inv, source_dsn, opts)
    write_plan_dir(plan, plan_dir)
    return plan


def target_settings(plan: Plan, app_name: str) -> dict[str, str]:
    """The server parameters the local provider gives this app's target (for baselines on equal terms)."""
    from consolidator.engine.local import LocalProvider

    app = plan.app(app_name)
    return LocalProvider(Path(plan.target.local_root or "."))._settings(app)


def journal_steps(plan_dir: Path, app_name: str) -> dict[str, float]:
    """Step name → seconds from the run journal (``PLANDIR/state.json``)."""
    state = json.loads((plan_dir / "state.json").read_text())
    steps = state["apps"][app_name]["steps"]
    return {name: float(step.get("seconds") or 0.0) for name, step in steps.items()}


def machine_cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine spent running tasks and interrupts, seconds stolen by the hypervisor)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    t = [int(x) for x in fields] + [0] * 8
    tick = os.sysconf("SC_CLK_TCK")
    busy = t[0] + t[1] + t[2] + t[5] + t[6]  # user nice system irq softirq (not idle, iowait, steal)
    return busy / tick, t[7] / tick


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], utime [11]…)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def instance_cpu_seconds(inst: LocalInstance) -> float:
    """CPU seconds of one server so far: postmaster, live backends, and backends already reaped.

    The postmaster waits for every backend it forks, so the kernel adds an ended backend's time to the
    postmaster's cutime/cstime: nothing is lost between samples.
    """
    try:
        pid = int((inst.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0.0
    for _ in range(5):  # a backend reaped between reading the postmaster and its children would count nowhere
        own = _stat(pid)
        if own is None:
            return 0.0
        ticks = sum(int(x) for x in own[11:15])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = _stat(int(entry.name))
                if fields is not None and fields[1] == str(pid):
                    ticks += int(fields[11]) + int(fields[12])
        again = _stat(pid)
        if again is None or again[13:15] == own[13:15]:
            break
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSample:
    """Wall clock and CPU seconds so far, split by who spent them."""

    wall: float
    python: float  # this process, every thread
    children: float  # finished child processes (pg_dump, pg_restore, vacuumdb, pgcopydb…)
    servers: float  # the instances passed to now()
    machine: float  # every task and interrupt on the machine
    steal: float  # time the hypervisor gave to other guests

    @classmethod
    def now(cls, instances: Iterable[LocalInstance] = ()) -> CpuSample:
        wall = time.perf_counter()
        t = os.times()
        servers = sum(instance_cpu_seconds(i) for i in instances)
        return cls(wall, t.user + t.system, t.children_user + t.children_system, servers,
                   *machine_cpu_seconds())  # fmt: skip

    def minus(self, other: CpuSample) -> CpuSample:
        return CpuSample(self.wall - other.wall, self.python - other.python, self.children - other.children,
                         self.servers - other.servers, self.machine - other.machine,
                         self.steal - other.steal)  # fmt: skip

    @property
    def others(self) -> float:
        """CPU not spent by us (nor stolen): other processes and the kernel's interrupts, loopback traffic incl."""
        return max(0.0, self.machine - self.python - self.children - self.servers)

    def describe(self) -> str:
        return (f"CPU s: this process {self.python:.1f}, tools {self.children:.1f}, our servers {self.servers:.1f}, "
                f"others+kernel {self.others:.1f}, stolen {self.steal:.1f}")  # fmt: skip


def local_targets(root: Path) -> list[LocalInstance]:
    return [LocalInstance.open(meta.parent) for meta in sorted(root.glob("*/instance.json"))]


@dataclass
class StepProfiler:
    """An event sink that records wall and CPU time per executor step (where does the time go?).

    ``instances`` lists the servers whose CPU counts as ours (called at every step edge, so a target
    provisioned during the run is picked up; its CPU before it existed is zero).
    """

    instances: Callable[[], list[LocalInstance]] = list
    steps: dict[str, CpuSample] = field(default_factory=dict)
    _open: dict[str, CpuSample] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        step = event.fields.get("step")
        if event.type in ("step_errored", "log") and event.level in ("error", "warning"):
            self.events.append(event)
        if not step or "app" not in event.fields:
            return
        if event.type == "step_start":
            self._open[step] = CpuSample.now(self.instances())
        elif event.type == "step_complete" and step in self._open:
            self.steps[step] = CpuSample.now(self.instances()).minus(self._open.pop(step))

    def table(self) -> list[str]:
        head = f"  {'step':<14} {'wall s':>7} {'python':>7} {'tools':>6} {'servers':>8} {'others':>7} {'stolen':>7}"
        lines = [head]
        for name, s in self.steps.items():
            lines.append(f"  {name:<14} {s.wall:7.2f} {s.python:7.2f} {s.children:6.2f} {s.servers:8.2f} "
                         f"{s.others:7.2f} {s.steal:7.2f}")  # fmt: skip
        return lines


def verdict(ratio: float, limit: float) -> str:
    return "met" if ratio <= limit else "MISSED"


def ratio_line(label: str, value: float, base: float, limit: float) -> str:
    ratio = value / base if base > 0 else float("inf")
    return f"{label} = {value:.2f} s / {base:.2f} s = {ratio:.2f} (target ≤ {limit}: {verdict(ratio, limit)})"


def busy_cores(seconds: float = 1.0) -> float:
    """Cores the machine keeps busy right now (other sessions' servers and tests share it)."""
    before = machine_cpu_seconds()[0]
    time.sleep(seconds)
    return (machine_cpu_seconds()[0] - before) / seconds


def wait_idle(max_seconds: float, threshold: float = 0.25) -> str:
    """Wait (up to ``max_seconds``) until the machine is nearly idle: other sessions share it.

    Returns a note for the output: how long we waited and the load we started with.
    """
    started = time.monotonic()
    load = busy_cores(0.5)
    while load > threshold and time.monotonic() - started < max_seconds:
        load = busy_cores(1.0)
    waited = time.monotonic() - started
    return f"waited {waited:.0f} s for an idle machine, busy {load:.2f} cores at the start" if waited > 1 else (
        f"machine busy {load:.2f} cores at the start")


def machine_notes() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()}, {platform.system()}; "
            f"busy before the run: {busy_cores():.2f} cores")  # fmt: skip


@contextmanager
def cleanup() -> Iterator[list[Any]]:
    """Collect instances and directories; destroy/remove all of them, in reverse order, whatever happens."""
    items: list[Any] = []
    try:
        yield items
    finally:
        for item in reversed(items):
            try:
                if isinstance(item, LocalInstance):
                    item.destroy()
                elif isinstance(item, Path):
                    shutil.rmtree(item, ignore_errors=True)
                elif callable(item):
                    item()
            except Exception as exc:  # keep cleaning up the rest
                print(f"cleanup of {item}: {exc}")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def destroy_local_targets(root: Path) -> None:
    """Stop and remove every local target instance the executor provisioned under ``root``."""
    for inst in local_targets(root):
        inst.destroy()
    shutil.rmtree(root, ignore_errors=True)


def combined_passfile(path: Path, *instances: LocalInstance) -> Path:
    """One 0600 pgpass file with the superuser entries of several instances (tools given plain URIs)."""
    text = "".join(inst.passfile.read_text() for inst in instances)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def uri(inst: LocalInstance, dbname: str) -> str:
    return f"postgres://{inst.superuser}@127.0.0.1:{inst.port}/{dbname}"


def run_main(main: Callable[[], int]) -> None:
    """Run a bench's ``main``, print how long the whole bench took, exit with its code."""
    import sys

    started = time.perf_counter()
    code = main()
    print(f"(bench ran {time.perf_counter() - started:.0f} s)")
    sys.exit(code)


def pgbench_source(items: list[Any], settings: dict[str, str], dbname: str, scale: int, owner: str) -> tuple[
        LocalInstance, int]:  # fmt: skip
    """A fresh source instance holding ``pgbench -i -s scale --foreign-keys`` (registered for cleanup, its
    load printed); returns it and the database's size."""
    source = start_instance(settings)
    items.append(source)
    print(f"source: PostgreSQL {source.binaries.version} at {source.root}", flush=True)
    loaded = load_pgbench(source, dbname, scale, owner=owner)
    size = database_bytes(source.conninfo(), dbname)
    print(f"pgbench -i -s {scale} --foreign-keys: {loaded:.1f} s, database {human(size)}", flush=True)
    return source, size
