"""The ``physical`` strategy on CloudNativePG: a replica Cluster of the whole legacy server.

The rendered Cluster bootstraps with ``bootstrap.pg_basebackup`` from the ``legacy`` external
cluster and stays in ``replica.enabled: true`` (cnpg.md §3.3) until the physical strategy promotes it
(:meth:`CnpgProvider.promote` patches ``replica.enabled: false``, irreversible for a non-CNPG source).

Before anything is applied, :func:`check_source` connects to the legacy server (read-only) and refuses,
naming the check and the SQL that fixes it, what would leave the operator retrying a base backup
forever (cnpg.md §11 #9):

* same major as the plan's target;
* the ``externalClusters`` login exists, can log in and has REPLICATION (or SUPERUSER);
* a ``pg_hba_file_rules`` row lets that login open ``replication`` connections from a non-local
  address (the pods' addresses are unknown here; loopback-only rules cannot be theirs); when the
  rules cannot be read this is a note, not a refusal;
* free WAL senders (``max_wal_senders`` minus the active ones): at least the Cluster's instances and
  at least 2 (``pg_basebackup -X stream`` uses two);
* with more than one instance, ``streaming_replica`` (and on CNPG ≥ 1.29.1 ``cnpg_metrics_exporter``)
  already exist on the source: a replica cluster cannot create roles, and its replicas log in as
  ``streaming_replica`` (CNPG issue #11327).

Credentials while in replica mode: the clone has the source's roles and password hashes, and CNPG
applies its own ``<cluster>-superuser`` password only after promotion (cnpg.md §3.3). The handle of a
Cluster still in replica mode therefore logs in as the ``externalClusters`` user with the legacy
Secret's password (its own 0600 passfile); after promotion the provider's usual superuser handle applies.

The base backup runs inside the operator's ``<cluster>-1-pgbasebackup`` Job and the Cluster status
carries no byte counts: progress is reported as the operator's phase changes (logged), and a failed Job
surfaces with its message and a ``kubectl logs`` hint like any failed bootstrap.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import make_conninfo

from consolidator.errors import ConfigError, PreconditionError, StepFailed
from consolidator.manifests.render import pooler_name, source_connection_parameters
from consolidator.pg.connect import connect, describe
from consolidator.plan.model import App, Plan

if TYPE_CHECKING:
    from consolidator.engine.cnpg import CnpgProvider
    from consolidator.engine.provider import TargetHandle

log = logging.getLogger(__name__)

#: CNPG runs its metrics exporter as this role from 1.29.1 on (CVE-2026-44477, cnpg.md §2).
METRICS_EXPORTER_SINCE = (1, 29, 1)
BASE_BACKUP_SENDERS = 2  # pg_basebackup -X stream: one for the data, one for the WAL
HBA_HOST_TYPES = ("host", "hostssl", "hostnossl")
LOCAL_HBA_ADDRESSES = ("samehost", "localhost")

SOURCE_SQL = """
SELECT current_setting('server_version_num')::int / 10000,
       current_setting('wal_level'),
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_replication WHERE application_name IS NULL OR application_name NOT LIKE %s)
"""
ROLE_SQL = "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s"
HBA_SQL = """
SELECT line_number, type, database, user_name, address, netmask, auth_method
  FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number
