"""The ``local`` provider: one PostgreSQL instance per app on this machine (initdb/pg_ctl).

Instances live under the plan's local root (``<root>/<cluster>/``), listen on their own loopback
port, use the binaries of the plan's target major, and are initialised with the source database's
encoding and locale. Admin credentials are generated and kept in a 0600 pgpass file inside the
instance directory, never in the plan.
"""

from __future__ import annotations

from pathlib import Path

from consolidator.engine.provider import Provider, TargetHandle
from consolidator.errors import PreconditionError
from consolidator.pg.instance import LocalInstance, wait_ready
from consolidator.plan.model import App, Plan

# Parameters the local instance needs whatever the sizing says: loopback only, and enough WAL
# senders/slots for logical and physical strategies.
LOCAL_SETTINGS = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
}


def _quote(value: str) -> str:
    """postgresql.conf values: numbers and units bare, everything else single-quoted."""
    if value.replace(".", "", 1).replace("-", "", 1).isdigit():
        return value
    return "'" + value.replace("'", "''") + "'"


class LocalProvider(Provider):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, app: App) -> Path:
        return self.root / app.cluster_name

    def _settings(self, app: App) -> dict[str, str]:
        params = {k: str(v.value) for k, v in app.sizing.parameters.items()}
        params["max_connections"] = str(max(int(app.sizing.max_connections.value), 50))
        params.update(LOCAL_SETTINGS)
        return {k: _quote(v) for k, v in params.items()}

    def _handle(self, inst: LocalInstance, app: App) -> TargetHandle:
        return TargetHandle(
            cluster=app.cluster_name,
            conninfo=inst.conninfo(),
            passfile=str(inst.passfile),
            major=inst.binaries.major,
            superuser=inst.superuser,
            app_conninfo=f"host=127.0.0.1 port={inst.port}",
        )

    def provision(self, plan: Plan, app: App) -> TargetHandle:
        existing = self.describe(plan, app)
        if existing is not None:
            return self.wait_ready(plan, app)
        first = app.databases[0]
        self.root.mkdir(parents=True, exist_ok=True)
        locale = first.collate if first.collate == first.ctype else "C"
        inst = LocalInstance.create(
            self._dir(app), major=plan.target.version, encoding=first.encoding, locale=locale or "C",
            icu_locale=first.icu_locale if first.locale_provider == "icu" else None,
            settings=self._settings(app),
        )  # fmt: skip
        inst.start()
        return self._handle(inst, app)

    def describe(self, plan: Plan, app: App) -> TargetHandle | None:
        directory = self._dir(app)
        if not (directory / "instance.json").exists():
            return None
        return self._handle(LocalInstance.open(directory), app)

    def wait_ready(self, plan: Plan, app: App, timeout: float = 120) -> TargetHandle:
        directory = self._dir(app)
        if not (directory / "instance.json").exists():
            raise PreconditionError(f"local target {app.cluster_name} does not exist", hint="run execute first")
        inst = LocalInstance.open(directory)
        if not inst.is_running():
            inst.start(timeout=timeout)
        wait_ready(inst, timeout)
        return self._handle(inst, app)

    def promote(self, plan: Plan, app: App) -> None:
        inst = LocalInstance.open(self._dir(app))
        inst.promote()

    def teardown(self, plan: Plan, app: App) -> bool:
        directory = self._dir(app)
        if not directory.exists():
            return False
        if (directory / "instance.json").exists():
            LocalInstance.open(directory).destroy()
        else:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
        return True
