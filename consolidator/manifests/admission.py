"""Pre-checks for what the CNPG admission webhook and CEL rules reject (cnpg.md §8, §9).

JSON-schema validation of the CRDs cannot see these rules, and a GitOps controller only reports
them after a push, one object at a time. Checking them here turns a stuck sync into a message
that names the object and the fix. A few tool policies ride along (no superuser roles, no
password values in Secrets, no password in ``externalClusters``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from consolidator.cnpg_facts import CNPG_DEDICATED_FIELDS, is_fixed_parameter, is_reserved_role
from consolidator.sizing.quantity import parse_cpu, parse_memory, parse_pg_memory

CNPG_API = "postgresql.cnpg.io/v1"
BARMAN_API = "barmancloud.cnpg.io/v1"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
SUPPORTED_MAJORS = range(14, 19)  # CNPG 1.30: PostgreSQL 14-18
CLUSTER_NAME_MAX = 50

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
_CLUSTER_SCOPED = frozenset({"PriorityClass", "ClusterImageCatalog", "Namespace"})


def is_dns1035_label(name: str, max_len: int = 63) -> bool:
    return len(name) <= max_len and bool(_DNS1035.match(name))


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


# --------------------------------------------------------------------------- quantities


def memory_bytes(q: Any) -> int:
    """Kubernetes memory quantity → bytes."""
    return parse_memory(q)


def cpu_cores(q: Any) -> float:
    """Kubernetes CPU quantity → cores."""
    return parse_cpu(q)


def pg_memory_bytes(value: Any, *, unit_bytes: int = 8192) -> int:
    """PostgreSQL memory setting → bytes; bare numbers count in ``unit_bytes`` (8kB pages)."""
    if isinstance(value, bool):
        raise ValueError(f'"{value}" is not a PostgreSQL memory setting')
    return parse_pg_memory(str(value).strip(), unit=f"{unit_bytes // 1024}kB")


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "<unnamed>")
    ns = meta.get("namespace")
    return f"{obj.get('kind', '<no kind>')} {ns}/{name}" if ns else f"{obj.get('kind', '<no kind>')} {name}"


def _msg(obj: dict[str, Any], problem: str, fix: str) -> str:
    return f"{_ref(obj)}: {problem}; fix: {fix}"


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _namespace(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def _clusters(objects: Iterable[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o.get("kind") == "Cluster" and o.get("apiVersion") == CNPG_API and _namespace(o) == namespace
    ]


def image_tag(image: str) -> str:
    """The tag of an image reference ("" when absent): digest dropped, registry port ignored."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _resources(obj: dict[str, Any], where: str, res: Any) -> list[str]:
    """requests ≤ limits (hugepages equal), the kubelet's and CNPG's rule for every container."""
    if not isinstance(res, dict):
        return []
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    out: list[str] = []
    for key in sorted(set(requests) | set(limits)):
        parse = cpu_cores if key == "cpu" else memory_bytes
        try:
            req = parse(requests[key]) if key in requests else None
            lim = parse(limits[key]) if key in limits else None
        except ValueError as exc:
            out.append(_msg(obj, f"{where}.{key}: {exc}", "use a Kubernetes quantity such as 500m or 768Mi"))
            continue
        if req is not None and lim is not None and req > lim:
            out.append(
                _msg(
                    obj,
                    f"{where}.requests.{key} {requests[key]} exceeds limits.{key} {limits[key]}",
                    "set requests equal to limits (Guaranteed QoS)",
                )
            )
        elif key.startswith("hugepages-") and req != lim:
            out.append(_msg(obj, f"{where}: hugepages requests and limits differ", "set them equal"))
    return out


# --------------------------------------------------------------------------- Cluster


def _check_cluster_name(obj: dict[str, Any]) -> list[str]:
    name = _name(obj)
    if is_dns1035_label(name, CLUSTER_NAME_MAX):
        return []
    return [
        _msg(
            obj,
            f"name {name!r} is not a DNS-1035 label of at most {CLUSTER_NAME_MAX} characters",
            "use lowercase letters, digits and '-', start with a letter, e.g. map billing_prod to billing-prod",
        )
    ]


