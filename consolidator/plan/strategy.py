"""Pick a migration strategy per app, or check the one the user asked for, and say why."""

from __future__ import annotations

from dataclasses import dataclass

from consolidator.errors import ConfigError
from consolidator.inventory.model import DatabaseInfo, ServerInfo
from consolidator.plan.estimates import (
    DEFAULT_THROUGHPUT,
    SizeFacts,
    Throughput,
    copy_seconds,
    index_seconds,
    verify_seconds,
)
from consolidator.plan.model import STRATEGIES, SizingEvidence, Strategy
from consolidator.report.format import human_bytes, human_duration

IDLE_COMMITS_PER_S = 0.1


@dataclass(frozen=True)
class StrategyPolicy:
    downtime_budget_seconds: float = 300.0  # offline copy acceptable up to this long
    small_table_bytes: int = 64 * 1024 * 1024  # no-PK tables up to this are copied at cutover


def is_idle(ev: SizingEvidence) -> bool:
    return ev.commits_per_s < IDLE_COMMITS_PER_S and ev.peak_connections <= 1


def size_facts(dbs: list[DatabaseInfo]) -> SizeFacts:
    tables = [t for db in dbs for t in db.tables if t.kind == "r"]
    return SizeFacts(
        data_bytes=sum(t.heap_bytes + t.toast_bytes for t in tables),
        index_bytes=sum(t.index_bytes for t in tables),
        largest_table_bytes=max((t.heap_bytes + t.toast_bytes for t in tables), default=0),
        tables=len(tables),
        large_object_bytes=sum(db.large_objects_bytes for db in dbs),
    )


def offline_seconds(facts: SizeFacts, tp: Throughput) -> float:
    return copy_seconds(facts, tp) + index_seconds(facts, tp) + verify_seconds(facts, tp)


def logical_options(dbs: list[DatabaseInfo], policy: StrategyPolicy) -> dict[str, list[str]]:
    """Which tables logical replication cannot carry, and how each is handled."""
    at_cutover: list[str] = []
    need_identity: list[str] = []
    for db in dbs:
        for t in db.tables:
            obj = f"{db.name}.{t.qualified}"
            if t.kind != "r":
                continue
            if t.persistence == "u":
                at_cutover.append(obj)
            elif not t.replicable:
                size = t.heap_bytes + t.toast_bytes
                (at_cutover if size <= policy.small_table_bytes else need_identity).append(obj)
    return {"copy_at_cutover": at_cutover, "needs_replica_identity_full": need_identity}


def choose_strategy(
    requested: str,
    *,
    dbs: list[DatabaseInfo],
    evidence: SizingEvidence,
    server: ServerInfo,
    target_version: int,
    provider: str,
    policy: StrategyPolicy | None = None,
    tp: Throughput = DEFAULT_THROUGHPUT,
    app: str = "",
) -> Strategy:
    """``auto`` picks from size, activity, version gap and findings; explicit choices are checked."""
    policy = policy or StrategyPolicy()
    if requested not in ("auto", *STRATEGIES):
        raise ConfigError(f"--strategy {app}={requested}: unknown strategy", hint="use auto, " + ", ".join(STRATEGIES))
    facts = size_facts(dbs)
    offline = offline_seconds(facts, tp)
    same_major = server.major == target_version
    if requested != "auto":
        _check_possible(requested, app, server, target_version, provider)
        return _explain(requested, "requested", dbs, evidence, offline, same_major, policy, server)
    if is_idle(evidence):
        name = "dump"
    elif offline <= policy.downtime_budget_seconds:
        name = "dump"
    elif server.major >= 10:
        name = "logical"
    elif same_major:
        name = "physical"
    else:
        name = "dump"
    return _explain(name, "auto", dbs, evidence, offline, same_major, policy, server)


def _check_possible(name: str, app: str, server: ServerInfo, target_version: int, provider: str) -> None:
    if name == "physical" and server.major != target_version:
        raise ConfigError(
            f"--strategy {app}=physical: physical streaming needs the same major "
            f"(source {server.major}, target {target_version})",
            hint=f"use dump or logical, or --target-version {server.major}",
        )
    if name == "import" and provider != "cnpg":
        raise ConfigError(
            f"--strategy {app}=import: import is driven by the CloudNativePG operator",
            hint="use --target cnpg, or dump/logical for local targets",
        )
    if name == "logical" and server.major < 10:
        raise ConfigError(f"--strategy {app}=logical: PostgreSQL {server.major} has no logical replication",
                          hint="use dump")  # fmt: skip


def _explain(
    name: str,
    requested: str,
    dbs: list[DatabaseInfo],
    ev: SizingEvidence,
    offline: float,
    same_major: bool,
    policy: StrategyPolicy,
    server: ServerInfo,
) -> Strategy:
    size = human_bytes(ev.size_bytes)
    activity = (
        "idle (no commits measured)"
        if is_idle(ev)
        else f"{ev.commits_per_s:.1f} commits/s, peak {ev.peak_connections} connections"
    )
    budget = human_duration(policy.downtime_budget_seconds)
    est = human_duration(offline)
    options: dict[str, object] = {}
    if name == "dump":
        why = f"{size}, {activity}: an offline copy takes ~{est} (budget {budget}), writes stop meanwhile"
    elif name == "logical":
        opts = logical_options(dbs, policy)
        options.update(opts)
        options["replica_identity_full"] = False
        over = f"over the {budget} budget" if offline > policy.downtime_budget_seconds else f"budget {budget}"
        why = (
            f"{size}, {activity}: an offline copy would take ~{est} ({over}); "
            "logical replication copies online and cuts over in seconds"
        )
        if server.settings.get("wal_level") != "logical":
            why += "; needs wal_level=logical on the source (restart, see CN501)"
        if opts["needs_replica_identity_full"]:
            why += (
                f"; {len(opts['needs_replica_identity_full'])} large table(s) without primary key need "
                "opt-in strategy.options.replica_identity_full: true (sets REPLICA IDENTITY FULL on the source)"
            )
        if opts["copy_at_cutover"]:
            why += f"; {len(opts['copy_at_cutover'])} table(s) copied at cutover while fenced"
    elif name == "physical":
        options["copies_whole_instance"] = True
        why = (
            f"{size}, {activity}: streaming standby of the whole instance, promoted at cutover; "
            "copies every database of the source, then drops the ones not in this app"
        )
    else:
        why = "CloudNativePG imports with pg_dump/pg_restore (offline); consolidator restores grants and verifies"
    if requested == "requested":
        why = "requested on the command line; " + why
    elif name != "physical" and not same_major:
        why += f"; the version gap (source {server.major}) rules out physical"
    return Strategy(name=name, requested=requested if requested == "auto" else name, reason=why, options=options)
