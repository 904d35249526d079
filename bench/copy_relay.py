"""Profile of the dump strategy's copy step: how fast can one big table move, and what does the relay cost?

The copy step streams ``COPY … TO STDOUT`` from the source into ``COPY … FROM STDIN`` on the target
through this Python process. This bench moves pgbench_accounts (the only big table of a pgbench
database) several ways, each into the same emptied target table, and prints wall clock and CPU per
party (this process, client tools, both servers):

- floors: the source alone (server-side ``COPY TO '/dev/null'``) and psycopg reading alone;
- the engine's TableCopier as ``execute`` runs it (CTID ranges when the table is large, ``--jobs``),
  and on the whole table (one transaction, ``COPY FREEZE``);
- the same bytes relayed in larger writes (1 MiB), whole table with FREEZE;
- a relay written in C: ``psql -c 'COPY … TO STDOUT' | psql -c 'COPY … FROM STDIN'`` with FREEZE.

Not part of ``make bench``: it explains the copy step's figures of dump_vs_pgdump.py.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from collections.abc import Callable

from benchlib import (
    CpuSample,
    cleanup,
    create_app_role,
    create_database,
    human,
    load_pgbench,
    machine_notes,
    make_plan,
    run,
    run_main,
    scratch_dir,
    start_instance,
    target_settings,
    wait_idle,
)
from psycopg import sql

from consolidator.engine.copy import CopyTask, TableCopier, plan_tasks
from consolidator.pg.connect import connect
from consolidator.pg.instance import LocalInstance

DBNAME = "bench"
OWNER = "bench_app"
TABLE = ("public", "pgbench_accounts")


def source_copy(task: CopyTask, fmt: str = "binary") -> sql.Composable:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in task.columns)
    return sql.SQL("COPY {} ({}) TO STDOUT (FORMAT {})").format(sql.Identifier(*TABLE), cols, sql.SQL(fmt))


def target_copy(task: CopyTask, fmt: str = "binary") -> sql.Composable:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in task.columns)
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {}, FREEZE)").format(sql.Identifier(*TABLE), cols,
                                                                          sql.SQL(fmt))  # fmt: skip


class Bench:
    def __init__(self, source: LocalInstance, target: LocalInstance, jobs: int) -> None:
        self.source, self.target, self.jobs = source, target, jobs
        with connect(source.conninfo(DBNAME)) as conn:
            self.split = [t for t in plan_tasks(conn) if (t.schema, t.name) == TABLE]
            self.whole = [t for t in plan_tasks(conn, ctid_ranges=False) if (t.schema, t.name) == TABLE]
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*TABLE))).fetchone()
            self.expected = int(row[0]) if row else 0

    def reset(self) -> None:
        with connect(self.target.conninfo(DBNAME)) as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(*TABLE)))
            conn.execute("CHECKPOINT")

    def rows(self) -> int:
        with connect(self.target.conninfo(DBNAME)) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*TABLE))).fetchone()
        return int(row[0]) if row else 0

    def source_floor(self) -> None:
        with connect(self.source.conninfo(DBNAME)) as conn:
            conn.execute(sql.SQL("COPY {} TO '/dev/null' (FORMAT binary)").format(sql.Identifier(*TABLE)))

    def read_only(self) -> None:
        with connect(self.source.conninfo(DBNAME)) as conn, conn.cursor().copy(source_copy(self.whole[0])) as reader:
            for _ in reader:
                pass

    def engine(self, tasks: list[CopyTask], jobs: int) -> None:
        copier = TableCopier(self.source.conninfo(), self.target.conninfo(), DBNAME, DBNAME, snapshot=None,
                             jobs=jobs)  # fmt: skip
        try:
            if len(tasks) > 1:
                copier.truncate(tasks[0])
            copier.run(tasks, done=lambda _t, _r: None)
        finally:
            copier.close()

    def batched(self, batch: int = 1 << 20) -> None:
        task = self.whole[0]
        with connect(self.source.conninfo(DBNAME)) as src, connect(self.target.conninfo(DBNAME)) as dst:
            dst.execute("SET synchronous_commit = off")
            with dst.transaction(), dst.cursor() as cur:
                cur.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(*TABLE)))
                with src.cursor().copy(source_copy(task)) as reader, cur.copy(target_copy(task)) as writer:
                    buf = bytearray()
                    for chunk in reader:
                        buf += chunk
                        if len(buf) >= batch:
                            writer.write(buf)
                            buf = bytearray()
                    if buf:
                        writer.write(buf)

    def psql_pipe(self) -> None:
        task, psql = self.whole[0], self.source.binaries.tool("psql")
        with connect(self.source.conninfo(DBNAME)) as conn:
            out_sql, in_sql = source_copy(task).as_string(conn), target_copy(task).as_string(conn)
            truncate = sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(*TABLE)).as_string(conn)
        reader = subprocess.Popen([psql, "-X", "-q", "-d", self.source.conninfo(DBNAME), "-c", out_sql],
                                  stdout=subprocess.PIPE)  # fmt: skip
        writer = subprocess.Popen([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.target.conninfo(DBNAME),
                                   "-c", "BEGIN", "-c", truncate, "-c", in_sql, "-c", "COMMIT"],
                                  stdin=reader.stdout, stdout=subprocess.DEVNULL)  # fmt: skip
        assert reader.stdout is not None
        reader.stdout.close()
        if writer.wait() != 0 or reader.wait() != 0:
            raise RuntimeError("psql relay failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: 7 M rows, ~900 MB table)")
    parser.add_argument("--jobs", type=int, default=2, help="TableCopier jobs, as execute --jobs")
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant; the minimum is reported")
    parser.add_argument("--wait-idle", type=float, default=60, metavar="SECONDS",
                        help="before each run, wait up to this long for other work on the machine to stop")
    args = parser.parse_args()

    print(f"machine: {machine_notes()}")
    with cleanup() as items:
        source = start_instance({"max_connections": "100"})
        items.append(source)
        load_pgbench(source, DBNAME, args.scale, owner=OWNER)
        work = scratch_dir("consolidator-bench-")
        items.append(work)
        plan = make_plan(source.conninfo(), work / "plan", work / "targets")
        target = start_instance(target_settings(plan, plan.apps[0].name))
        items.append(target)
        create_app_role(target, OWNER)
        create_database(target, DBNAME, owner=OWNER)
        tools = source.binaries
        run([tools.tool("pg_dump"), "-Fc", "--schema-only", "-f", str(work / "schema"), "-d",
             source.conninfo(DBNAME)], what="pg_dump")  # fmt: skip
        run([tools.tool("pg_restore"), "--section", "pre-data", "--exit-on-error", "-d", target.conninfo(DBNAME),
             str(work / "schema")], what="pg_restore")  # fmt: skip
        bench = Bench(source, target, args.jobs)
        size = bench.whole[0].bytes
        print(f"{TABLE[0]}.{TABLE[1]}: {bench.expected} rows, {human(size)}; execute would copy it "
              f"in {len(bench.split)} CTID range(s) with {args.jobs} jobs")  # fmt: skip

        variants: list[tuple[str, Callable[[], None], bool]] = [
            ("source alone: COPY TO '/dev/null' on the server", bench.source_floor, False),
            ("psycopg reading alone (no target)", bench.read_only, False),
            (f"engine TableCopier as execute runs it ({len(bench.split)} part(s), jobs {args.jobs})",
             lambda: bench.engine(bench.split, args.jobs), True),
            ("engine TableCopier, whole table (FREEZE), jobs 1", lambda: bench.engine(bench.whole, 1), True),
            ("Python relay with 1 MiB writes, whole table (FREEZE)", bench.batched, True),
            ("C relay: psql | psql, whole table (FREEZE)", bench.psql_pipe, True),
        ]  # fmt: skip
        print(f"\n  {'variant':<62} {'wall s':>7} {'python':>7} {'tools':>6} {'servers':>8} {'others':>7}  "
              "(CPU s; minimum wall of the runs)")  # fmt: skip
        for label, fn, loads in variants:
            best: CpuSample | None = None
            walls = []
            for _ in range(args.repeat):
                bench.reset()
                wait_idle(args.wait_idle)
                before = CpuSample.now([source, target])
                fn()
                took = CpuSample.now([source, target]).minus(before)
                walls.append(took.wall)
                if loads and bench.rows() != bench.expected:
                    print(f"  warning: {label}: {bench.rows()} rows on the target")
                if best is None or took.wall < best.wall:
                    best = took
            assert best is not None
            print(f"  {label:<62} {best.wall:7.2f} {best.python:7.2f} {best.children:6.2f} {best.servers:8.2f} "
                  f"{best.others:7.2f}  (median {statistics.median(walls):.2f} s, {human(size / best.wall)}/s)",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main)