def _check_image(obj: dict[str, Any], major: int | None) -> list[str]:
    spec = _spec(obj)
    image, catalog = spec.get("imageName"), spec.get("imageCatalogRef")
    if image and catalog:
        return [_msg(obj, "imageName and imageCatalogRef are both set", "keep only one of them")]
    if not image:
        return []
    tag = image_tag(str(image))
    found = re.match(r"^(\d+)", tag)
    if not tag or tag == "latest" or not found:
        return [
            _msg(
                obj,
                f"imageName {image!r} has no tag that starts with the PostgreSQL major",
                "use a tag like 17.11-standard-trixie (never latest, never a bare digest)",
            )
        ]
    image_major = int(found[1])
    if major is not None and image_major != major:
        return [_msg(obj, f"imageName is PostgreSQL {image_major}, the plan targets {major}", "fix the tag")]
    if image_major < SUPPORTED_MAJORS.start:
        return [_msg(obj, f"PostgreSQL {image_major} is not supported by CNPG 1.30", "target 14 to 18")]
    return []


def _check_parameters(obj: dict[str, Any]) -> list[str]:
    params = (_spec(obj).get("postgresql") or {}).get("parameters") or {}
    out: list[str] = []
    for key, value in params.items():
        if is_fixed_parameter(key):
            field = CNPG_DEDICATED_FIELDS.get(key.lower())
            fix = f"use {field}" if field else "remove it: CNPG sets it itself"
            out.append(_msg(obj, f"postgresql.parameters.{key} is a fixed parameter", fix))
        if not isinstance(value, str):
            out.append(_msg(obj, f"postgresql.parameters.{key} is not a string", f'quote it: "{value}"'))
    return out + _check_shared_buffers(obj, params)


