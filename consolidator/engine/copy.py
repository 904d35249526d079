"""Parallel streaming COPY from source to target: no intermediate files.

Every source worker reads inside one exported snapshot, so all tables come from one point in
time; tables go largest first; a large table is split into CTID ranges (cheap on PostgreSQL 14+
with TID range scans) copied by several workers. Bytes are relayed untouched in binary format.
A table is loaded as ``TRUNCATE; COPY … FREEZE`` in one target transaction, so an interrupted
copy leaves nothing half-done: the table is simply copied again.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from consolidator.errors import ConsolidatorError, Interrupted, StepFailed
from consolidator.events import EventSink, emit
from consolidator.pg.binaries import find_client
from consolidator.pg.connect import connect, redact, with_database
from consolidator.pg.diagnostics import explain

SPLIT_BYTES = 256 * 1024 * 1024  # tables above this are split into CTID ranges…
MAX_PARTS = 8  # …into at most this many parts
PROGRESS_INTERVAL = 0.5
BATCH_BYTES = 1 << 20

TABLES = """
SELECT n.nspname, c.relname, c.relpages::bigint,
       pg_relation_size(c.oid) + coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       greatest(c.reltuples, 0)::bigint,
       ARRAY(SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
 ORDER BY 4 DESC, 1, 2
"""


@dataclass(frozen=True)
class CopyTask:
    schema: str
    name: str
    columns: tuple[str, ...]
    bytes: int
    rows_estimate: int
    part: int = 0
    parts: int = 1
    first_page: int | None = None
    last_page: int | None = None  # exclusive

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def split_limit(jobs: int, cores: int) -> int:
    """How many parts a large table may be split into. A part only helps when its source and target
    backends each get a core: beyond ``cores // 2`` parts they compete, and every split part loses
    COPY FREEZE (a whole table is truncated and loaded in one transaction, so its rows arrive frozen
    and the index builds and ANALYZE after the copy run faster)."""
    return max(1, min(MAX_PARTS, jobs, cores // 2))


def plan_tasks(conn: Any, *, split_bytes: int = SPLIT_BYTES, ctid_ranges: bool = True,
               max_parts: int = MAX_PARTS) -> list[CopyTask]:  # fmt: skip
    """One task per table, or up to ``max_parts`` CTID ranges for large tables (largest first)."""
    tasks: list[CopyTask] = []
    for schema, name, pages, size, rows, columns in conn.execute(TABLES):
        parts = min(max_parts, math.ceil(size / split_bytes)) if ctid_ranges and size > split_bytes else 1
        if parts <= 1 or pages < parts:
            tasks.append(CopyTask(schema, name, tuple(columns), int(size), int(rows)))
            continue
        step = math.ceil((pages + 1) / parts)
        for part in range(parts):
            last = None if part == parts - 1 else (part + 1) * step  # the last range is open-ended
            tasks.append(CopyTask(schema, name, tuple(columns), int(size) // parts, int(rows) // parts, part,
                                  parts, part * step, last))  # fmt: skip
    tasks.sort(key=lambda t: (-t.bytes, t.schema, t.name, t.part))
    return tasks


def _source_query(task: CopyTask, fmt: str) -> sql.Composable:
    table = sql.Identifier(task.schema, task.name)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in task.columns)
    options = sql.SQL("(FORMAT {})").format(sql.SQL(fmt))
    if task.parts == 1:
        return sql.SQL("COPY {} ({}) TO STDOUT {}").format(table, cols, options)
    where = [sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({task.first_page},0)"))]
    if task.last_page is not None:
        where.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({task.last_page},0)")))
    return sql.SQL("COPY (SELECT {} FROM ONLY {} WHERE {}) TO STDOUT {}").format(
        cols, table, sql.SQL(" AND ").join(where), options
    )


def _target_query(task: CopyTask, fmt: str, freeze: bool) -> sql.Composable:
    table = sql.Identifier(task.schema, task.name)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in task.columns)
    opts = f"FORMAT {fmt}, FREEZE" if freeze else f"FORMAT {fmt}"
    return sql.SQL("COPY {} ({}) FROM STDIN ({})").format(table, cols, sql.SQL(opts))


def _batched(reader: Any) -> Iterator[bytes]:
    """Join psycopg's per-row COPY chunks into ~1 MiB blocks."""
    with reader:
        batch = bytearray()
        for chunk in reader:
            batch += chunk
            if len(batch) >= BATCH_BYTES:
                yield bytes(batch)
                batch = bytearray()
        if batch:
            yield bytes(batch)


def psql_stream(psql: str, conninfo: str, statements: list[str], what: str) -> Iterator[bytes]:
    """Run ``statements`` in one psql session and yield its stdout (the COPY data) in large blocks.

    Credentials stay in the conninfo's passfile (PGPASSWORD is dropped so it cannot override it);
    the statements hold identifiers and a snapshot id, never a secret.
    """
    argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
    for stmt in statements:
        argv += ["-c", stmt]
    env = {**os.environ, "LC_ALL": "C", "PGAPPNAME": "consolidator-copy"}
    if "passfile=" in conninfo:
        env.pop("PGPASSWORD", None)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while block := proc.stdout.read(BATCH_BYTES):
            yield block
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
            raise StepFailed(f"reading {what} from the source failed: {redact(last)}",
                             hint="fix the cause, then execute --resume")  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@dataclass
class CopyResult:
    rows: int
    bytes: int
    seconds: float


class TableCopier:
    """Runs copy tasks of one database with ``jobs`` source/target connection pairs."""

    def __init__(
        self, source_dsn: str, target_dsn: str, source_db: str, target_db: str, *, snapshot: str | None,
        jobs: int = 4, fmt: str = "binary", sink: EventSink | None = None, step_id: str = "copy",
        relay: str = "psql", cancel: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self.source_dsn, self.target_dsn = source_dsn, target_dsn
        self.source_db, self.target_db = source_db, target_db
        self.snapshot = snapshot
        self.jobs = max(1, jobs)
        self.fmt = fmt
        self.sink = sink
        self.step_id = step_id
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()  # set by the first failure: the other workers stop too
        self.cancel = cancel  # the run's: read only, the workers stop at the next block
        self._psql_path: str | None = None if relay == "psql" else ""

    def _keep(self, conn: Any) -> Any:
        with self._lock:
            self._conns.append(conn)
        return conn

    def _target(self) -> Any:
        """This worker's target session, tuned for bulk loading."""
        dst = getattr(self._local, "dst", None)
        if dst is None:
            dst = self._keep(connect(self.target_dsn, dbname=self.target_db, autocommit=True,
                                     application_name="consolidator-copy"))  # fmt: skip
            for stmt in ("SET synchronous_commit = off", "SET statement_timeout = 0", "SET lock_timeout = 0",
                         "SET session_replication_role = replica"):  # fmt: skip
                dst.execute(stmt)
            self._local.dst = dst
        return dst

    def _source(self) -> Any:
        """This worker's source session inside the shared snapshot (only for the psycopg relay)."""
        src = getattr(self._local, "src", None)
        if src is None:
            src = self._keep(connect(self.source_dsn, dbname=self.source_db, autocommit=False,
                                     application_name="consolidator-copy"))  # fmt: skip
            src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if self.snapshot:
                src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)))
            self._local.src = src
        return src

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
            self._conns.clear()

    def truncate(self, task: CopyTask) -> None:
        with connect(self.target_dsn, dbname=self.target_db) as conn:
            conn.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(task.schema, task.name)))

    def copy(self, task: CopyTask, on_progress: Callable[[int, int], None] | None = None) -> CopyResult:
        """Copy one task; whole tables are truncated and loaded in one transaction (FREEZE)."""
        dst = self._target()
        started = time.monotonic()
        moved = 0
        last = started
        whole = task.parts == 1
        with dst.transaction():
            if whole:
                dst.execute(sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(task.schema, task.name)))
            with dst.cursor() as dcur:
                with dcur.copy(_target_query(task, self.fmt, freeze=whole)) as writer:
                    for block in self._blocks(dst, task):
                        writer.write(block)
                        moved += len(block)
                        if self.cancel is not None and self.cancel.is_set():
                            raise Interrupted(f"copy of {task.qualified} stopped on request",
                                              hint="execute --resume continues (the table is copied again)")
                        if self.stop.is_set():
                            raise StepFailed(f"copy of {task.qualified} interrupted", hint="execute --resume")
                        now = time.monotonic()
                        if on_progress and now - last >= PROGRESS_INTERVAL:
                            on_progress(moved, 0)
                            last = now
                rows = max(0, dcur.rowcount)
        return CopyResult(rows=rows, bytes=moved, seconds=time.monotonic() - started)

    def _blocks(self, dst: Any, task: CopyTask) -> Iterator[bytes]:
        """The source table's COPY stream in ~1 MiB blocks.

        psycopg yields one chunk per row in binary COPY, so relaying through it costs Python work per
        row (the copy step's bottleneck in the benchmarks). When ``psql`` is at hand it reads the
        source instead, inside the same exported snapshot, and Python only moves large blocks.
        """
        psql = self._psql()
        if psql is None:
            yield from _batched(self._source().cursor().copy(_source_query(task, self.fmt)))
            return
        statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
        if self.snapshot:
            statements.append(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)).as_string(dst))
        statements += [_source_query(task, self.fmt).as_string(dst), "COMMIT"]
        yield from psql_stream(psql, with_database(self.source_dsn, self.source_db), statements, task.qualified)

    def _psql(self) -> str | None:
        if self._psql_path is None:
            try:
                self._psql_path = find_client(None).tool("psql")
            except ConsolidatorError:
                self._psql_path = ""
        return self._psql_path or None

    def run(self, tasks: list[CopyTask], *, done: Callable[[CopyTask, CopyResult], None],
            progress: Callable[[CopyTask, int], None] | None = None) -> None:  # fmt: skip
        """Run all tasks; the first failure stops the others and is raised."""
        if not tasks:
            return
        emit(self.sink, "step_start", f"copy {len(tasks)} tasks of {self.source_db}", step_id=self.step_id,
             tasks=len(tasks), bytes_total=sum(t.bytes for t in tasks))  # fmt: skip
        try:
            with ThreadPoolExecutor(max_workers=min(self.jobs, len(tasks)), thread_name_prefix="copy") as pool:
                futures = {
                    pool.submit(self.copy, t, (lambda moved, _r, t=t: progress(t, moved)) if progress else None): t
                    for t in tasks
                }
                for fut in as_completed(futures):
                    task = futures[fut]
                    try:
                        result = fut.result()
                    except psycopg.Error as exc:
                        self.stop.set()
                        message, hint = explain(exc)
                        raise StepFailed(f"copy of {task.qualified} from {self.source_db!r} into {self.target_db!r} "
                                         f"failed: {message}", hint=hint) from None  # fmt: skip
                    except BaseException:
                        self.stop.set()
                        raise
                    done(task, result)
        finally:
            self.close()