"""


@dataclass
class SourceCheck:
    """What :func:`check_source` found: the facts, plus notes for what it could not check."""

    major: int
    user: str
    free_senders: int
    hba_rule: str | None = None  # the pg_hba line that admits the cluster's replication connections
    notes: list[str] = field(default_factory=list)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def required_roles(instances: int, operator: tuple[int, int, int] | None) -> dict[str, str]:
    """Roles a replica Cluster of ``instances`` needs on the source → the SQL that creates each."""
    if instances <= 1:
        return {}
    roles = {"streaming_replica": "CREATE ROLE streaming_replica WITH LOGIN REPLICATION;"}
    if operator is None or operator >= METRICS_EXPORTER_SINCE:
        roles["cnpg_metrics_exporter"] = "CREATE ROLE cnpg_metrics_exporter WITH LOGIN; " \
                                         "GRANT pg_monitor TO cnpg_metrics_exporter;"  # fmt: skip
    return roles


def is_local_address(address: str | None, netmask: str | None) -> bool:
    """Whether a pg_hba address admits only this machine (loopback, ``samehost``, ``localhost``)."""
    if address is None or address == "all" or address == "samenet":
        return False
    if address in LOCAL_HBA_ADDRESSES:
        return True
    try:
        if netmask:
            prefix = bin(int(ipaddress.ip_address(netmask))).count("1")
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        else:
            network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False  # a host name other than localhost: may well be the cluster's
    return network.network_address.is_loopback and network.broadcast_address.is_loopback


def _user_matches(conn: psycopg.Connection[Any], names: list[str], user: str) -> bool:
    for name in names:
        if name in ("all", user):
            return True
        if name.startswith("+"):
            row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                               (user, name[1:], name[1:])).fetchone()  # fmt: skip
            if row and row[0]:
                return True
    return False


def _hba_rule(conn: psycopg.Connection[Any], user: str) -> tuple[str | None, str | None]:
    """(the first rule admitting remote replication connections of ``user``, or a note when unreadable)."""
    try:
        with conn.transaction():
            rows = conn.execute(HBA_SQL).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return None, ("pg_hba_file_rules is not readable by this login: check by hand that the source's pg_hba.conf "
                      f"has 'host replication {_quote(user)} <pod network> scram-sha-256'")  # fmt: skip
    for line, kind, databases, users, address, netmask, method in rows:
        if kind not in HBA_HOST_TYPES or "replication" not in (databases or []):
            continue
        if not _user_matches(conn, list(users or []), user) or is_local_address(address, netmask):
            continue
        if method == "reject":
            return None, None  # the first remote rule for this login rejects it
        where = address + (f"/{netmask}" if netmask else "") if address else "all"
        return f"line {line}: {kind} replication {user} {where} {method}", None
    return None, None


def check_source(plan: Plan, app: App, source_dsn: str, operator: tuple[int, int, int] | None = None) -> SourceCheck:
    """Refuse (PreconditionError naming the check and the fix) a source a replica Cluster cannot clone."""
    user = source_connection_parameters(plan)["user"]
    instances = int(app.sizing.instances.value or 1)
    where = describe(source_dsn)
    with connect(source_dsn, dbname="postgres") as conn:
        conn.execute("SET default_transaction_read_only = on")
        row = conn.execute(SOURCE_SQL, (f"{app.cluster_name}-%",)).fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        major, wal_level, senders, active = int(row[0]), str(row[1]), int(row[2]), int(row[3])
        role = conn.execute(ROLE_SQL, (user,)).fetchone()
        rule, hba_note = _hba_rule(conn, user) if role is not None else (None, None)
        present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                              (list(required_roles(instances, operator)),))}  # fmt: skip
    if major != plan.target.version:
        raise PreconditionError(
            f"app {app.name}: same-major check failed: the source {where} runs PostgreSQL {major}, the plan's "
            f"target {plan.target.version}; a replica cluster needs the same major",
            hint=f"plan again with --target-version {major}, or use the dump, logical or import strategy",
        )
    if wal_level not in ("replica", "logical"):
        raise PreconditionError(f"app {app.name}: wal_level check failed: {where} has wal_level = {wal_level}",
                                hint="ALTER SYSTEM SET wal_level = replica; then restart the source")  # fmt: skip
    if role is None:
        raise PreconditionError(
            f"app {app.name}: replication role check failed: the externalClusters login {user!r} does not exist on "
            f"{where}",
            hint=f"CREATE ROLE {_quote(user)} WITH LOGIN REPLICATION PASSWORD '…'; on the source, or change the user "
            "in plan.source.conninfo and plan again",
        )
    can_login, replication, superuser = (bool(v) for v in role)
    if not can_login:
        raise PreconditionError(f"app {app.name}: replication role check failed: {user!r} cannot log in on {where}",
                                hint=f"ALTER ROLE {_quote(user)} LOGIN; on the source")  # fmt: skip
    if not (replication or superuser):
        raise PreconditionError(
            f"app {app.name}: replication role check failed: {user!r} has neither REPLICATION nor SUPERUSER on "
            f"{where}; the operator's pg_basebackup would be refused",
            hint=f"ALTER ROLE {_quote(user)} REPLICATION; on the source",
        )
    if rule is None and hba_note is None:
        raise PreconditionError(
            f"app {app.name}: pg_hba check failed: no pg_hba.conf rule of {where} admits replication connections "
            f"of {user!r} from outside the server (only loopback or reject rules match)",
            hint=f"add 'hostssl replication {_quote(user)} <the Kubernetes pod network CIDR> scram-sha-256' to the "
            "source's pg_hba.conf, then SELECT pg_reload_conf();",
        )
    free = senders - active
    needed = max(instances, BASE_BACKUP_SENDERS)
    if free < needed:
        raise PreconditionError(
            f"app {app.name}: WAL senders check failed: {free} of max_wal_senders = {senders} free on {where} "
            f"({active} in use); the replica cluster needs {needed} ({instances} instance(s), base backup streams 2)",
            hint=f"ALTER SYSTEM SET max_wal_senders = {active + needed + 2}; then restart the source (or stop other "
            "replication clients)",
        )
    missing = {name: fix for name, fix in required_roles(instances, operator).items() if name not in present}
    if missing:
        version = ".".join(map(str, operator)) if operator else "unknown (assumed ≥ 1.29.1)"
        raise PreconditionError(
            f"app {app.name}: CNPG roles check failed: {', '.join(missing)} missing on {where}; a replica cluster of "
            f"{instances} instances cannot create them and its replicas would never join (CloudNativePG "
            f"{version}, issue #11327)",
            hint="on the source: " + " ".join(missing.values()),
        )
    return SourceCheck(major=major, user=user, free_senders=free, hba_rule=rule,
                       notes=[hba_note] if hba_note else [])  # fmt: skip


# -- provisioning ---------------------------------------------------------------------------------------


def _replica_cluster(objects: list[dict[str, Any]], app: App) -> dict[str, Any]:
    cluster = next((o for o in objects if o["kind"] == "Cluster"), None)
    spec = (cluster or {}).get("spec") or {}
    if cluster is None or "pg_basebackup" not in (spec.get("bootstrap") or {}) \
            or not (spec.get("replica") or {}).get("enabled"):  # fmt: skip
        raise ConfigError(f"app {app.name}: the rendered Cluster is not a replica cluster",
                          hint="the physical strategy renders bootstrap.pg_basebackup + replica.enabled; plan again")
    return cluster


def provision_standby(provider: CnpgProvider, plan: Plan, app: App, source_dsn: str, *,
                      progress: Callable[[int, int], None] | None = None) -> TargetHandle:  # fmt: skip
    """Check the source, apply the replica Cluster, wait until it streams; the handle logs in as the source login."""
    from consolidator.engine.cnpg_preflight import Preflight

    objects = provider.objects(plan, app)
    _replica_cluster(objects, app)
    operator = Preflight(provider.api, in_cluster=provider.in_cluster)._operator_version(plan)
    found = check_source(plan, app, source_dsn, operator)
    log.info("%s: source checks passed (PostgreSQL %s, %s free WAL senders, %s)", app.name, found.major,
             found.free_senders, found.hba_rule or "pg_hba not checked")  # fmt: skip
    for note in found.notes:
        log.warning("%s: %s", app.name, note)
    for namespace in sorted({o["metadata"].get("namespace") for o in objects if o["metadata"].get("namespace")}):
        provider._ensure_namespace(namespace)
    for obj in objects:
        provider.api.apply(provider._fill_secret(plan, obj) if obj["kind"] == "Secret" else obj)
    phases: list[str] = []

    def streaming(cluster: dict[str, Any]) -> bool:
        state = provider._state(cluster)
        if not phases or phases[-1] != state:
            phases.append(state)
            log.info("%s: replica cluster %s: %s", app.name, app.cluster_name, state)
        replica = ((cluster.get("spec") or {}).get("replica") or {}).get("enabled")
        return bool(replica) and provider._healthy(cluster)

    cluster = provider._poll(app, provider.ready_timeout, streaming, "streaming from the source")
    return provider._handle(plan, app, cluster)


def standby_handle(provider: CnpgProvider, plan: Plan, app: App, cluster: dict[str, Any], *,
                   strict: bool = True) -> TargetHandle:  # fmt: skip
    """A Cluster still in replica mode: log in as the externalClusters user (the clone carries its password)."""
    from consolidator.engine.cnpg import _write_passfile
    from consolidator.engine.provider import TargetHandle

    name, namespace = app.cluster_name, app.namespace
    service = f"{name}-rw.{namespace}.svc"
    app_host = f"{pooler_name(app)}.{namespace}.svc" if app.sizing.pooler.enabled else service
    fallback = TargetHandle(cluster=name, conninfo=make_conninfo(host=service, port="5432", dbname="postgres"),
                            passfile=None, major=plan.target.version, app_conninfo=f"host={app_host} port=5432")
    user = source_connection_parameters(plan)["user"]
    secret = provider.api.read_secret(plan.source.password_secret, namespace) or {}
    if not secret.get("password"):
        if not strict:
            return fallback
        raise StepFailed(f"Secret {namespace}/{plan.source.password_secret} (the legacy source login) has no password",
                         hint="provision fills it from the source credentials: execute --resume")  # fmt: skip
    passfile = provider.work_dir(app) / "source-login.pgpass"
    _write_passfile(passfile, user, secret["password"])
    port = 5432 if provider.in_cluster else provider._forward(app, cluster, strict)
    if port is None:
        return fallback
    host = service if provider.in_cluster else "127.0.0.1"
    conninfo = make_conninfo(host=host, port=str(port), user=user, dbname="postgres", passfile=str(passfile),
                             sslmode="require")  # fmt: skip
    return TargetHandle(cluster=name, conninfo=conninfo, passfile=str(passfile), major=plan.target.version,
                        superuser=user, app_conninfo=fallback.app_conninfo)  # fmt: skip