def _memory_budget(resources: dict[str, Any]) -> tuple[int, str] | None:
    """Bytes shared_buffers may use: hugepages when requested, else the memory request."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    huge = [v for k, v in requests.items() if str(k).startswith("hugepages-")]
    if huge:
        return sum(memory_bytes(v) for v in huge), "hugepages request"
    memory = requests.get("memory", limits.get("memory"))  # a lone limit is also the request
    return (memory_bytes(memory), f"memory request {memory}") if memory is not None else None


def _check_shared_buffers(obj: dict[str, Any], params: dict[str, Any]) -> list[str]:
    if "shared_buffers" not in params:
        return []
    try:
        budget = _memory_budget(_spec(obj).get("resources") or {})
        wanted = pg_memory_bytes(params["shared_buffers"])
    except ValueError as exc:
        return [_msg(obj, f"shared_buffers/resources: {exc}", "use units like 256MB and 768Mi")]
    if budget is None or wanted <= budget[0]:
        return []
    return [
        _msg(
            obj,
            f"shared_buffers {params['shared_buffers']} exceeds the {budget[1]}",
            "lower shared_buffers (about 25% of memory) or raise resources.requests.memory",
        )
    ]


def _check_initdb(obj: dict[str, Any], initdb: dict[str, Any], external: set[str]) -> list[str]:
    out: list[str] = []
    provider = initdb.get("localeProvider")
    if "icuLocale" in initdb and provider != "icu":
        out.append(_msg(obj, "initdb.icuLocale without localeProvider icu", "set localeProvider: icu"))
    if "icuRules" in initdb and provider != "icu":
        out.append(_msg(obj, "initdb.icuRules without localeProvider icu", "set localeProvider: icu"))
    if "builtinLocale" in initdb and provider != "builtin":
        out.append(_msg(obj, "initdb.builtinLocale without localeProvider builtin", "set localeProvider: builtin"))
    imp = initdb.get("import")
    if isinstance(imp, dict):
        out += _check_import(obj, imp, external)
    return out


def _check_import(obj: dict[str, Any], imp: dict[str, Any], external: set[str]) -> list[str]:
    out: list[str] = []
    kind = imp.get("type")
    dbs, roles = list(imp.get("databases") or []), list(imp.get("roles") or [])
    if kind == "microservice":
        if len(dbs) != 1 or "*" in dbs:
            out.append(_msg(obj, "microservice import needs exactly one database (no '*')", "use type monolith"))
        if roles:
            out.append(_msg(obj, "microservice import cannot list roles", "drop import.roles or use monolith"))
    elif kind == "monolith":
        if not dbs:
            out.append(_msg(obj, "monolith import lists no database", "list the source databases"))
        if imp.get("postImportApplicationSQL"):
            out.append(_msg(obj, "postImportApplicationSQL is microservice-only", "run it after the import"))
    for field, items in (("databases", dbs), ("roles", roles)):
        if "*" in items and len(items) > 1:
            out.append(_msg(obj, f"import.{field} mixes '*' with names", "use '*' alone or names only"))
    source = (imp.get("source") or {}).get("externalCluster")
    if source not in external:
        out.append(_msg(obj, f"import source {source!r} is not an externalClusters name", "add it"))
    return out


def _check_bootstrap(obj: dict[str, Any], external: set[str]) -> list[str]:
    bootstrap = _spec(obj).get("bootstrap") or {}
    methods = [m for m in ("initdb", "recovery", "pg_basebackup") if m in bootstrap]
    out: list[str] = []
    if len(methods) > 1:
        out.append(_msg(obj, f"several bootstrap methods {methods}", "keep exactly one"))
    if isinstance(bootstrap.get("initdb"), dict):
        out += _check_initdb(obj, bootstrap["initdb"], external)
    for method in ("pg_basebackup", "recovery"):
        source = (bootstrap.get(method) or {}).get("source")
        if source is not None and source not in external:
            out.append(_msg(obj, f"bootstrap.{method}.source {source!r} is not an externalClusters name", "add it"))
    return out


def _check_replica(obj: dict[str, Any], external: set[str]) -> list[str]:
    spec = _spec(obj)
    replica = spec.get("replica")
    if not isinstance(replica, dict):
        return []
    out: list[str] = []
    if "enabled" in replica and "primary" in replica:
        out.append(_msg(obj, "replica.enabled and replica.primary are both set", "use one of them"))
    if replica.get("source") not in external:
        out.append(_msg(obj, f"replica.source {replica.get('source')!r} is not an externalClusters name", "add it"))
    for key in ("primary", "self"):
        if key in replica and replica[key] not in external and replica[key] != _name(obj):
            out.append(_msg(obj, f"replica.{key} names no known cluster", "use an externalClusters name"))
    if replica.get("minApplyDelay") and replica.get("promotionToken"):
        out.append(_msg(obj, "replica.minApplyDelay with promotionToken", "drop minApplyDelay to promote"))
    bootstrap = spec.get("bootstrap") or {}
    if replica.get("enabled") and not ({"pg_basebackup", "recovery"} & set(bootstrap)):
        out.append(_msg(obj, "a replica cluster needs pg_basebackup or recovery bootstrap", "change bootstrap"))
    return out


def _check_external(obj: dict[str, Any]) -> tuple[set[str], list[str]]:
    names: list[str] = [str(e.get("name")) for e in _spec(obj).get("externalClusters") or []]
    out = [
        _msg(obj, f"externalClusters name {n!r} repeats", "rename one")
        for n in sorted(set(names))
        if names.count(n) > 1
    ]
    for ext in _spec(obj).get("externalClusters") or []:
        if "password" in (ext.get("connectionParameters") or {}):
            out.append(
                _msg(
                    obj,
                    f"externalClusters {ext.get('name')!r} has a password in connectionParameters",
                    "reference a Secret with externalClusters[].password",
                )
            )
    return set(names), out


def _check_roles(obj: dict[str, Any]) -> list[str]:
    roles = (_spec(obj).get("managed") or {}).get("roles") or []
    seen: set[str] = set()
    out: list[str] = []
    for role in roles:
        name = str(role.get("name", ""))
        if name in seen:
            out.append(_msg(obj, f"managed role {name!r} is listed twice", "keep one entry"))
        seen.add(name)
        if is_reserved_role(name):
            out.append(_msg(obj, f"managed role {name!r} is reserved", "drop it; CNPG or PostgreSQL owns it"))
        if role.get("superuser"):
            out.append(_msg(obj, f"managed role {name!r} is a superuser", "grant narrower attributes/roles"))
        if role.get("passwordSecret") and role.get("disablePassword"):
            out.append(_msg(obj, f"managed role {name!r}: passwordSecret with disablePassword", "keep one"))
        if int(role.get("connectionLimit", -1)) < -1:
            out.append(_msg(obj, f"managed role {name!r}: connectionLimit below -1", "use -1 for no limit"))
        if "validUntil" in role and not _is_rfc3339(str(role["validUntil"])):
            out.append(_msg(obj, f"managed role {name!r}: validUntil is not RFC 3339", "e.g. 2027-01-01T00:00:00Z"))
    return out


def _is_rfc3339(text: str) -> bool:
    if "T" not in text:
        return False
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def _check_plugins(obj: dict[str, Any]) -> list[str]:
    plugins = _spec(obj).get("plugins") or []
    out: list[str] = []
    if sum(1 for p in plugins if p.get("isWALArchiver")) > 1:
        out.append(_msg(obj, "several plugins are WAL archivers", "keep isWALArchiver on one"))
    for plugin in plugins:
        if plugin.get("name") != BARMAN_PLUGIN:
            continue
        params = plugin.get("parameters") or {}
        if not params.get("barmanObjectName"):
            out.append(_msg(obj, "barman plugin without parameters.barmanObjectName", "name the ObjectStore"))
        if not params.get("serverName"):
            out.append(
                _msg(
                    obj,
                    "barman plugin without parameters.serverName",
                    "set a serverName unique per migration attempt (avoids 'Expected empty archive')",
                )
            )
    if (_spec(obj).get("backup") or {}).get("barmanObjectStore"):
        out.append(_msg(obj, "spec.backup.barmanObjectStore is deprecated (removed in 1.31)", "use an ObjectStore"))
    return out


def _check_cluster(obj: dict[str, Any], objects: list[dict[str, Any]], major: int | None) -> list[str]:
    spec = _spec(obj)
    external, out = _check_external(obj)
    out = _check_cluster_name(obj) + _check_image(obj, major) + out
    if not isinstance(spec.get("instances"), int) or spec["instances"] < 1:
        out.append(_msg(obj, "spec.instances must be an integer ≥ 1", "set instances"))
    out += _resources(obj, "resources", spec.get("resources"))
    out += _check_parameters(obj)
    out += _check_bootstrap(obj, external)
    out += _check_replica(obj, external)
    out += _check_roles(obj)
    out += _check_plugins(obj)
    storage = spec.get("storage") or {}
    if not storage.get("size") and not storage.get("pvcTemplate"):
        out.append(_msg(obj, "storage.size is missing", "set storage.size"))
    return out


# --------------------------------------------------------------------------- other kinds


def _check_pooler(obj: dict[str, Any], objects: list[dict[str, Any]], major: int | None) -> list[str]:
    spec, name = _spec(obj), _name(obj)
    clusters = _clusters(objects, _namespace(obj))
    out: list[str] = []
    for cluster in clusters:
        taken = {_name(cluster)} | {f"{_name(cluster)}-{s}" for s in ("rw", "ro", "r", "any")}
        if name in taken:
            out.append(
                _msg(
                    obj,
                    f"name {name!r} collides with Cluster {_name(cluster)} or its Services",
                    f"rename it, e.g. {_name(cluster)}-pooler-rw",
                )
            )
    target = (spec.get("cluster") or {}).get("name")
    if clusters and target not in {_name(c) for c in clusters}:
        out.append(_msg(obj, f"spec.cluster.name {target!r} is no Cluster in this namespace", "fix the name"))
    bouncer = spec.get("pgbouncer") or {}
    if bouncer.get("image") and bouncer.get("imageCatalogRef"):
        out.append(_msg(obj, "pgbouncer.image and imageCatalogRef are both set", "keep one"))
    for key, value in (bouncer.get("parameters") or {}).items():
        if not isinstance(value, str):
            out.append(_msg(obj, f"pgbouncer.parameters.{key} is not a string", f'quote it: "{value}"'))
    for i, container in enumerate(((spec.get("template") or {}).get("spec") or {}).get("containers") or []):
        out += _resources(obj, f"template.spec.containers[{i}].resources", container.get("resources"))
    return out


def _check_object_store(obj: dict[str, Any], objects: list[dict[str, Any]], major: int | None) -> list[str]:
    spec = _spec(obj)
    out: list[str] = []
    if "serverName" in (spec.get("configuration") or {}):
        out.append(
            _msg(
                obj, "configuration.serverName is forbidden", "set serverName in the Cluster's barman plugin parameters"
            )
        )
    retention = spec.get("retentionPolicy")
    if retention is not None and not _RETENTION.match(str(retention)):
        out.append(_msg(obj, f"retentionPolicy {retention!r} is invalid", "use <n>d, <n>w or <n>m, e.g. 30d"))
    sidecar = spec.get("instanceSidecarConfiguration") or {}
    out += _resources(obj, "instanceSidecarConfiguration.resources", sidecar.get("resources"))
    return out


def _check_scheduled_backup(obj: dict[str, Any], objects: list[dict[str, Any]], major: int | None) -> list[str]:
    spec = _spec(obj)
    out: list[str] = []
    schedule = str(spec.get("schedule", ""))
    if not schedule.startswith("@") and len(schedule.split()) != 6:
        out.append(
            _msg(
                obj,
                f"schedule {schedule!r} does not have 6 fields",
                "CNPG cron starts with seconds, e.g. '0 0 2 * * *' for 02:00 daily",
            )
        )
    if "method" not in spec:
        out.append(_msg(obj, "method is not set (CRD default barmanObjectStore)", "set method: plugin"))
    if spec.get("method") == "plugin" and not (spec.get("pluginConfiguration") or {}).get("name"):
        out.append(_msg(obj, "method plugin without pluginConfiguration.name", f"name {BARMAN_PLUGIN}"))
    clusters = _clusters(objects, _namespace(obj))
    target = (spec.get("cluster") or {}).get("name")
    if clusters and target not in {_name(c) for c in clusters}:
        out.append(_msg(obj, f"spec.cluster.name {target!r} is no Cluster in this namespace", "fix the name"))
    return out


def _check_secret(obj: dict[str, Any], objects: list[dict[str, Any]], major: int | None) -> list[str]:
    out: list[str] = []
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    if "password" in keys:
        out.append(
            _msg(
                obj,
                "carries a password value",
                "remove it; fill the password out of band (sealed-secrets, external-secrets)",
            )
        )
    if obj.get("type") == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        out.append(_msg(obj, "basic-auth Secret without username", "add stringData.username"))
    return out


_CHECKS: dict[str, Callable[[dict[str, Any], list[dict[str, Any]], int | None], list[str]]] = {
    "Cluster": _check_cluster,
    "Pooler": _check_pooler,
    "ObjectStore": _check_object_store,
    "ScheduledBackup": _check_scheduled_backup,
    "Secret": _check_secret,
}


def _check_metadata(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    out: list[str] = []
    if not is_dns1123_subdomain(_name(obj)):
        out.append(_msg(obj, f"metadata.name {_name(obj)!r} is not a DNS-1123 name", "lowercase, digits, '-', '.'"))
    ns = meta.get("namespace")
    if obj.get("kind") not in _CLUSTER_SCOPED and not (isinstance(ns, str) and _DNS1123_LABEL.match(ns)):
        out.append(_msg(obj, f"metadata.namespace {ns!r} is missing or invalid", "set a DNS-1123 label"))
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(_msg(obj, f"label {key}={value!r} is not a valid label value", "≤63 of [A-Za-z0-9_.-]"))
    return out


def check_objects(objects: list[dict[str, Any]], *, major: int | None = None) -> list[str]:
    """Every admission/CEL problem of ``objects`` as "Kind ns/name: problem; fix: …" (empty = ok).

    ``major`` (the plan's target PostgreSQL major), when given, must match every image tag.
    """
    out: list[str] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for obj in objects:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")), _namespace(obj), _name(obj))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            out.append(_msg(obj, "the same object appears twice", "render it once"))
        out += _check_metadata(obj)
        check = _CHECKS.get(str(obj.get("kind")))
        if check is not None:
            out += check(obj, objects, major)
    return out
