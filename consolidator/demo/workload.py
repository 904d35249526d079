"""A steady application workload: the demo's apps keep writing while they are migrated.

Each app is a thread paced to ``tps`` statements per second. When its connection breaks (the
fence ends it) it keeps retrying where ``locate(app)`` points, which the demo's switch hook
changes at cutover, so the measured outage is what a real app would see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from consolidator.errors import ConsolidatorError
from consolidator.pg.connect import connect

STATEMENTS = {
    "mastodon_production": (
        "INSERT INTO statuses (account_id, text) VALUES (1 + (random() * 1999)::int, 'live ' || now())"
    ),
    "keycloak": "SELECT count(*) FROM user_entity WHERE realm_id = 'acme' AND enabled",
    "nextcloud": "UPDATE oc_filecache SET mtime = mtime + 1 WHERE fileid = 1 + (random() * 19999)::int",
}
RETRY_SECONDS = 0.05


@dataclass
class AppStats:
    committed: int = 0
    failures: int = 0
    longest_outage_s: float = 0.0
    last_error: str | None = None


class Workload:
    """Writers and readers in threads, until stopped; idle connections on the side."""

    def __init__(self, conninfos: dict[str, str], tps: float = 20.0, idle_connections: dict[str, int] | None = None,
                 locate: Callable[[str], str | None] | None = None) -> None:  # fmt: skip
        self.conninfos = conninfos
        self.tps = tps
        self.idle_connections = idle_connections or {}
        self.locate = locate
        self._idle: list[psycopg.Connection[object]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stats = {name: AppStats() for name in conninfos}

    @property
    def committed(self) -> int:
        return sum(s.committed for s in self.stats.values())

    def start(self) -> None:
        for name, count in self.idle_connections.items():
            for _ in range(count):
                self._idle.append(connect(self.conninfos[name], application_name=f"demo-{name}-idle"))
        for name in self.conninfos:
            thread = threading.Thread(target=self._run, args=(name,), daemon=True, name=f"workload-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for conn in self._idle:
            try:
                conn.close()
            except psycopg.Error:
                pass
        self._idle.clear()

    def _where(self, name: str) -> str:
        located = self.locate(name) if self.locate else None
        return located or self.conninfos[name]

    def _run(self, name: str) -> None:
        stats, stmt, interval = self.stats[name], STATEMENTS.get(name, "SELECT 1"), 1.0 / self.tps
        conn: psycopg.Connection[object] | None = None
        last_ok: float | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = connect(self._where(name), application_name=f"demo-{name}", connect_timeout=2)
                conn.execute(stmt)
            except (psycopg.Error, ConsolidatorError) as exc:
                stats.failures += 1
                stats.last_error = str(getattr(exc, "message", exc)).strip().splitlines()[0] if str(exc) else "error"
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                self._stop.wait(RETRY_SECONDS)
                continue
            now = time.monotonic()
            if last_ok is not None:
                stats.longest_outage_s = max(stats.longest_outage_s, now - last_ok - interval)
            last_ok = now
            stats.committed += 1
            self._stop.wait(max(0.0, interval - (now - started)))
        if conn is not None:
            conn.close()
