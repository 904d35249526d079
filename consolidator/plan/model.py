"""The plan document: what ``plan`` writes to ``DIR/plan.yaml`` and every later command reads.

Every derived number is a :class:`Value` carrying its reason, so a reviewer sees why. No field
holds a secret: credentials are described by reference (pgpass, environment, Secret name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consolidator.inventory.model import Finding

FORMAT_VERSION = 1
STRATEGIES = ("dump", "logical", "physical", "import")
PROVIDERS = ("local", "cnpg")


@dataclass
class Value:
    """A proposed number or setting and the evidence/formula that produced it."""

    value: Any
    reason: str


@dataclass
class SizingEvidence:
    """Measured inputs of one app (sum/max over its databases) that the sizing model reads."""

    databases: list[str] = field(default_factory=list)
    size_bytes: int = 0
    largest_table_bytes: int = 0
    index_bytes: int = 0
    working_set_bytes: int | None = None
    window_seconds: float = 0.0
    commits_per_s: float = 0.0
    rows_read_per_s: float = 0.0
    rows_written_per_s: float = 0.0
    wal_bytes_per_s: float = 0.0
    temp_bytes_per_s: float = 0.0
    cache_hit_ratio: float | None = None
    peak_connections: int = 0
    active_peak: int = 0
    active_p95: float = 0.0
    sessions_per_s: float | None = None
    idle_fraction: float | None = None
    avg_connection_age_s: float | None = None
    cpu_cores: float = 0.0
    cpu_source: str = "none"
    source_major: int = 0


@dataclass
class PoolerSizing:
    enabled: bool = False
    reason: str = ""
    instances: int = 2
    pool_mode: str = "session"
    default_pool_size: int = 0
    max_client_conn: int = 0


@dataclass
class Sizing:
    """Proposed resources for one app's Cluster (requests = limits: Guaranteed QoS)."""

    instances: Value
    cpu: Value  # Kubernetes quantity, e.g. "500m"
    memory: Value  # Kubernetes quantity, e.g. "768Mi"
    storage: Value  # e.g. "2Gi"
    wal_storage: Value  # e.g. "1Gi"; value None when no separate WAL volume
    max_connections: Value
    pooler: PoolerSizing
    parameters: dict[str, Value] = field(default_factory=dict)  # postgresql.parameters (strings)
    notes: list[str] = field(default_factory=list)


@dataclass
class AppDatabase:
    source: str
    target: str
    owner: str
    size_bytes: int = 0
    encoding: str = "UTF8"
    collate: str = "C"
    ctype: str = "C"
    locale_provider: str = "libc"
    icu_locale: str | None = None


@dataclass
class RoleSpec:
    """A role the app's target needs, with the source attributes (never the hash)."""

    name: str
    login: bool = False
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    inherit: bool = True
    connection_limit: int = -1
    valid_until: str | None = None
    password_type: str = "unknown"
    member_of: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    password_secret: str | None = None  # Secret name holding the password (cnpg); never a value


@dataclass
class Strategy:
    name: str
    requested: str = "auto"
    reason: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    id: str
    name: str
    description: str
    estimated_seconds: float = 0.0
    writes_blocked: bool = False


@dataclass
class App:
    name: str
    cluster_name: str
    namespace: str
    databases: list[AppDatabase]
    evidence: SizingEvidence
    sizing: Sizing
    strategy: Strategy
    roles: list[RoleSpec] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    image: str = ""
    steps: list[Step] = field(default_factory=list)
    estimated_copy_seconds: float = 0.0
    estimated_downtime_seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(d.size_bytes for d in self.databases)


@dataclass
class SourceRef:
    """How to reach the legacy server: conninfo without password, credentials by reference."""

    conninfo: str
    credentials: str = "pgpass"  # pgpass | env:PGPASSWORD | secret:<name>/<key>
    password_secret: str = "legacy-source-credentials"  # Kubernetes Secret for externalClusters
    # host[:port] under which the target cluster's pods reach the legacy server, when it differs from
    # the conninfo's (e.g. a LoadBalancer or an in-cluster Service); externalClusters use it.
    cluster_address: str | None = None


@dataclass
class DatabaseFingerprint:
    size_bytes: int
    digest: dict[str, str] = field(default_factory=dict)  # category → sha256 prefix
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Fingerprint:
    system_identifier: str
    version: str
    version_num: int
    databases: dict[str, DatabaseFingerprint] = field(default_factory=dict)


@dataclass
class BackupTarget:
    """Barman Cloud plugin destination (``--backup-s3 s3://bucket/prefix``)."""

    destination_path: str
    endpoint_url: str | None = None
    credentials_secret: str = "backup-s3-credentials"
    attempt: str = ""  # makes serverName unique per migration attempt
    retention: str = "30d"
    schedule: str = "0 0 2 * * *"


@dataclass
class Target:
    provider: str = "local"
    namespace: str = "default"
    version: int = 15
    instances: int | None = None  # --instances: applies to every app unless overridden
    storage_class: str | None = None
    local_root: str | None = None
    image_type: str = "standard"
    backup: BackupTarget | None = None
    pod_monitor: bool = False
    network_policy: bool = False
    app_namespaces: list[str] = field(default_factory=list)  # allowed in by the NetworkPolicy
    operator_namespace: str = "cnpg-system"
    priority_class: str | None = None
    copy_image: str | None = None  # image of the execute --in-cluster Jobs when --image is not given


@dataclass
class ServerSummary:
    host: str
    port: int
    version: str
    major: int
    system_identifier: str
    database_count: int
    total_bytes: int
    is_superuser: bool
    sample_seconds: float
    wal_bytes_per_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)
    limitations: list[str] = field(default_factory=list)


@dataclass
class Plan:
    tool_version: str
    created_at: str
    source: SourceRef
    fingerprint: Fingerprint
    server: ServerSummary
    target: Target
    apps: list[App] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # server-wide findings
    format_version: int = FORMAT_VERSION

    def app(self, name: str) -> App:
        """Find an app by its name, cluster name or one of its source database names."""
        for app in self.apps:
            if name in (app.name, app.cluster_name) or any(d.source == name for d in app.databases):
                return app
        raise KeyError(name)
