"""``consolidator demo``: a throwaway legacy server, inventoried, planned and reported end to end."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from consolidator.demo.legacy import create_legacy_databases
from consolidator.demo.workload import Workload
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
LEGACY_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "track_io_timing": "on",
    "wal_level": "logical",
    "max_connections": "200",
}


@dataclass
class DemoOptions:
    out: Path = Path("demo-output")  # plan.yaml, manifests/, report.md, report.html
    scale_mb: int = 20
    sample_seconds: float = 5.0
    keep: bool = False
    major: int | None = None


@dataclass
class DemoResult:
    plan: Plan
    plan_dir: Path
    reports: list[Path] = field(default_factory=list)
    legacy_dsn: str | None = None


def run_demo(opts: DemoOptions, sink: EventSink | None = None) -> DemoResult:
    """Create the legacy server, plan every app, write reports; remove the server unless ``keep``."""
    legacy = LocalInstance.create(major=opts.major, settings=LEGACY_SETTINGS)
    try:
        legacy.start()
        emit(sink, "log", f"legacy server PostgreSQL {legacy.binaries.version} on 127.0.0.1:{legacy.port}")
        create_legacy_databases(legacy.conninfo(), scale_mb=opts.scale_mb, passwords=legacy.add_password)
        emit(sink, "log", "created keycloak, mastodon_production, nextcloud and \"Team Wiki\"")
        apps = {name: legacy.conninfo(dbname=name, user=owner) for name, owner in
                (("mastodon_production", "mastodon"), ("keycloak", "grafana_reader"), ("nextcloud", "nextcloud"))}
        # A PHP app keeps a pile of idle connections open: the sizing should propose a pooler for it.
        workload = Workload(apps, idle_connections={"nextcloud": 24})
        workload.start()
        try:
            inv = run_inventory(legacy.conninfo(), InventoryOptions(sample_seconds=opts.sample_seconds), sink=sink)
        finally:
            workload.stop()
        plan_dir = opts.out
        plan_opts = PlanOptions(provider="local", local_root=str(opts.out / "targets"), strategies=DEMO_STRATEGIES,
                                target_version=inv.server.major)  # fmt: skip
        plan = build_plan(inv, legacy.conninfo(), plan_opts, load_previous(plan_dir))
        written = write_plan_dir(plan, plan_dir)
        manifests = sorted(str(p.relative_to(plan_dir)) for p in written[1:])
        result = DemoResult(plan=plan, plan_dir=plan_dir, legacy_dsn=legacy.conninfo() if opts.keep else None)
        for fmt in ("md", "html"):
            path = plan_dir / f"report.{fmt}"
            path.write_text(render_report(plan, fmt, manifests), encoding="utf-8")
            result.reports.append(path)
        return result
    finally:
        if not opts.keep:
            legacy.destroy()
            shutil.rmtree(opts.out / "targets", ignore_errors=True)
