"""Benchmark: consolidator's dump strategy vs pg_dump/pg_restore and pgcopydb on a pgbench database.

Targets (issue 3): copy steps ≤ 0.7 × (pg_dump -Fd -j2 + pg_restore -j2), ≤ 0.85 × pgcopydb clone when
installed, whole execute (provisioning and verification included) ≤ 1.0 × (pg_dump + pg_restore).
All three run in the same process against the same source, each into a fresh instance with the
server parameters the local provider gives consolidator's target, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    COPY_STEPS,
    CpuSample,
    StepProfiler,
    busy_cores,
    cleanup,
    combined_passfile,
    create_app_role,
    create_database,
    destroy_local_targets,
    human,
    journal_steps,
    local_targets,
    machine_notes,
    make_plan,
    pgbench_source,
    ratio_line,
    run,
    run_main,
    scratch_dir,
    start_instance,
    target_settings,
    uri,
    wait_idle,
)

from consolidator.engine import fence
from consolidator.engine.executor import ExecuteOptions, execute
from consolidator.engine.journal import Journal
from consolidator.pg.instance import LocalInstance

DBNAME = "bench"
OWNER = "bench_app"
SOURCE_SETTINGS = {"max_connections": "100", "wal_level": "logical"}


def ensure_pgcopydb(install: bool) -> str | None:
    """Path of pgcopydb; installs Debian's package only when asked and root (never behind the user's back)."""
    found = shutil.which("pgcopydb")
    if found or not install:
        return found
    if os.geteuid() != 0:
        print("note: --with-pgcopydb needs root to apt-get install pgcopydb; skipping it")
        return None
    print("installing pgcopydb (apt-get install -y pgcopydb)…", flush=True)
    out = subprocess.run(["apt-get", "install", "-y", "pgcopydb"], capture_output=True, text=True,
                         env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    if out.returncode != 0:
        print("note: apt-get install pgcopydb failed: " + " | ".join(out.stderr.strip().splitlines()[-3:]))
    return shutil.which("pgcopydb")


def pgcopydb_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def baseline_pgdump(source: LocalInstance, settings: dict[str, str], work: Path, jobs: int,
                    items: list[object]) -> tuple[float, float, CpuSample]:  # fmt: skip
    """pg_dump -Fd -jN into a directory, then pg_restore -jN into a fresh instance (timed separately)."""
    target = start_instance(settings)
    items.append(target)
    create_app_role(target, OWNER)  # roles are pg_dumpall's job: prepared, untimed, on every baseline target
    create_database(target, DBNAME, owner=OWNER)
    dump_dir = work / "pgdump"
    tools = source.binaries
    before = CpuSample.now([source, target])
    t_dump = run([tools.tool("pg_dump"), "-Fd", "-j", str(jobs), "-f", str(dump_dir), "-d",
                  source.conninfo(DBNAME)], what="pg_dump")  # fmt: skip
    t_restore = run([tools.tool("pg_restore"), "-j", str(jobs), "--exit-on-error", "-d", target.conninfo(DBNAME),
                     str(dump_dir)], what="pg_restore")  # fmt: skip
    cpu = CpuSample.now([source, target]).minus(before)
    print(f"  dump directory: {human(sum(p.stat().st_size for p in dump_dir.iterdir()))} (pg_dump's default "
          "compression)")  # fmt: skip
    shutil.rmtree(dump_dir, ignore_errors=True)
    target.destroy()
    return t_dump, t_restore, cpu


def baseline_pgcopydb(binary: str, source: LocalInstance, settings: dict[str, str], work: Path, jobs: int,
                      items: list[object]) -> tuple[float, CpuSample]:  # fmt: skip
    """pgcopydb clone --table-jobs N --index-jobs N into a fresh instance with the same binaries on PATH."""
    target = start_instance(settings)
    items.append(target)
    create_app_role(target, OWNER)  # roles are pg_dumpall's job: prepared, untimed, on every baseline target
    create_database(target, DBNAME, owner=OWNER)
    passfile = combined_passfile(work / "pgcopydb.pgpass", source, target)
    env = {"PGPASSFILE": str(passfile), "PATH": f"{source.binaries.bindir}:{os.environ.get('PATH', '')}",
           "TMPDIR": str(work)}  # fmt: skip
    before = CpuSample.now([source, target])
    seconds = run([binary, "clone", "--source", uri(source, DBNAME), "--target", uri(target, DBNAME),
                   "--table-jobs", str(jobs), "--index-jobs", str(jobs), "--dir", str(work / "pgcopydb")],
                  env=env, what="pgcopydb clone")  # fmt: skip
    cpu = CpuSample.now([source, target]).minus(before)
    shutil.rmtree(work / "pgcopydb", ignore_errors=True)
    target.destroy()
    return seconds, cpu


@dataclass
class Round:
    dump: float = 0.0
    restore: float = 0.0
    pgcopydb: float | None = None
    copy_steps: float = 0.0
    execute: float = 0.0
    others: dict[str, float] = field(default_factory=dict)  # CPU s other processes took meanwhile

    @property
    def baseline(self) -> float:
        return self.dump + self.restore


def run_consolidator(source: LocalInstance, work: Path, index: int, jobs: int, items: list[object],
                     show: bool) -> tuple[float, float, float] | None:  # fmt: skip
    """Plan (fresh directory) → execute → (copy steps, whole execute); then unfence the source, drop the target."""
    local_root = work / f"targets{index}"
    items.append(lambda: destroy_local_targets(local_root))
    plan_dir = work / f"plan{index}"
    plan = make_plan(source.conninfo(), plan_dir, local_root)
    app = next(a for a in plan.apps if any(d.source == DBNAME for d in a.databases))
    profiler = StepProfiler(instances=lambda: [source, *local_targets(local_root)])
    before = CpuSample.now([source])
    result = execute(plan_dir, ExecuteOptions(jobs=jobs), sink=profiler)
    whole = CpuSample.now([source, *local_targets(local_root)]).minus(before)
    journal = Journal.load(plan_dir)
    if journal is not None:  # the source stays fenced after a cutover: open it again for the next round
        for dbname, record in journal.app(app.name).fence.items():
            fence.restore_acl(source.conninfo(), dbname, record)
    if not result.ok:
        for outcome in result.apps:
            print(f"  {outcome.name}: {outcome.state} {outcome.error or ''}")
        for event in profiler.events:
            print(f"  {event.level}: {event.message}")
        return None
    steps = journal_steps(plan_dir, app.name)
    copy_steps = sum(steps.get(name, 0.0) for name in COPY_STEPS)
    print("  steps (journal seconds): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if show:
        print("  where the time goes, per step: wall s, then CPU s of this process's threads (python), of the "
              "pg tools it ran, of source+target servers, of everything else (other processes, kernel interrupts "
              "incl. loopback traffic), and stolen by the hypervisor:")  # fmt: skip
        for line in profiler.table():
            print("  " + line)
    print(f"  copy steps ({'+'.join(COPY_STEPS)}) {copy_steps:.2f} s; whole execute {whole.wall:.2f} s "
          f"({whole.describe()})", flush=True)  # fmt: skip
    destroy_local_targets(local_root)
    return copy_steps, whole.wall, whole.others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 ≈ 1 GB)")
    parser.add_argument("--jobs", type=int, default=2, help="-j of pg_dump/pg_restore, pgcopydb and execute")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all three; medians are reported")
    parser.add_argument("--keep", action="store_true", help="leave the source and directories behind")
    parser.add_argument("--with-pgcopydb", action="store_true",
                        help="apt-get install pgcopydb when missing (root only)")  # fmt: skip
    parser.add_argument("--no-pgcopydb", action="store_true", help="skip the pgcopydb baseline")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before each measurement, wait up to this long for other work on the machine to stop")
    args = parser.parse_args()

    print(f"machine: {machine_notes()}")
    binary = None if args.no_pgcopydb else ensure_pgcopydb(args.with_pgcopydb)
    with cleanup() as items:
        source, size = pgbench_source(items, SOURCE_SETTINGS, DBNAME, args.scale, OWNER)
        work = scratch_dir("consolidator-bench-")
        items.append(work)
        probe = make_plan(source.conninfo(), work / "probe", work / "probe-targets")
        app = next(a for a in probe.apps if any(d.source == DBNAME for d in a.databases))
        settings = target_settings(probe, app.name)
        print("every target gets the parameters the plan gives consolidator's target: "
              + ", ".join(f"{k}={v}" for k, v in settings.items() if k in (
                  "shared_buffers", "maintenance_work_mem", "max_wal_size", "wal_level")))  # fmt: skip
        if binary is None:
            print("pgcopydb not installed: its baseline is skipped (Debian package pgcopydb; --with-pgcopydb as root)")
        else:
            print(f"pgcopydb: {pgcopydb_version(binary)}")

        rounds: list[Round] = []
        for index in range(args.repeat):
            r = Round()
            print(f"\nround {index + 1}/{args.repeat}")
            print(f"(a) pg_dump -Fd -j{args.jobs} + pg_restore -j{args.jobs}; {wait_idle(args.wait_idle)}", flush=True)
            r.dump, r.restore, cpu_a = baseline_pgdump(source, settings, work, args.jobs, items)
            print(f"  pg_dump {r.dump:.2f} s + pg_restore {r.restore:.2f} s = {r.baseline:.2f} s "
                  f"({cpu_a.describe()})")  # fmt: skip
            r.others["pg_dump+pg_restore"] = cpu_a.others
            if binary is not None:
                print(f"(b) pgcopydb clone --table-jobs {args.jobs} --index-jobs {args.jobs}; "
                      f"{wait_idle(args.wait_idle)}", flush=True)  # fmt: skip
                r.pgcopydb, cpu_b = baseline_pgcopydb(binary, source, settings, work, args.jobs, items)
                print(f"  {r.pgcopydb:.2f} s ({cpu_b.describe()})")
                r.others["pgcopydb"] = cpu_b.others
            print(f"(c) consolidator execute, strategy dump, local target, jobs={args.jobs}; "
                  f"{wait_idle(args.wait_idle)}", flush=True)  # fmt: skip
            outcome = run_consolidator(source, work, index, args.jobs, items, show=index == 0)
            if outcome is None:
                print("execute failed: no ratios")
                return 1
            r.copy_steps, r.execute, r.others["execute"] = outcome
            rounds.append(r)

        def med(values: list[float]) -> float:
            return statistics.median(values)

        baseline = med([r.baseline for r in rounds])
        copy_steps = med([r.copy_steps for r in rounds])
        whole = med([r.execute for r in rounds])
        copydb = [r.pgcopydb for r in rounds if r.pgcopydb is not None]
        label = "median of " + str(len(rounds)) + " rounds" if len(rounds) > 1 else "1 round"
        print(f"\nresults (scale {args.scale}, {human(size)}, jobs {args.jobs}, {label}; "
              f"machine busy after the run: {busy_cores():.2f} cores):")  # fmt: skip
        print(f"  pg_dump + pg_restore {baseline:.2f} s (pg_dump {med([r.dump for r in rounds]):.2f} s, "
              f"pg_restore {med([r.restore for r in rounds]):.2f} s)")  # fmt: skip
        print("  " + ratio_line("copy steps / (pg_dump+pg_restore)", copy_steps, baseline, 0.7))
        if copydb:
            print("  " + ratio_line("copy steps / pgcopydb clone", copy_steps, med(copydb), 0.85))
        else:
            print("  copy steps / pgcopydb clone: not measured (pgcopydb missing)")
        print("  " + ratio_line("whole execute / (pg_dump+pg_restore)", whole, baseline, 1.0))
        contention = {k: med([r.others.get(k, 0.0) for r in rounds]) for k in rounds[0].others}
        print("  CPU s not ours (other processes, kernel) during each measurement, a sign of contention: "
              + ", ".join(f"{k} {v:.1f}" for k, v in contention.items()))  # fmt: skip
        if args.keep:
            print(f"\n--keep: left behind: {source.root}, {work}")
            items.clear()
    return 0


if __name__ == "__main__":
    run_main(main)
