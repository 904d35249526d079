"""Build a plan from an inventory: apps, evidence, sizing, strategy, steps, roles, findings."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consolidator import __version__
from consolidator.apps import AppGroup, group_apps
from consolidator.errors import ConfigError, PreconditionError
from consolidator.inventory.findings import finding, sort_findings
from consolidator.inventory.model import DatabaseInfo, Finding, Inventory, RoleInfo
from consolidator.names import sanitize_cluster_name
from consolidator.pg import binaries
from consolidator.pg.connect import parse_dsn, without_password
from consolidator.plan import fingerprint
from consolidator.plan.model import (
    PROVIDERS,
    App,
    AppDatabase,
    BackupTarget,
    Plan,
    RoleSpec,
    ServerSummary,
    SizingEvidence,
    SourceRef,
    Target,
)
from consolidator.plan.steps import build_steps, downtime_seconds
from consolidator.plan.strategy import choose_strategy, size_facts
from consolidator.sizing.model import SizingOptions, derive_sizing

CNPG_MAJORS = range(14, 19)
TARGET_APP_OWNER = "app"  # CloudNativePG's application role, used when the source owner is a superuser


def target_owner(db: DatabaseInfo, roles: dict[str, RoleInfo], provider: str) -> tuple[str, Finding | None]:
    """The database owner on the target: the source owner, unless that is a superuser on CloudNativePG.

    A superuser cannot own an app database there (managed roles never get SUPERUSER and ``postgres``
    is reserved), so CloudNativePG's ``app`` role owns it; the superuser's objects stay with the
    target's superuser. Local targets keep the superuser as owner, like the source.
    """
    info = roles.get(db.owner)
    if info is None or not info.superuser or provider != "cnpg":
        return db.owner, None
    note = finding(
        "CN701", f"database {db.name}",
        f"database {db.name} is owned by superuser {db.owner}; on the target role {TARGET_APP_OWNER!r} owns it",
        database=db.name,
        fix=f"nothing to do, or --map/overrides later; grant {TARGET_APP_OWNER!r} what the app needs",
    )  # fmt: skip
    return TARGET_APP_OWNER, note


@dataclass
class PlanOptions:
    provider: str = "local"
    local_root: str | None = None
    namespace: str = "default"
    storage_class: str | None = None
    target_version: int | None = None
    instances: int | None = None
    default_strategy: str = "auto"
    strategies: dict[str, str] = field(default_factory=dict)  # app or source database → strategy
    mapping: dict[str, str] = field(default_factory=dict)
    group_by_owner: bool = False
    backup_s3: str | None = None
    backup_endpoint: str | None = None
    pod_monitor: bool = False
    network_policy: bool = False
    app_namespaces: list[str] = field(default_factory=list)
    priority_class: str | None = None
    source_from_cluster: str | None = None  # host[:port] the cluster's pods use for the legacy server


def evidence_for(dbs: list[DatabaseInfo], major: int) -> SizingEvidence:
    """Sum rates and peaks over an app's databases (peaks summed: an upper bound, never a guess)."""
    acts = [db.activity for db in dbs]
    tables = [t for db in dbs for t in db.tables if t.kind == "r"]
    ws = [a.working_set_bytes for a in acts if a.working_set_bytes is not None]
    blocks = sum(a.blocks_per_s for a in acts)
    hit = (
        sum((a.cache_hit_ratio or 0) * a.blocks_per_s for a in acts) / blocks
        if blocks > 0 and any(a.cache_hit_ratio is not None for a in acts)
        else None
    )
    idle = [a.idle_fraction for a in acts if a.idle_fraction is not None]
    ages = [a.avg_connection_age_s for a in acts if a.avg_connection_age_s is not None]
    busy = [a.statements_busy_per_s for a in acts if a.statements_busy_per_s is not None]
    active_time = [a.active_time_share for a in acts if a.active_time_share is not None]
    if busy:
        cpu, source = sum(busy), "pg_stat_statements execution + planning time per second"
    elif active_time:
        cpu, source = sum(active_time), "pg_stat_database active_time per second (includes waits)"
    else:
        cpu, source = sum(a.active_p95 for a in acts), "p95 of active sessions sampled from pg_stat_activity"
    sessions = [a.sessions_per_s for a in acts if a.sessions_per_s is not None]
    return SizingEvidence(
        databases=[db.name for db in dbs],
        size_bytes=sum(db.size_bytes for db in dbs),
        largest_table_bytes=max((t.total_bytes for t in tables), default=0),
        index_bytes=sum(t.index_bytes for t in tables),
        working_set_bytes=sum(ws) if ws else None,
        window_seconds=max((a.window_seconds for a in acts), default=0.0),
        commits_per_s=round(sum(a.commits_per_s for a in acts), 3),
        rows_read_per_s=round(sum(a.rows_read_per_s for a in acts), 3),
        rows_written_per_s=round(sum(a.rows_written_per_s for a in acts), 3),
        wal_bytes_per_s=round(sum(a.wal_bytes_per_s for a in acts), 1),
        temp_bytes_per_s=round(sum(a.temp_bytes_per_s for a in acts), 1),
        cache_hit_ratio=round(hit, 4) if hit is not None else None,
        peak_connections=sum(a.backends_peak for a in acts),
        active_peak=sum(a.active_peak for a in acts),
        active_p95=sum(a.active_p95 for a in acts),
        sessions_per_s=round(sum(sessions), 3) if sessions else None,
        idle_fraction=round(sum(idle) / len(idle), 3) if idle else None,
        avg_connection_age_s=round(min(ages), 1) if ages else None,
        cpu_cores=round(cpu, 3),
        cpu_source=source,
        source_major=major,
    )


