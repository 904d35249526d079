"""Benchmark: verification of one database vs ``count(*)`` over every table on both sides (target ≤ 3×).

Setup (untimed): a pgbench source, restored into a fresh target with pg_dump -Fd / pg_restore, then
ANALYZE on the target as the engine's analyze step does. Measured, interleaved ``--repeat`` times
(median reported):

- baseline: ``SELECT count(*) FROM ONLY t`` for every table, tables one after another on one session
  per side, source and target sides running at the same time (wall clock until both sides finish);
- ``verify_database(...)``: catalogs, globals and per-table fingerprints, ``--jobs`` scans per side;
- for reference, a row-as-text hash (count + ``sum(hashtextextended(t::text, 0))``) measured like the
  baseline: the floor of any verification that renders every row as text, which per-column hashes avoid.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from benchlib import (
    cleanup,
    create_app_role,
    create_database,
    database_bytes,
    human,
    load_pgbench,
    machine_notes,
    ratio_line,
    run,
    run_main,
    scratch_dir,
    start_instance,
    user_tables,
    wait_idle,
)
from psycopg import sql

from consolidator.pg.connect import connect
from consolidator.pg.instance import LocalInstance
from consolidator.verify.run import verify_database

DBNAME = "bench"
OWNER = "bench_app"
SETTINGS = {"max_connections": "100"}

COUNT = "SELECT count(*) FROM ONLY {}"
HASH = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM ONLY {} AS t"


def per_table(conninfo: str, tables: list[tuple[str, str]], template: str) -> float:
    """Run ``template`` for every table in turn on one session; seconds."""
    started = time.perf_counter()
    with connect(conninfo) as conn:
        for schema, name in tables:
            conn.execute(sql.SQL(template).format(sql.Identifier(schema, name))).fetchall()  # type: ignore[arg-type]
    return time.perf_counter() - started


def both_sides(source: str, target: str, tables: list[tuple[str, str]], template: str) -> tuple[float, float, float]:
    """Both sides at once, sequential per side: (wall, source seconds, target seconds)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        src = pool.submit(per_table, source, tables, template)
        tgt = pool.submit(per_table, target, tables, template)
        src_s, tgt_s = src.result(), tgt.result()
    return time.perf_counter() - started, src_s, tgt_s


def restore_target(source: LocalInstance, target: LocalInstance, jobs: int, work: str) -> None:
    tools = source.binaries
    dump = f"{work}/dump"
    run([tools.tool("pg_dump"), "-Fd", "-j", str(jobs), "-f", dump, "-d", source.conninfo(DBNAME)], what="pg_dump")
    run([tools.tool("pg_restore"), "-j", str(jobs), "--exit-on-error", "-d", target.conninfo(DBNAME), dump],
        what="pg_restore")  # fmt: skip
    run([tools.tool("vacuumdb"), "--analyze-only", "-d", target.conninfo(DBNAME)], what="vacuumdb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale (20 ≈ 300 MB)")
    parser.add_argument("--jobs", type=int, default=2, help="verify_database scans per side (and restore -j)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--keep", action="store_true", help="leave instances and directories behind")
    parser.add_argument("--wait-idle", type=float, default=30, metavar="SECONDS",
                        help="before each round, wait up to this long for other work on the machine to stop")
    args = parser.parse_args()

    print(f"machine: {machine_notes()}")
    with cleanup() as items:
        source = start_instance(SETTINGS)
        items.append(source)
        target = start_instance(SETTINGS)
        items.append(target)
        work = scratch_dir("consolidator-bench-")
        items.append(work)
        loaded = load_pgbench(source, DBNAME, args.scale, owner=OWNER)
        create_app_role(target, OWNER)
        create_database(target, DBNAME, owner=OWNER)
        restore_target(source, target, args.jobs, str(work))
        size = database_bytes(source.conninfo(), DBNAME)
        src_info, tgt_info = source.conninfo(DBNAME), target.conninfo(DBNAME)
        tables = user_tables(src_info)
        print(f"PostgreSQL {source.binaries.version}, pgbench -i -s {args.scale} --foreign-keys ({loaded:.1f} s), "
              f"database {human(size)}, {len(tables)} tables; target restored with pg_dump/pg_restore")  # fmt: skip

        samples: dict[str, list[float]] = {"count": [], "verify": [], "hash": []}
        sides: dict[str, list[tuple[float, float]]] = {"count": [], "hash": []}

        def verify() -> float:
            started = time.perf_counter()
            report = verify_database(source.conninfo(), target.conninfo(), source_db=DBNAME, target_db=DBNAME,
                                     roles=[OWNER], jobs=args.jobs)  # fmt: skip
            if not report.ok:
                raise SystemExit(f"verification reports differences: {report.summary()}")
            return time.perf_counter() - started

        def record(kind: str, result: tuple[float, float, float]) -> float:
            sides[kind].append(result[1:])
            return result[0]

        rounds: list[tuple[str, Callable[[], float]]] = [
            ("count", lambda: record("count", both_sides(src_info, tgt_info, tables, COUNT))),
            ("verify", verify),
            ("hash", lambda: record("hash", both_sides(src_info, tgt_info, tables, HASH))),
        ]

        for i in range(args.repeat):
            note = wait_idle(args.wait_idle)
            for kind, fn in rounds:
                samples[kind].append(fn())
            print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in samples.items()) + f" ({note})",
                  flush=True)  # fmt: skip

        med = {k: statistics.median(v) for k, v in samples.items()}
        side = {k: tuple(statistics.median(s[j] for s in v) for j in (0, 1)) for k, v in sides.items()}
        print(f"\nresults (scale {args.scale}, {human(size)}, verify jobs {args.jobs}, median of {args.repeat}):")
        print(f"  count(*) of every table, sequential per side, sides concurrent: {med['count']:.2f} s "
              f"(source {side['count'][0]:.2f} s, target {side['count'][1]:.2f} s)")  # fmt: skip
        print(f"  row-as-text hash query, same shape: {med['hash']:.2f} s (source {side['hash'][0]:.2f} s, "
              f"target {side['hash'][1]:.2f} s) = {med['hash'] / med['count']:.1f}× count(*)")  # fmt: skip
        print(f"  verify_database: {med['verify']:.2f} s = {med['verify'] / med['hash']:.2f}× the row-as-text hash")
        print("  " + ratio_line("verify / count(*)", med["verify"], med["count"], 3.0))
        if args.keep:
            print(f"\n--keep: left behind: {source.root}, {target.root}, {work}")
            items.clear()
    return 0


if __name__ == "__main__":
    run_main(main)
