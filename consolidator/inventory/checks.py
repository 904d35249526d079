"""Turn an inventory into findings: every blocker a migration would hit, each with a fix."""

from __future__ import annotations

from consolidator.inventory.cnpg_images import shipped
from consolidator.inventory.findings import finding
from consolidator.inventory.model import DatabaseInfo, Finding, Inventory, RoleInfo, ServerInfo
from consolidator.names import cluster_name_problem, sanitize_cluster_name
from consolidator.report.format import human_bytes

MIN_SAMPLE_SECONDS = 60.0
SUPPORTED_TARGET_MAJORS = range(14, 19)


def check_server(server: ServerInfo, databases: list[DatabaseInfo], sample_seconds: float) -> list[Finding]:
    out: list[Finding] = []
    s = server.settings
    if s.get("wal_level") in ("minimal", "replica"):
        out.append(finding("CN501", "server", f"wal_level is {s['wal_level']}; logical replication needs logical"))
    apps = max(1, len(databases))
    free_slots = _int(s.get("max_replication_slots")) - server.replication_slots_used
    if free_slots < apps:
        out.append(finding(
            "CN502", "server",
            f"{free_slots} free replication slots ({s.get('max_replication_slots')} configured, "
            f"{server.replication_slots_used} used) for {apps} databases",
            fix=f"ALTER SYSTEM SET max_replication_slots = {server.replication_slots_used + apps + 2} and restart",
        ))  # fmt: skip
    free_senders = _int(s.get("max_wal_senders")) - server.wal_senders_used
    if free_senders < apps:
        out.append(finding(
            "CN503", "server",
            f"{free_senders} free WAL senders ({s.get('max_wal_senders')} configured, "
            f"{server.wal_senders_used} in use) for {apps} databases",
            fix=f"ALTER SYSTEM SET max_wal_senders = {server.wal_senders_used + apps + 2} and restart",
        ))  # fmt: skip
    if server.in_recovery:
        out.append(finding("CN504", "server", "the source is in recovery (a standby)"))
    if server.major not in SUPPORTED_TARGET_MAJORS:
        out.append(finding(
            "CN905", "server", f"PostgreSQL {server.major} is not supported by CloudNativePG 1.30 (14–18)",
        ))  # fmt: skip
    for text in server.limitations:
        out.append(finding("CN001", "server", text))
    if sample_seconds < MIN_SAMPLE_SECONDS:
        out.append(finding(
            "CN002", "server",
            f"activity sampled for {sample_seconds:g} s only: rates, peaks and growth are rough",
        ))  # fmt: skip
    return out


def check_database(db: DatabaseInfo, roles: dict[str, RoleInfo], server: ServerInfo) -> list[Finding]:
    """Findings for one database; ``roles`` maps every role name to its record."""
    out: list[Finding] = []
    name = db.name

    def add(code: str, obj: str, message: str, fix: str | None = None) -> None:
        out.append(finding(code, obj, message, database=name, fix=fix))

    problem = cluster_name_problem(name)
    if problem:
        add("CN901", f"database {name}", f"{problem}; the cluster will be named {sanitize_cluster_name(name)!r}")
    for t in db.tables:
        obj = f"{name}.{t.qualified}"
        if t.kind == "r" and not t.replicable and t.persistence != "u":
            size = human_bytes(t.total_bytes)
            add("CN101", obj, f"table {t.qualified} ({size}) has no primary key or replica identity")
        if t.persistence == "u":
            add("CN102", obj, f"unlogged table {t.qualified} is not carried by logical replication")
    for ft in db.foreign_tables:
        add("CN103", f"{name}.{ft}", f"foreign table {ft}")
    for mv in db.materialized_views:
        add("CN104", f"{name}.{mv.schema}.{mv.name}", f"materialized view {mv.schema}.{mv.name}")
    for ext in db.extensions:
        if not shipped(ext.name):
            add("CN201", f"{name} extension {ext.name}", f"extension {ext.name} {ext.version} is not in CNPG images")
    unreadable = [s for s in db.sequences if not s.readable]
    if db.sequences:
        add("CN301", f"database {name}", f"{len(db.sequences)} sequences are set on the target at cutover")
    for seq in unreadable:
        add("CN302", f"{name}.{seq.schema}.{seq.name}", f"sequence {seq.schema}.{seq.name} is not readable")
    if db.large_objects_count:
        size = human_bytes(db.large_objects_bytes)
        add("CN401", f"database {name}", f"{db.large_objects_count} large objects ({size})")
    if db.superuser_owned:
        shown = ", ".join(db.superuser_owned[:5]) + (" …" if len(db.superuser_owned) > 5 else "")
        add("CN701", f"database {name}", f"{len(db.superuser_owned)} objects owned by a superuser: {shown}")
    for ref in db.cross_database_refs:
        add("CN801", f"{name} {ref.kind} {ref.name}", f"{ref.kind} {ref.name} reaches {ref.target}")
    if db.locale_provider == "libc" and db.collate not in ("C", "POSIX", "C.UTF-8", "C.utf8"):
        add("CN903", f"database {name}", f"collation {db.collate} (libc)")
    if db.encoding.upper() not in ("UTF8", "UTF-8"):
        add("CN904", f"database {name}", f"encoding {db.encoding}")
    for role_name in db.roles:
        role = roles.get(role_name)
        if role is None:
            continue
        if role.password_type == "md5":
            add("CN601", f"role {role_name}", f"role {role_name} has an md5 password hash")
        elif role.login and role.password_type == "none":
            add("CN602", f"role {role_name}", f"login role {role_name} has no password")
        if role.superuser:
            add("CN603", f"role {role_name}", f"superuser {role_name} connects to {name}")
    for text in db.limitations:
        add("CN001", f"database {name}", text)
    return out


def check_inventory(inv: Inventory) -> list[Finding]:
    """All findings: server-wide first, then per database (also stored on each database)."""
    roles = {r.name: r for r in inv.roles}
    findings = check_server(inv.server, inv.databases, inv.sample_seconds)
    for db in inv.databases:
        db.findings = check_database(db, roles, inv.server)
        findings.extend(db.findings)
    return findings


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
