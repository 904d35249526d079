"""The ``local`` provider: one PostgreSQL instance per app on this machine (initdb/pg_ctl).

Instances live under the plan's local root (``<root>/<cluster>/``), listen on their own loopback
port, use the binaries of the plan's target major, and are initialised with the source database's
encoding and locale. Admin credentials are generated and kept in a 0600 pgpass file inside the
instance directory, never in the plan.

A physical target (``provision_standby``) is a pg_basebackup clone of the whole source instead: its
admin login is the source DSN's superuser, whose password (found the way libpq finds it) is written
to the instance's 0600 ``pgpass`` for the tool and to ``primary.pgpass`` (owned by the server OS user)
for the walreceiver, which is removed again at promotion.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from consolidator.engine.provider import Provider, TargetHandle, standby_name
from consolidator.errors import PreconditionError
from consolidator.pg.connect import connect, lookup_passfile, parse_dsn
from consolidator.pg.instance import BUILD_MARKER, LocalInstance, conf_quote, remove_half_built, wait_ready
from consolidator.plan.model import App, Plan

# Parameters the local instance needs whatever the sizing says: loopback only, and enough WAL
# senders/slots for logical and physical strategies.
LOCAL_SETTINGS = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
}


# A standby refuses to start while these are below the primary's: they size shared state the replayed
# WAL may need (locks, prepared transactions, worker slots).
STANDBY_MINIMUMS = ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
                    "max_locks_per_transaction")  # fmt: skip
_SOURCE_SETTINGS = (*STANDBY_MINIMUMS, "shared_preload_libraries")


@dataclass
class SourceFacts:
    """What building a clone needs to know about the live source."""

    major: int
    system_identifier: str
    user: str
    host: str
    port: str
    subscriptions: int
    free_slots: int
    settings: dict[str, str] = field(default_factory=dict)


def read_source(dsn: str) -> SourceFacts:
    with connect(dsn, dbname="postgres") as conn:
        row = conn.execute(
            """SELECT current_setting('server_version_num')::int / 10000,
                      (SELECT system_identifier::text FROM pg_control_system()), current_user,
                      (SELECT count(*) FROM pg_subscription),
                      current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)"""
        ).fetchone()
        settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                     (list(_SOURCE_SETTINGS),)).fetchall())  # fmt: skip
        host, port = conn.info.host, str(conn.info.port)
    if row is None:  # pragma: no cover - a SELECT without FROM returns one row
        raise PreconditionError("the source returned no server facts", hint="check the source DSN")
    return SourceFacts(major=int(row[0]), system_identifier=str(row[1]), user=str(row[2]), host=host, port=port,
                       subscriptions=int(row[3]), free_slots=int(row[4]), settings=settings)  # fmt: skip


def source_password(dsn: str, user: str) -> str | None:
    """The source password as libpq finds it: the DSN, its passfile, PGPASSWORD, then PGPASSFILE/~/.pgpass."""
    params = parse_dsn(dsn)
    if params.get("password"):
        return str(params["password"])
    want = {"host": params.get("host") or os.environ.get("PGHOST") or "localhost",
            "port": params.get("port") or os.environ.get("PGPORT") or "5432", "dbname": "postgres", "user": user}
    if params.get("passfile"):
        found = lookup_passfile(str(params["passfile"]), want)
        if found is not None:
            return found
    if os.environ.get("PGPASSWORD"):
        return os.environ["PGPASSWORD"]
    default = os.environ.get("PGPASSFILE") or str(Path.home() / ".pgpass")
    return lookup_passfile(default, want)


def replication_conninfo(dsn: str, facts: SourceFacts, app: App) -> str:
    """How the standby reaches the source: the DSN without secrets; the passfile is added by the instance."""
    params = {k: v for k, v in parse_dsn(dsn).items()
              if k not in ("password", "passfile", "dbname", "replication", "service")}  # fmt: skip
    params.setdefault("host", facts.host)
    params.setdefault("port", facts.port)
    params.update(user=facts.user, application_name=standby_name(app))
    return make_conninfo(**params)


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
        # one apply worker per database plus table-sync workers (CNPG keeps 32 worker processes)
        params["max_logical_replication_workers"] = str(max(4, len(app.databases) + 2))
        params["max_worker_processes"] = str(max(16, len(app.databases) + 8))
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
        if self._dir(app).exists():  # a crash during initdb left a half-built directory: start over
            remove_half_built(self._dir(app))
        locale = first.collate if first.collate == first.ctype else "C"
        inst = LocalInstance.create(
            self._dir(app), major=plan.target.version, encoding=first.encoding, locale=locale or "C",
            icu_locale=first.icu_locale if first.locale_provider == "icu" else None,
            settings=self._settings(app),
        )  # fmt: skip
        inst.start()
        return self._handle(inst, app)

    def _standby_settings(self, app: App, facts: SourceFacts) -> dict[str, str]:
        """The app's sizing, raised where a standby needs at least the primary's value."""
        params = self._settings(app)
        for name in STANDBY_MINIMUMS:
            if name not in facts.settings:
                continue
            try:
                mine = int(params.get(name, "0").strip("'"))
            except ValueError:
                mine = 0
            params[name] = str(max(mine, int(facts.settings[name])))
        preload = facts.settings.get("shared_preload_libraries")
        if preload and "shared_preload_libraries" not in params:
            params["shared_preload_libraries"] = conf_quote(preload)
        if facts.subscriptions:
            # the clone carries the source's subscriptions: after promotion their workers would consume
            # the legacy subscribers' slots. No apply worker runs until drop_foreign has detached them.
            params["max_logical_replication_workers"] = "0"
        return params

    def provision_standby(
        self, plan: Plan, app: App, source_dsn: str, *, progress: Callable[[int, int], None] | None = None
    ) -> TargetHandle:
        facts = read_source(source_dsn)
        directory = self._dir(app)
        if (directory / "instance.json").exists():
            return self._reuse_standby(plan, app, facts)
        if facts.major != plan.target.version:
            raise PreconditionError(
                f"app {app.name}: the source runs PostgreSQL {facts.major}, the plan's target is "
                f"{plan.target.version}; a physical standby needs the same major",
                hint=f"plan again with dump or logical for this app, or --target-version {facts.major}",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        inst = LocalInstance.create_standby(
            directory, major=facts.major, source_conninfo=replication_conninfo(source_dsn, facts, app),
            user=facts.user, password=source_password(source_dsn, facts.user),
            settings=self._standby_settings(app, facts), temp_slot=facts.free_slots > 0, progress=progress,
            origin={"system_identifier": facts.system_identifier, "host": facts.host, "port": facts.port},
        )  # fmt: skip
        inst.start()
        wait_ready(inst, 60)
        inst.wait_streaming()
        return self._handle(inst, app)

    def _reuse_standby(self, plan: Plan, app: App, facts: SourceFacts) -> TargetHandle:
        directory = self._dir(app)
        inst = LocalInstance.open(directory)
        if (inst.standby_of or {}).get("system_identifier") != facts.system_identifier:
            raise PreconditionError(
                f"local target {app.cluster_name} in {directory} exists but is not a clone of this source",
                hint="remove it (consolidator teardown PLANDIR --app APP) or choose another --local-root",
            )
        (directory / BUILD_MARKER).unlink(missing_ok=True)
        handle = self.wait_ready(plan, app)
        inst.wait_streaming()
        return handle

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
        if not inst.is_running():
            inst.start()
        inst.promote()
        inst.forget_primary()

    def source_access(self, plan: Plan, app: App, *, host: str, port: str, user: str,
                      password: str | None) -> dict[str, str]:  # fmt: skip
        """Same address as this machine; the password in a 0600 passfile the server's OS user owns,
        inside the instance directory (removed by finalize)."""
        from consolidator.engine.replication import write_source_passfile

        if not password:
            return {}
        return {"passfile": str(write_source_passfile(self._dir(app), host, port, user, password))}

    def cores(self, plan: Plan, app: App) -> int:
        return os.cpu_count() or 1  # local targets share this machine, source included

    def diagnose(self, plan: Plan, app: App) -> str:
        directory = self._dir(app)
        if not (directory / "instance.json").exists():
            return ""
        inst = LocalInstance.open(directory)
        parts = [] if inst.is_running() else ["the server is not running"]
        return "; ".join(parts + inst.log_problems())

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
