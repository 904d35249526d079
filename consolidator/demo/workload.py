"""A light, steady application workload so the sampling window measures something real."""

from __future__ import annotations

import threading
import time

import psycopg

from consolidator.pg.connect import connect


class Workload:
    """Writers and readers in threads, paced to ``tps`` transactions per second each, until stopped."""

    def __init__(self, conninfos: dict[str, str], tps: float = 20.0,
                 idle_connections: dict[str, int] | None = None) -> None:  # fmt: skip
        self.conninfos = conninfos
        self.tps = tps
        self.idle_connections = idle_connections or {}
        self._idle: list[psycopg.Connection[object]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.committed = 0
        self.errors: list[str] = []

    def start(self) -> None:
        for name, count in self.idle_connections.items():
            for _ in range(count):
                self._idle.append(connect(self.conninfos[name], application_name=f"demo-{name}-idle"))
        for name, conninfo in self.conninfos.items():
            thread = threading.Thread(target=self._run, args=(name, conninfo), daemon=True, name=f"workload-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def _run(self, name: str, conninfo: str) -> None:
        statements = {
            "mastodon_production": (
                "INSERT INTO statuses (account_id, text) VALUES (1 + (random() * 1999)::int, 'live ' || now())"
            ),
            "keycloak": "SELECT count(*) FROM user_entity WHERE realm_id = 'acme' AND enabled",
            "nextcloud": "UPDATE oc_filecache SET mtime = mtime + 1 WHERE fileid = 1 + (random() * 19999)::int",
        }
        stmt = statements.get(name, "SELECT 1")
        try:
            with connect(conninfo, application_name=f"demo-{name}") as conn:
                interval = 1.0 / self.tps
                while not self._stop.is_set():
                    started = time.monotonic()
                    conn.execute(stmt)
                    self.committed += 1
                    self._stop.wait(max(0.0, interval - (time.monotonic() - started)))
        except psycopg.Error as exc:
            self.errors.append(f"{name}: {str(exc).strip().splitlines()[0]}")