def _secret_name(cluster: str, role: str) -> str:
    return f"{cluster}-{sanitize_cluster_name(role)}"[:63].rstrip("-")


def roles_for(group: AppGroup, cluster: str, roles: dict[str, RoleInfo]) -> list[RoleSpec]:
    needed = sorted({name for db in group.databases for name in db.roles})
    out: list[RoleSpec] = []
    for name in needed:
        info = roles.get(name)
        if info is None:
            continue
        reasons = sorted({why for db, whys in info.needed_by.items() if db in {d.name for d in group.databases}
                          for why in whys})  # fmt: skip
        out.append(RoleSpec(
            name=name, login=info.login, superuser=False, createdb=info.createdb, createrole=info.createrole,
            replication=info.replication, bypassrls=info.bypassrls, inherit=info.inherit,
            connection_limit=info.connection_limit, valid_until=info.valid_until, password_type=info.password_type,
            member_of=[g for g in info.member_of if g in needed], reasons=reasons,
            password_secret=_secret_name(cluster, name) if info.login else None,
        ))  # fmt: skip
    return out


def _credentials(dsn: str) -> str:
    params = parse_dsn(dsn)
    if "password" in params:
        return "password given in the DSN was not stored: provide it via PGPASSWORD or a pgpass file"
    if os.environ.get("PGPASSWORD"):
        return "env:PGPASSWORD"
    if params.get("passfile") or os.environ.get("PGPASSFILE") or (Path.home() / ".pgpass").exists():
        return "pgpass"
    return "none (trust or peer authentication)"


def _strategy_requests(opts: PlanOptions, groups: list[AppGroup]) -> dict[str, str]:
    """Map every ``--strategy APP=S`` (APP may be a source database name) to an app name."""
    out: dict[str, str] = {}
    for key, value in opts.strategies.items():
        match = next((g for g in groups if key in (g.name, g.cluster_name) or
                      any(d.name == key for d in g.databases)), None)  # fmt: skip
        if match is None:
            raise ConfigError(
                f"--strategy {key}={value}: no app or database named {key!r}",
                hint="apps in this plan: " + ", ".join(g.name for g in groups),
            )
        out[match.name] = value
    return out


def _target(opts: PlanOptions, inv: Inventory, previous: Plan | None) -> Target:
    if opts.provider not in PROVIDERS:
        raise ConfigError(f"--target {opts.provider}: unknown target", hint="use local or cnpg")
    version = opts.target_version or inv.server.major
    if opts.provider == "cnpg" and version not in CNPG_MAJORS:
        raise ConfigError(
            f"--target-version {version}: CloudNativePG 1.30 runs PostgreSQL 14–18",
            hint="pick a supported major with --target-version",
        )
    if version < inv.server.major:
        raise ConfigError(
            f"--target-version {version} is older than the source ({inv.server.major})",
            hint="migrate to the same or a newer major",
        )
    backup = None
    if opts.backup_s3:
        if not opts.backup_s3.startswith("s3://") or len(opts.backup_s3) <= len("s3://"):
            raise ConfigError(f"--backup-s3 {opts.backup_s3!r} is not s3://bucket/prefix",
                              hint="write --backup-s3 s3://bucket/prefix")  # fmt: skip
        attempt = previous.target.backup.attempt if previous and previous.target.backup else (
            dt.datetime.now(dt.UTC).strftime("a%Y%m%d%H%M")
        )
        backup = BackupTarget(destination_path=opts.backup_s3.rstrip("/") + "/", endpoint_url=opts.backup_endpoint,
                              attempt=attempt)  # fmt: skip
    local_root = opts.local_root
    if opts.provider == "local" and local_root:
        local_root = str(Path(local_root).resolve())
    return Target(
        provider=opts.provider, namespace=opts.namespace, version=version, instances=opts.instances,
        storage_class=opts.storage_class, local_root=local_root, backup=backup, pod_monitor=opts.pod_monitor,
        network_policy=opts.network_policy,
        app_namespaces=list(opts.app_namespaces), priority_class=opts.priority_class,
        copy_image=previous.target.copy_image if previous else None,  # set by hand: kept like overrides
    )  # fmt: skip


