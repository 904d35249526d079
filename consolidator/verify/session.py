"""Read-only verification sessions: pinned settings, the row-hash expression, one bounded pool per side.

Both sides render rows to text under the same settings (verification.md §2), otherwise a timestamptz,
float, bytea or money value prints differently and equal data hashes differently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from consolidator.errors import ConnectionFailure, StepFailed
from consolidator.pg.connect import connect, describe, redact

T = TypeVar("T")

# Everything that changes how a value prints as text. statement_timeout: a legacy database often
# carries a short one (ALTER DATABASE … SET) that would cancel a scan of a large table.
PINNED = (
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; "
    "SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'; SET LOCAL search_path = pg_catalog; "
    "SET LOCAL lc_monetary = 'C'; SET LOCAL statement_timeout = 0"
)
PINNED_SESSION = PINNED.replace("SET LOCAL", "SET")


@dataclass(frozen=True)
class HashMethod:
    """How a value becomes a signed 64-bit hash, identically on both sides.

    ``hashextended`` (PG ≥ 11): the table fingerprint hashes each column with its type's own hash
    function where that is exact (:data:`~consolidator.verify.tables.NATIVE_HASH`), other columns
    and the drill-down hash text with ``hashtextextended`` — in the database encoding. When the two
    sides use different encodings those bytes differ, so ``md5`` hashes the UTF-8 conversion of the
    row text instead (and two seeded halves of its digest are summed).
    """

    name: str = "hashextended"

    @property
    def native(self) -> bool:
        return self.name != "md5"

    def digest(self, text: sql.Composable) -> sql.Composable:
        """What is computed once per row; :meth:`part` derives each seeded 64-bit hash from it."""
        if self.native:
            return text
        return sql.SQL("md5(convert_to({}, 'UTF8'))").format(text)

    def part(self, digest: sql.Composable, seed: int) -> sql.Composable:
        if self.native:
            return sql.SQL("hashtextextended({}, {})").format(digest, sql.Literal(seed))
        start = {0: 1, 1: 17}.get(seed, 9)  # two independent halves of one digest, plus a bucket slice
        return sql.SQL("('x' || substr({}, {}, 16))::bit(64)::bigint").format(digest, sql.Literal(start))

    def hash(self, text: sql.Composable, seed: int) -> sql.Composable:
        return self.part(self.digest(text), seed)


def choose_hash(source_encoding: str, target_encoding: str) -> HashMethod:
    return HashMethod("hashextended" if source_encoding == target_encoding else "md5")


def translate(exc: psycopg.Error, what: str, side: Side | str) -> Exception:
    """A failed verification query as one line naming the object and the side, plus the fix."""
    where = side.where if isinstance(side, Side) else side
    text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, psycopg.OperationalError) and not state:
        return ConnectionFailure(f"lost the connection to {where} while verifying {what}: {text}",
                                 hint="check that the server is up and reachable, then rerun verify")
    hints = {
        "42501": "grant SELECT on it to the verifying role (or verify as a superuser)",
        "55000": "REFRESH MATERIALIZED VIEW on the side where it is not populated",
        "57014": "a statement timeout or a cancel stopped the scan; rerun verify",
        "40001": "rerun verify",
    }
    hint = hints.get(state, "see the server log of that side; rerun verify once fixed")
    if "snapshot" in text.lower():
        hint = "the session that exported the source snapshot ended or cannot be joined; rerun verify"
    return StepFailed(f"verify {what} on {where}: {text}", hint=hint)


class Side:
    """One server: up to ``jobs`` sessions, each used by one worker thread at a time.

    Every task runs in its own ``REPEATABLE READ READ ONLY`` transaction with the pinned settings,
    first importing ``snapshot`` when one was exported on this side.
    """

    def __init__(self, label: str, conninfo: str, jobs: int, snapshot: str | None = None) -> None:
        self.label = label
        self.conninfo = conninfo
        self.where = f"{label} {describe(conninfo)}"
        self.snapshot = snapshot
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix=f"verify-{label}")
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Side:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=exc[0] is not None)

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.conninfo, autocommit=True)
            conn.execute("SET idle_in_transaction_session_timeout = 0")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def submit(self, what: str, fn: Callable[[psycopg.Connection[Any]], T]) -> Future[T]:
        """Run ``fn(conn)`` in a pinned read-only transaction on a worker; errors name ``what``."""
        return self._pool.submit(self._run, what, fn)

    def _run(self, what: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._conn()
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                if self.snapshot:
                    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)))
                conn.execute(PINNED)
                return fn(conn)
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise translate(exc, what, self) from None

    def close(self, cancel: bool = False) -> None:
        """Stop; with ``cancel`` (an error or an interrupt) also cancel the scans still running."""
        if cancel:
            with self._lock:
                for conn in self._conns:
                    try:
                        conn.cancel()
                    except psycopg.Error:
                        pass
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
