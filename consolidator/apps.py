"""Group source databases into apps: one per database by default, or as the user maps them."""

from __future__ import annotations

from dataclasses import dataclass, field

from consolidator.errors import ConfigError
from consolidator.inventory.model import DatabaseInfo, Inventory
from consolidator.names import cluster_name_problem, sanitize_cluster_name

MAINTENANCE_DB = "postgres"


@dataclass
class AppGroup:
    name: str
    cluster_name: str
    databases: list[DatabaseInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_mapping(items: list[str], flag: str = "--map") -> dict[str, str]:
    """``["DB=APP", …]`` → ``{DB: APP}``; the first ``=`` splits (database names may contain one)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", hint=f"write {flag} DATABASE=APP")
        out[key] = value
    return out


def _is_candidate(db: DatabaseInfo) -> bool:
    """The maintenance database is no app unless something lives in it."""
    if db.name != MAINTENANCE_DB:
        return True
    return bool(db.tables or db.materialized_views or db.sequences or db.function_count)


def group_apps(
    inv: Inventory, *, mapping: dict[str, str] | None = None, group_by_owner: bool = False
) -> list[AppGroup]:
    """Apps in a stable order with valid, unique cluster names."""
    mapping = mapping or {}
    names = {db.name for db in inv.databases}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(
            f"--map names database {unknown[0]!r}, which is not on the source",
            hint="databases on the source: " + ", ".join(sorted(names)),
        )
    groups: dict[str, AppGroup] = {}
    for db in sorted(inv.databases, key=lambda d: d.name):
        if db.name not in mapping and not _is_candidate(db):
            continue
        if db.name in mapping:
            app = mapping[db.name]
        elif group_by_owner:
            app = db.owner
        else:
            app = db.name
        groups.setdefault(app, AppGroup(name=app, cluster_name="")).databases.append(db)
    taken: set[str] = set()
    for group in groups.values():
        problem = cluster_name_problem(group.name)
        group.cluster_name = group.name if problem is None and group.name not in taken else (
            sanitize_cluster_name(group.name, taken)
        )
        if group.cluster_name != group.name:
            group.notes.append(f"cluster name {group.cluster_name!r} derived from {group.name!r}")
        taken.add(group.cluster_name)
    return list(groups.values())