def target_findings(inv: Inventory, target: Target, apps: list[App]) -> list[Finding]:
    """What the chosen target implies: version gap, local binaries and extensions available there."""
    out: list[Finding] = []
    if target.version != inv.server.major:
        out.append(finding("CN902", "target", f"source PostgreSQL {inv.server.major}, target {target.version}: "
                                              "physical streaming is not possible"))  # fmt: skip
    if target.provider != "local":
        return out
    try:
        found = binaries.find(target.version)
    except PreconditionError:
        out.append(finding("CN906", "target", f"no PostgreSQL {target.version} server binaries found here",
                           fix=f"apt-get install postgresql-{target.version} (or pip install pgserver for 16)"))
        return out
    available = found.extensions()
    for app in apps:
        for ext in app.extensions:
            if available and ext not in available:
                app.findings.append(finding(
                    "CN202", f"{app.name} extension {ext}",
                    f"extension {ext} is not installed for PostgreSQL {target.version} at {found.bindir}",
                ))  # fmt: skip
    return out


def build_plan(inv: Inventory, dsn: str, opts: PlanOptions, previous: Plan | None = None) -> Plan:
    """A complete plan; ``previous`` keeps user edits (overrides, hooks) of apps with the same name."""
    target = _target(opts, inv, previous)
    groups = group_apps(inv, mapping=opts.mapping, group_by_owner=opts.group_by_owner)
    if not groups:
        raise ConfigError("no application databases on the source", hint="check --exclude and --map")
    requested = _strategy_requests(opts, groups)
    roles = {r.name: r for r in inv.roles}
    old_apps = {a.name: a for a in previous.apps} if previous else {}
    whole_instance = sum(db.size_bytes for db in inv.databases)
    apps: list[App] = []
    for index, group in enumerate(groups):
        old = old_apps.get(group.name)
        overrides: dict[str, Any] = dict(old.overrides) if old else {}
        evidence = evidence_for(group.databases, inv.server.major)
        sizing = derive_sizing(
            evidence, overrides=overrides, options=SizingOptions(instances=opts.instances),
            path=f"apps[{index}].overrides",
        )  # fmt: skip
        strategy = choose_strategy(
            requested.get(group.name, opts.default_strategy), dbs=group.databases, evidence=evidence,
            server=inv.server, target_version=target.version, provider=target.provider, app=group.name,
        )  # fmt: skip
        steps = build_steps(group.name, strategy.name, size_facts(group.databases), whole_instance)
        findings = [f for db in group.databases for f in db.findings]
        owners = {db.name: target_owner(db, roles, target.provider) for db in group.databases}
        findings += [note for _, note in owners.values() if note is not None]
        apps.append(App(
            name=group.name,
            cluster_name=group.cluster_name,
            namespace=overrides.get("namespace") or target.namespace,
            databases=[
                AppDatabase(source=db.name, target=db.name, owner=owners[db.name][0], size_bytes=db.size_bytes,
                            encoding=db.encoding, collate=db.collate, ctype=db.ctype,
                            locale_provider=db.locale_provider, icu_locale=db.icu_locale)
                for db in group.databases
            ],
            evidence=evidence,
            sizing=sizing,
            strategy=strategy,
            roles=roles_for(group, group.cluster_name, roles),
            extensions=sorted({e.name for db in group.databases for e in db.extensions} - {"plpgsql"}),
            steps=steps,
            estimated_copy_seconds=sum(s.estimated_seconds for s in steps if s.name == "copy"),
            estimated_downtime_seconds=downtime_seconds(steps),
            findings=sort_findings(findings),
            overrides=overrides,
            hooks=dict(old.hooks) if old else {},
        ))  # fmt: skip
    planned_dbs = [d.source for a in apps for d in a.databases]
    server = inv.server
    return Plan(
        tool_version=__version__,
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        source=SourceRef(conninfo=without_password(dsn), credentials=_credentials(dsn),
                         cluster_address=opts.source_from_cluster or (previous.source.cluster_address if previous
                                                                       else None)),
        fingerprint=fingerprint.from_inventory(inv, planned_dbs),
        server=ServerSummary(
            host=server.host, port=server.port, version=server.version, major=server.major,
            system_identifier=server.system_identifier, database_count=len(inv.databases),
            total_bytes=sum(db.size_bytes for db in inv.databases), is_superuser=server.is_superuser,
            sample_seconds=inv.sample_seconds, wal_bytes_per_s=round(server.wal_bytes_per_s, 1),
            settings=dict(server.settings), limitations=list(server.limitations),
        ),  # fmt: skip
        target=target,
        apps=apps,
        findings=sort_findings([f for f in inv.findings if f.database is None]
                               + target_findings(inv, target, apps)),
    )
