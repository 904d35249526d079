"""The ``dump`` strategy (offline): fence, schema, parallel COPY, indexes, large objects, sequences.

Faster than pg_dump | pg_restore because table data streams straight from source to target with
several workers sharing one snapshot (no intermediate files), large tables split into ranges when
there are cores for the parts, and indexes are built in parallel afterwards.
"""

from __future__ import annotations

import time
from typing import Any

from consolidator.engine.copy import CopyResult, CopyTask, TableCopier, plan_tasks, split_limit
from consolidator.engine.run import AppRun
from consolidator.engine.schema import dump_schema, restore_section
from consolidator.engine.strategy import Strategy
from consolidator.events import emit
from consolidator.pg.binaries import find_client
from consolidator.pg.connect import connect
from consolidator.pg.tools import run_tool


class Snapshot:
    """An exported snapshot held open by a coordinator session for as long as workers need it."""

    def __init__(self, dsn: str, dbname: str) -> None:
        self.conn = connect(dsn, dbname=dbname, autocommit=False, application_name="consolidator-snapshot")
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = self.conn.execute("SELECT pg_export_snapshot()").fetchone()
        self.id: str = row[0] if row else ""

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def schema_dir(run: AppRun, index: int) -> Any:
    return run.work_dir / f"db{index}.schema"


class DumpStrategy(Strategy):
    name = "dump"

    def step_schema(self, run: AppRun) -> None:
        binaries = find_client(run.target.major)
        retry = run.journal.step(run.app.name, "schema").attempts > 1
        for index, db in enumerate(run.app.databases):
            dump = dump_schema(binaries, run.source_dsn, db.source, schema_dir(run, index))
            restore_section(binaries, dump, run.target.conninfo, db.target, "pre-data", clean=retry)

    def step_copy(self, run: AppRun) -> None:
        for db in run.app.databases:
            self._copy_database(run, db.source, db.target)

    def _copy_database(self, run: AppRun, source_db: str, target_db: str) -> None:
        journal, app = run.journal, run.app.name
        with Snapshot(run.source_dsn, source_db) as snap:
            cores = run.provider.cores(run.plan, run.app)
            tasks = plan_tasks(snap.conn, split_bytes=run.options.split_bytes,
                               max_parts=split_limit(run.options.jobs, cores))  # fmt: skip
            todo = _pending(run, target_db, tasks)
            copier = TableCopier(run.source_dsn, run.target.conninfo, source_db, target_db, snapshot=snap.id,
                                 jobs=run.options.jobs, fmt=run.options.copy_format, sink=run.sink,
                                 step_id=run.step_id("copy"), cancel=run.options.cancel)  # fmt: skip
            for task in {(t.schema, t.name): t for t in todo if t.parts > 1}.values():
                copier.truncate(task)  # split tables restart from empty
            total = sum(t.bytes for t in todo)
            started = time.monotonic()
            moved: dict[tuple[str, str, int], int] = {}

            def progress(task: CopyTask, done_bytes: int) -> None:
                moved[(task.schema, task.name, task.part)] = done_bytes
                sent = sum(moved.values())
                elapsed = time.monotonic() - started
                emit(run.sink, "step_progress", f"copy {app} {task.qualified}", step_id=run.step_id("copy"),
                     table=task.qualified, bytes=sent, bytes_total=total, elapsed_seconds=round(elapsed, 1),
                     rate=round(sent / elapsed) if elapsed > 0 else 0, database=target_db, part=task.part,
                     parts=task.parts, table_bytes=done_bytes, table_bytes_total=task.bytes)  # fmt: skip

            def done(task: CopyTask, result: CopyResult) -> None:
                moved[(task.schema, task.name, task.part)] = result.bytes
                journal.record_copied(app, target_db, task.qualified, part=task.part, parts=task.parts,
                                      rows=result.rows, size=result.bytes, seconds=result.seconds)  # fmt: skip
                emit(run.sink, "step_progress", f"copied {app} {task.qualified}", step_id=run.step_id("copy"),
                     table=task.qualified, rows=result.rows, bytes=result.bytes, seconds=round(result.seconds, 3),
                     bytes_total=total, database=target_db, part=task.part, parts=task.parts)  # fmt: skip

            copier.run(todo, done=done, progress=progress)

    def step_indexes(self, run: AppRun) -> None:
        binaries = find_client(run.target.major)
        for index, db in enumerate(run.app.databases):
            restore_section(binaries, schema_dir(run, index), run.target.conninfo, db.target, "post-data",
                            jobs=run.options.jobs, clean=True)  # fmt: skip
        self.step_matviews(run)

    def step_analyze(self, run: AppRun) -> None:
        binaries = find_client(run.target.major)
        for db in run.app.databases:
            from consolidator.pg.connect import with_database

            run_tool(binaries, "vacuumdb", ["--analyze-only", "-j", str(run.options.jobs), "-d",
                                            with_database(run.target.conninfo, db.target)],
                     what=f"analyzing {db.target!r}")  # fmt: skip


def _pending(run: AppRun, target_db: str, tasks: list[CopyTask]) -> list[CopyTask]:
    """Tasks of tables not fully copied; a partly copied split table is redone entirely."""
    state = run.journal.app(run.app.name)
    out = []
    for task in tasks:
        table = state.tables.get(f"{target_db}/{task.qualified}")
        if table is not None and table.state == "done":
            continue
        if table is not None and table.state != "done" and (table.rows or table.parts_done):
            def reset(s: Any, key: str = f"{target_db}/{task.qualified}") -> None:
                t = s.apps[run.app.name].tables[key]
                t.rows, t.bytes, t.parts_done, t.state = 0, 0, [], "pending"

            run.journal.update(reset)
        out.append(task)
    return out

