"""``consolidator demo``: a throwaway legacy server migrated end to end while its apps keep running.

Four app databases (SSO, social network, file sync, wiki) on one local "legacy" server; a live
workload writes and reads during inventory and migration; each app follows its switch hook to the
new target at cutover. One app per strategy; every app verified before its switch.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from consolidator.demo.legacy import create_legacy_databases
from consolidator.demo.workload import AppStats, Workload
from consolidator.engine.executor import ExecuteOptions, ExecuteResult, execute, make_provider
from consolidator.events import EventSink, emit
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.pg.instance import LocalInstance
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.model import Plan
from consolidator.plan.store import load_previous
from consolidator.plan.write import write_plan_dir
from consolidator.report.render import render_report

DEMO_STRATEGIES = {
    "keycloak": "dump",
    "mastodon_production": "logical",
    "nextcloud": "dump",
    "Team Wiki": "physical",
}
APP_ROLES = {"mastodon_production": "mastodon", "keycloak": "grafana_reader", "nextcloud": "nextcloud"}
LEGACY_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "track_io_timing": "on",
    "wal_level": "logical",
    "max_connections": "200",
}


@dataclass
class DemoOptions:
    out: Path = Path("demo-output")  # plan.yaml, manifests/, reports, state, targets/
    scale_mb: int = 110
    sample_seconds: float = 5.0
    keep: bool = False
    plan_only: bool = False
    major: int | None = None
    jobs: int = 2


@dataclass
class DemoResult:
    plan: Plan
    plan_dir: Path
    reports: list[Path] = field(default_factory=list)
    legacy_dsn: str | None = None
    executed: ExecuteResult | None = None
    workload: dict[str, AppStats] = field(default_factory=dict)


class AppCredentials:
    """A 0600 pgpass for the simulated apps (any host/port: the same password works on the target)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "pgpass"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def add(self, role: str, password: str) -> None:
        escaped = role.replace("\\", "\\\\").replace(":", "\\:")
        with open(self.path, "a") as fh:
            fh.write(f"*:*:*:{escaped}:{password}\n")


def _install_hooks(plan: Plan, apps_dir: Path) -> None:
    """Switch hook: write the new conninfo where the simulated app looks; rollback removes it."""
    for app in plan.apps:
        target = shlex.quote(str(apps_dir / f"{app.cluster_name}.conninfo"))
        app.hooks = {
            "switch": [f'printf "%s" "$CONSOLIDATOR_TARGET_CONNINFO" > {target}'],
            "rollback": [f"rm -f {target}"],
        }


def _locator(plan: Plan, apps_dir: Path, creds: AppCredentials):  # type: ignore[no-untyped-def]
    def locate(name: str) -> str | None:
        app = plan.app(name)
        path = apps_dir / f"{app.cluster_name}.conninfo"
        if not path.exists():
            return None
        base = path.read_text().strip()
        return make_conninfo(base, user=APP_ROLES[name], dbname=name, passfile=str(creds.path))

    return locate


def run_demo(opts: DemoOptions, sink: EventSink | None = None) -> DemoResult:
    """Legacy server → inventory → plan → report → execute (unless ``plan_only``); cleans up unless ``keep``."""
    legacy = LocalInstance.create(major=opts.major, settings=LEGACY_SETTINGS)
    plan_dir, apps_dir = opts.out, opts.out / "apps"
    creds = AppCredentials(apps_dir)
    result: DemoResult | None = None
    try:
        legacy.start()
        emit(sink, "log", f"legacy server PostgreSQL {legacy.binaries.version} on 127.0.0.1:{legacy.port}")

        def remember(role: str, password: str) -> None:
            legacy.add_password(role, password)
            creds.add(role, password)

        create_legacy_databases(legacy.conninfo(), scale_mb=opts.scale_mb, passwords=remember)
        emit(sink, "log", 'created keycloak, mastodon_production, nextcloud and "Team Wiki"')
        conninfos = {name: make_conninfo(legacy.conninfo(dbname=name), user=role, passfile=str(creds.path))
                     for name, role in APP_ROLES.items()}  # fmt: skip
        # A PHP app keeps a pile of idle connections open: the sizing should propose a pooler for it.
        workload = Workload(conninfos, idle_connections={"nextcloud": 24})
        workload.start()
        try:
            inv = run_inventory(legacy.conninfo(), InventoryOptions(sample_seconds=opts.sample_seconds), sink=sink)
            plan_opts = PlanOptions(provider="local", local_root=str(opts.out / "targets"),
                                    strategies=DEMO_STRATEGIES, target_version=inv.server.major)  # fmt: skip
            plan = build_plan(inv, legacy.conninfo(), plan_opts, load_previous(plan_dir))
            if not opts.plan_only:
                _install_hooks(plan, apps_dir)
            written = write_plan_dir(plan, plan_dir)
            manifests = sorted(str(p.relative_to(plan_dir)) for p in written[1:])
            result = DemoResult(plan=plan, plan_dir=plan_dir, legacy_dsn=legacy.conninfo() if opts.keep else None)
            for fmt in ("md", "html"):
                path = plan_dir / f"report.{fmt}"
                path.write_text(render_report(plan, fmt, manifests), encoding="utf-8")
                result.reports.append(path)
            if not opts.plan_only:
                workload.locate = _locator(plan, apps_dir, creds)
                emit(sink, "log", "migrating every app while the workload keeps running")
                result.executed = execute(plan_dir, ExecuteOptions(jobs=opts.jobs), sink=sink)
        finally:
            workload.stop()
            if result is not None:
                result.workload = workload.stats
        return result
    finally:
        if not opts.keep:
            if result is not None and result.executed is not None:
                provider = make_provider(result.plan, plan_dir)
                for app in result.plan.apps:
                    provider.teardown(result.plan, app)
            legacy.destroy()
            shutil.rmtree(opts.out / "targets", ignore_errors=True)
