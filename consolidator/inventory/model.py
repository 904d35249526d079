"""What an inventory holds: plain dataclasses, serialised as the ``inventory --json`` document.

Sizes are bytes, rates are per second, times are seconds; nothing here talks to a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("error", "warning", "info")


@dataclass
class Finding:
    """One migration blocker or notice, with a stable ``code`` (see ``inventory/findings.py``)."""

    code: str
    severity: str
    object: str
    message: str
    fix: str
    database: str | None = None


@dataclass
class ServerInfo:
    host: str
    port: int
    user: str
    version: str
    version_num: int
    major: int
    system_identifier: str
    in_recovery: bool
    is_superuser: bool
    settings: dict[str, str] = field(default_factory=dict)
    extensions_available: list[str] = field(default_factory=list)
    replication_slots_used: int = 0
    wal_senders_used: int = 0
    wal_bytes_per_s: float = 0.0
    pg_stat_statements: bool = False
    postmaster_start: str = ""
    stats_reset_recently: bool = False
    limitations: list[str] = field(default_factory=list)


@dataclass
class TableInfo:
    schema: str
    name: str
    kind: str = "r"  # r table, p partitioned, f foreign
    persistence: str = "p"  # p permanent, u unlogged
    owner: str = ""
    rows_estimate: int = 0
    heap_bytes: int = 0
    index_bytes: int = 0
    toast_bytes: int = 0
    total_bytes: int = 0
    has_primary_key: bool = False
    replica_identity: str = "d"  # d default(pk), n nothing, f full, i index
    has_identity_index: bool = False
    partition_of: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def replicable(self) -> bool:
        """True when UPDATE/DELETE can be replicated logically (PK, RI index or RI FULL)."""
        if self.replica_identity == "f":
            return True
        if self.replica_identity == "i":
            return self.has_identity_index
        if self.replica_identity == "d":
            return self.has_primary_key
        return False


@dataclass
class RelationSummary:
    schema: str
    name: str
    owner: str = ""
    total_bytes: int = 0
    populated: bool = True


@dataclass
class SequenceInfo:
    schema: str
    name: str
    owner: str = ""
    data_type: str = "bigint"
    last_value: int | None = None
    readable: bool = True


@dataclass
class ExtensionInfo:
    name: str
    version: str
    schema: str
    in_cnpg_image: bool = True


@dataclass
class CrossDatabaseRef:
    kind: str  # dblink | postgres_fdw | foreign_server
    name: str
    target: str  # host/port/dbname, never a password


@dataclass
class Activity:
    """Counters sampled at the start and end of the window, and session samples in between."""

    window_seconds: float = 0.0
    commits_per_s: float = 0.0
    rollbacks_per_s: float = 0.0
    rows_read_per_s: float = 0.0
    rows_written_per_s: float = 0.0
    cache_hit_ratio: float | None = None
    temp_bytes_per_s: float = 0.0
    blocks_per_s: float = 0.0
    backends_current: int = 0
    backends_peak: int = 0
    active_peak: int = 0
    active_p95: float = 0.0
    sessions_per_s: float | None = None
    idle_fraction: float | None = None
    avg_connection_age_s: float | None = None
    active_time_share: float | None = None  # Δactive_time / Δt (PG 14+), average active sessions
    statements_time_share: float | None = None  # share of pg_stat_statements time over all databases
    statements_busy_per_s: float | None = None  # Δ(total_exec+plan time) / Δt in seconds per second
    wal_bytes_per_s: float = 0.0
    working_set_bytes: int | None = None


@dataclass
class DatabaseInfo:
    name: str
    oid: int = 0
    size_bytes: int = 0
    encoding: str = "UTF8"
    collate: str = "C"
    ctype: str = "C"
    locale_provider: str = "libc"
    icu_locale: str | None = None
    owner: str = ""
    connection_limit: int = -1
    allow_connections: bool = True
    settings: list[dict[str, str]] = field(default_factory=list)  # {"role": "*"|name, "setting": "k=v"}
    extensions: list[ExtensionInfo] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    tables: list[TableInfo] = field(default_factory=list)  # largest first
    materialized_views: list[RelationSummary] = field(default_factory=list)
    sequences: list[SequenceInfo] = field(default_factory=list)
    foreign_tables: list[str] = field(default_factory=list)
    large_objects_count: int = 0
    large_objects_bytes: int = 0
    function_count: int = 0
    trigger_count: int = 0
    view_count: int = 0
    superuser_owned: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # roles this database needs
    cross_database_refs: list[CrossDatabaseRef] = field(default_factory=list)
    catalog_digest: dict[str, str] = field(default_factory=dict)  # category → sha256 prefix
    catalog_counts: dict[str, int] = field(default_factory=dict)
    activity: Activity = field(default_factory=Activity)
    findings: list[Finding] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)

    @property
    def partitioned_tables(self) -> list[TableInfo]:
        return [t for t in self.tables if t.kind == "p"]

    @property
    def unlogged_tables(self) -> list[TableInfo]:
        return [t for t in self.tables if t.persistence == "u"]


@dataclass
class RoleInfo:
    name: str
    superuser: bool = False
    login: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    password_type: str = "unknown"  # scram | md5 | none | unknown (not superuser)
    member_of: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # ALTER ROLE … SET for all databases
    needed_by: dict[str, list[str]] = field(default_factory=dict)  # database → reasons


@dataclass
class Inventory:
    collected_at: str
    tool_version: str
    server: ServerInfo
    databases: list[DatabaseInfo] = field(default_factory=list)
    roles: list[RoleInfo] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # every finding, server and databases
    sample_seconds: float = 0.0

    def database(self, name: str) -> DatabaseInfo:
        for db in self.databases:
            if db.name == name:
                return db
        raise KeyError(name)

    def role(self, name: str) -> RoleInfo | None:
        return next((r for r in self.roles if r.name == name), None)
