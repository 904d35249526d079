"""Plan → CloudNativePG 1.30 objects (plain dicts) and a kustomize tree for GitOps.

Choices (see also the module docstrings of ``admission``):

* Image: ``ghcr.io/cloudnative-pg/postgresql:<major>.<minor>-<type>-trixie`` (rolling minor tag, so
  the tag starts with the major as the webhook requires); ``minimal`` is upgraded to ``standard``
  when a database uses a libc locale other than C, because only ``standard`` ships all locales.
  ``app.image`` wins when set.
* ``enableSuperuserAccess`` is true for every strategy the tool executes: it restores objects owned
  by several roles, creates subscriptions, cleans up after the promotion, or (``import``, whose copy
  runs inside the operator's own job) restores the roles, owners and grants the import drops and
  verifies the result, which needs a network superuser login.
  ``strategy.options["superuser_access"]`` (bool) overrides, e.g. after cutover.
* The initdb owner's password belongs to initdb: CNPG generates ``<cluster>-app``, or
  ``bootstrap.initdb.secret`` names the owner's ``password_secret`` when the plan has one. The
  owner is therefore never given a ``passwordSecret`` in ``managed.roles`` (two sources of truth for
  one password); it is listed there, without one, only when it has non-default attributes.
* Monolith import and physical clones carry the source password hashes. Roles with a SCRAM hash
  keep it (no ``passwordSecret``); md5/unknown ones get a Secret, because md5 hashes cannot log in
  under CNPG's default ``scram-sha-256`` hba rule.
* ``superuser`` is never true in ``managed.roles``; ``inRoles`` keeps only roles that exist on the
  target (the app's roles and ``pg_*`` predefined ones), or the operator would retry forever.
* Secrets are templates: ``username`` only, the password is filled out of band.
* Objects several apps share (same kind/namespace/name) and cluster-scoped ones (PriorityClass) go
  once into ``manifests/_shared/`` so ``kustomize build manifests/`` has no duplicate IDs.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import yaml

from consolidator.errors import ConfigError
from consolidator.fsutil import write_atomic
from consolidator.manifests.admission import (
    BARMAN_API,
    BARMAN_PLUGIN,
    CNPG_API,
    CNPG_DEDICATED_FIELDS,
    check_objects,
    is_fixed_parameter,
    is_reserved_role,
)
from consolidator.plan.model import App, AppDatabase, BackupTarget, Plan, RoleSpec

IMAGE_REPOSITORY = "ghcr.io/cloudnative-pg/postgresql"
IMAGE_OS = "trixie"
CURRENT_MINORS = {14: 24, 15: 19, 16: 15, 17: 11, 18: 6}
SOURCE_NAME = "legacy"  # externalClusters name of the legacy server
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "consolidator"
APP_LABEL = "consolidator.io/app"
STRATEGY_ANNOTATION = "consolidator.io/strategy"
FILL_ANNOTATION = "consolidator.io/fill-out-of-band"
FILL_NOTE = (
    "Template without a password: replace it with a SealedSecret/ExternalSecret of the same name, or add "
    "key 'password' out of band (cleartext or a SCRAM-SHA-256 verifier, no trailing newline). "
    "Never commit a value."
)
ADMIN_STRATEGIES = ("dump", "logical", "physical", "import")
POOLER_CPU, POOLER_MEMORY = "250m", "128Mi"  # PgBouncer is single-threaded and small
SIDECAR_CPU, SIDECAR_MEMORY = "250m", "256Mi"  # barman-cloud sidecar; equal requests/limits (#9339)
PRIORITY_VALUE = 100000
PRELOAD_EXTENSIONS = ("pg_stat_statements",)  # extensions that only work when preloaded
C_LOCALES = frozenset({"", "C", "POSIX", "C.UTF-8", "C.utf8", "C.UTF8", "ucs_basic"})
SHARED_DIR = "_shared"
KUSTOMIZATION = "kustomization.yaml"
# libpq keywords that make sense inside the cluster; file paths and secrets are left out.
CONNECTION_KEYS = (
    "host", "hostaddr", "port", "user", "dbname", "sslmode", "sslnegotiation", "application_name",
    "connect_timeout", "options", "target_session_attrs", "load_balance_hosts", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "gssencmode",
    "channel_binding", "require_auth", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "krbsrvname",
)  # fmt: skip
_APP_DIR = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


# --------------------------------------------------------------------------- naming helpers


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def dns_slug(text: str, max_len: int = 63) -> str:
    """A DNS-1123 label for ``text``; lossy mappings get a hash suffix so two names never collide."""
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
    if slug == text and 0 < len(slug) <= max_len:
        return slug
    slug = slug[: max_len - 9].strip("-")
    return f"{slug}-{_digest(text)}" if slug else _digest(text)


def label_value(text: str) -> str:
    """A valid label value (≤ 63 of ``[A-Za-z0-9_.-]``) for any text, hash-suffixed when altered."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:54].strip("-_.")
    return f"{cleaned}-{_digest(text)}" if cleaned else _digest(text)


def pooler_name(app: App) -> str:
    """``<cluster>-pooler-rw``: must differ from every Cluster and its ``-rw/-ro/-r`` Services."""
    return f"{app.cluster_name}-pooler-rw"


def object_store_name(app: App) -> str:
    return f"{app.cluster_name}-store"


def server_name(plan: Plan, app: App) -> str:
    """Barman ``serverName`` unique per migration attempt (avoids "Expected empty archive").

    ``backup.attempt`` when set, else the plan's creation time: a re-plan is a new attempt.
    """
    backup = plan.target.backup
    attempt = (backup.attempt if backup else "") or re.sub(r"[^0-9a-z]", "", plan.created_at.lower())
    return f"{app.cluster_name}-{dns_slug(attempt, 40)}" if attempt else app.cluster_name


def role_secret_name(app: App, role: RoleSpec) -> str:
    """The plan's ``password_secret`` or ``<cluster>-role-<slug>``; never a CNPG-owned name."""
    return role.password_secret or f"{app.cluster_name}-role-{dns_slug(role.name, 40)}"


# --------------------------------------------------------------------------- value helpers


def _val(item: Any) -> Any:
    """The payload of a plan ``Value`` (tolerates a bare value in hand-edited plans)."""
    return getattr(item, "value", item)


def _quantity(value: Any) -> str:
    """A Kubernetes quantity string; floats become millicores (0.5 → ``500m``)."""
    if isinstance(value, float):
        milli = round(value * 1000)
        return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
    return str(value)


def guc_string(value: Any) -> str:
    """``postgresql.parameters`` values must be strings: booleans as on/off, 4.0 as ``4``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _guaranteed(cpu: Any, memory: Any) -> dict[str, Any]:
    """requests = limits for CPU and memory: Guaranteed QoS keeps the postmaster off the OOM list."""
    amounts = {"cpu": _quantity(cpu), "memory": _quantity(memory)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _rfc3339(text: str | None) -> str | None:
    """PostgreSQL ``rolvaliduntil`` → RFC 3339 UTC; ``infinity`` means no expiry (None)."""
    raw = (text or "").strip()
    if raw.lower() in ("", "infinity"):
        return None
    if raw.lower() == "-infinity":
        return "1970-01-01T00:00:00Z"
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1))
    except ValueError as exc:
        raise ConfigError(f"role validUntil {raw!r} is not a timestamp", hint="use ISO 8601") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- source conninfo


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """libpq URI or ``key=value`` conninfo → parameters (password included; callers drop it)."""
    text = conninfo.strip()
    if re.match(r"^postgres(ql)?://", text):
        return _parse_uri(text)
    return _parse_keywords(text)


def _parse_uri(uri: str) -> dict[str, str]:
    match = re.match(r"^postgres(?:ql)?://([^/?#]*)(?:/([^?#]*))?(?:\?([^#]*))?", uri)
    if not match:  # pragma: no cover - the prefix check guarantees a match
        raise ConfigError(f"bad connection URI {uri!r}")
    netloc, dbname, query = match[1], match[2], match[3]
    params: dict[str, str] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        params.update({k: unquote(v) for k, v in (("user", user), ("password", password)) if v})
    hosts, ports = [], []
    for spec in filter(None, netloc.split(",")):
        host, port = _split_host_port(spec)
        hosts.append(unquote(host))
        ports.append(port)
    if any(hosts):
        params["host"] = ",".join(hosts)
    if any(ports):
        params["port"] = ",".join(p or "5432" for p in ports)
    if dbname:
        params["dbname"] = unquote(dbname)
    params.update(parse_qsl(query or "", keep_blank_values=True))
    return params


def _split_host_port(spec: str) -> tuple[str, str]:
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = spec.partition(":")
    return host, port


_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)+))")


def _parse_keywords(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while text[pos:].strip():
        match = _KEYWORD.match(text, pos)
        if not match:
            raise ConfigError(f"cannot parse conninfo near {text[pos : pos + 20]!r}", hint="use key=value pairs")
        raw = match[2] if match[2] is not None else match[3]
        params[match[1]] = re.sub(r"\\(.)", r"\1", raw)
        pos = match.end()
    return params


def source_connection_parameters(plan: Plan) -> dict[str, str]:
    """``externalClusters[].connectionParameters`` for the legacy server: never a password."""
    parsed = parse_conninfo(plan.source.conninfo)
    host = parsed.get("host") or parsed.get("hostaddr") or ""
    if not host or host.startswith("/"):
        raise ConfigError(
            "plan.source.conninfo has no TCP host: the cluster cannot reach a Unix socket",
            hint="write the legacy server's DNS name or IP in the conninfo (host=…)",
        )
    if plan.source.cluster_address:
        host, port = _split_host_port(plan.source.cluster_address)
        parsed.pop("hostaddr", None)
        parsed["host"] = host
        if port:
            parsed["port"] = port
    parsed.setdefault("user", "postgres")
    parsed.setdefault("dbname", "postgres")
    return {k: parsed[k] for k in CONNECTION_KEYS if k in parsed}


# --------------------------------------------------------------------------- per-app context


@dataclass
class _Ctx:
    """What every object of one app needs, decided once."""

    plan: Plan
    app: App
    labels: dict[str, str]
    import_type: str | None  # microservice | monolith | None
    owner: str | None  # initdb owner (None: roles come from the source)
    carries_hashes: bool  # monolith import / physical clone keep source password hashes
    role_secrets: dict[str, str] = field(default_factory=dict)  # role → Secret (managed roles)
    owner_secret: str | None = None  # bootstrap.initdb.secret

    @property
    def cluster(self) -> str:
        return self.app.cluster_name

    @property
    def namespace(self) -> str:
        return self.app.namespace

    @property
    def first(self) -> AppDatabase:
        return self.app.databases[0]

    @property
    def strategy(self) -> str:
        return self.app.strategy.name

    @property
    def options(self) -> dict[str, Any]:
        return self.app.strategy.options or {}

    @property
    def needs_source(self) -> bool:
        return self.import_type is not None or self.strategy in ("logical", "physical")


def _uses_import(app: App) -> bool:
    options = app.strategy.options or {}
    return app.strategy.name == "import" or (app.strategy.name == "logical" and bool(options.get("schema_only_import")))


def import_type(app: App) -> str:
    """microservice for one database owned by the app's only role, else monolith (§12.1)."""
    forced = (app.strategy.options or {}).get("import_type")
    if forced in ("microservice", "monolith"):
        return str(forced)
    roles = {r.name for r in app.roles if not is_reserved_role(r.name)}
    if len(app.databases) == 1 and roles <= {app.databases[0].owner}:
        return "microservice"
    return "monolith"


def _context(plan: Plan, app: App) -> _Ctx:
    if not app.databases:
        raise ConfigError(f"app {app.name} has no database", hint="add one to the plan or drop the app")
    if app.strategy.name not in ("dump", "logical", "physical", "import"):
        raise ConfigError(f"app {app.name}: unknown strategy {app.strategy.name!r}")
    if app.strategy.name == "physical" and plan.server.major and plan.server.major != plan.target.version:
        raise ConfigError(
            f"app {app.name}: a physical clone needs the source major {plan.server.major}, "
            f"the plan targets {plan.target.version}",
            hint="use import, dump or logical to change majors",
        )
    kind = import_type(app) if _uses_import(app) else None
    keeps_names = kind == "monolith" or app.strategy.name == "physical"
    renamed = [d.source for d in app.databases if d.target != d.source]
    if keeps_names and renamed:
        raise ConfigError(
            f"app {app.name}: databases {renamed} would be renamed, but a "
            f"{'physical clone' if kind is None else 'monolith import'} keeps source names",
            hint="set target = source for them, or use a microservice import/dump per database",
        )
    ctx = _Ctx(
        plan=plan,
        app=app,
        labels={MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: label_value(app.name)},
        import_type=kind,
        owner=None if keeps_names else app.databases[0].owner,
        carries_hashes=keeps_names,
    )
    _assign_secrets(ctx)
    return ctx


def _assign_secrets(ctx: _Ctx) -> None:
    """Which login roles get a password Secret (see the module docstring)."""
    for role in ctx.app.roles:
        if not role.login or is_reserved_role(role.name):
            continue
        if role.name == ctx.owner:
            ctx.owner_secret = role.password_secret  # None: CNPG generates <cluster>-app
        elif not (ctx.carries_hashes and role.password_type.lower().startswith("scram")):
            ctx.role_secrets[role.name] = role_secret_name(ctx.app, role)


def _meta(ctx: _Ctx, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ctx.namespace, "labels": dict(ctx.labels)}
    if annotations:
        meta["annotations"] = annotations
    return meta


# --------------------------------------------------------------------------- Cluster


def image_for(plan: Plan, app: App) -> str:
    """Operand image for the plan's major; ``app.image`` overrides."""
    if app.image:
        return app.image
    major = plan.target.version
    if major not in CURRENT_MINORS:
        raise ConfigError(
            f"PostgreSQL {major} is not a CNPG 1.30 target",
            hint=f"target one of {sorted(CURRENT_MINORS)} or set the app's image",
        )
    image_type = plan.target.image_type or "standard"
    if image_type == "minimal" and any(_needs_libc_locales(d) for d in app.databases):
        image_type = "standard"  # minimal has only C/C.UTF-8 + ICU
    return f"{IMAGE_REPOSITORY}:{major}.{CURRENT_MINORS[major]}-{image_type}-{IMAGE_OS}"


def _needs_libc_locales(db: AppDatabase) -> bool:
    return db.collate not in C_LOCALES or db.ctype not in C_LOCALES


def _locale(db: AppDatabase) -> dict[str, Any]:
    """initdb encoding and locale from the source database (CNPG's default would be C)."""
    out: dict[str, Any] = {"encoding": db.encoding or "UTF8"}
    provider = (db.locale_provider or "libc").lower()
    if provider in ("icu", "i"):
        out.update(localeProvider="icu", icuLocale=db.icu_locale or "und")
    elif provider in ("builtin", "b"):
        out.update(localeProvider="builtin", builtinLocale=db.icu_locale or "C.UTF-8")
    out.update(localeCollate=db.collate or "C", localeCType=db.ctype or "C")
    return out


def _import_section(ctx: _Ctx) -> dict[str, Any]:
    kind = ctx.import_type or "microservice"
    sources = [ctx.first.source] if kind == "microservice" else [d.source for d in ctx.app.databases]
    section: dict[str, Any] = {"type": kind, "databases": sources, "source": {"externalCluster": SOURCE_NAME}}
    roles = [r.name for r in ctx.app.roles if not is_reserved_role(r.name)]
    if kind == "monolith" and roles:
        section["roles"] = roles
    if ctx.strategy == "logical" or ctx.options.get("schema_only"):
        section["schemaOnly"] = True  # data follows through the subscription
    jobs = ctx.options.get("jobs")
    if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs > 1:
        section["pgDumpExtraOptions"] = [f"--jobs={jobs}"]
        section["pgRestoreExtraOptions"] = [f"--jobs={jobs}"]
    return section


def _bootstrap(ctx: _Ctx) -> dict[str, Any]:
    if ctx.strategy == "physical":
        # No database/owner: CNPG would reset the owner's cloned password at promotion.
        return {"pg_basebackup": {"source": SOURCE_NAME}}
    initdb: dict[str, Any] = {}
    if ctx.owner is not None:
        initdb.update(database=ctx.first.target, owner=ctx.owner)
        if ctx.owner_secret:
            initdb["secret"] = {"name": ctx.owner_secret}
    initdb.update(_locale(ctx.first))
    if ctx.import_type is not None:
        initdb["import"] = _import_section(ctx)
    return {"initdb": initdb}


def _postgresql(ctx: _Ctx) -> dict[str, Any]:
    params: dict[str, str] = {}
    preload: list[str] = []
    for key, item in ctx.app.sizing.parameters.items():
        value = _val(item)
        if value is None:
            continue
        if key.lower() == "shared_preload_libraries":  # fixed GUC with a dedicated field
            preload += [lib.strip() for lib in str(value).split(",") if lib.strip()]
        elif is_fixed_parameter(key):
            field_name = CNPG_DEDICATED_FIELDS.get(key.lower(), "nothing: CNPG sets it")
            raise ConfigError(
                f"app {ctx.app.name}: parameter {key} is fixed by CloudNativePG",
                hint=f"remove it from the plan; use {field_name}",
            )
        else:
            params[key] = guc_string(value)
    max_connections = _val(ctx.app.sizing.max_connections)
    if "max_connections" not in params and max_connections is not None:
        params["max_connections"] = guc_string(max_connections)
    preload += [e for e in ctx.app.extensions if e in PRELOAD_EXTENSIONS]
    out: dict[str, Any] = {"parameters": dict(sorted(params.items()))}
    if preload:
        out["shared_preload_libraries"] = list(dict.fromkeys(preload))
    return out


def _has_custom_attributes(role: RoleSpec, known: set[str]) -> bool:
    """Anything initdb would not give the owner by itself (LOGIN, INHERIT, no limits)."""
    return bool(
        not role.login
        or role.createdb
        or role.createrole
        or role.replication
        or role.bypassrls
        or not role.inherit
        or role.connection_limit != -1
        or _rfc3339(role.valid_until)
        or _in_roles(role, known)
    )


def _in_roles(role: RoleSpec, known: set[str]) -> list[str]:
    return [m for m in dict.fromkeys(role.member_of) if m != role.name and (m in known or m.startswith("pg_"))]


def _managed_role(ctx: _Ctx, role: RoleSpec, known: set[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": role.name,
        "ensure": "present",
        "login": role.login,
        "superuser": False,  # never: the source's SUPERUSER is stripped on purpose
        "createdb": role.createdb,
        "createrole": role.createrole,
        "replication": role.replication,
        "bypassrls": role.bypassrls,
        "inherit": role.inherit,
        "connectionLimit": role.connection_limit,
    }
    valid_until = _rfc3339(role.valid_until)
    if valid_until:
        entry["validUntil"] = valid_until
    in_roles = _in_roles(role, known)
    if in_roles:
        entry["inRoles"] = in_roles
    if role.name in ctx.role_secrets:
        entry["passwordSecret"] = {"name": ctx.role_secrets[role.name]}
    return entry


def _managed_roles(ctx: _Ctx) -> list[dict[str, Any]]:
    known = {r.name for r in ctx.app.roles} | ({ctx.owner} if ctx.owner else set())
    roles = []
    for role in ctx.app.roles:
        if is_reserved_role(role.name):
            continue
        if role.name == ctx.owner and not _has_custom_attributes(role, known):
            continue
        roles.append(_managed_role(ctx, role, known))
    return roles


def _external_cluster(ctx: _Ctx) -> dict[str, Any]:
    params = source_connection_parameters(ctx.plan)
    if ctx.strategy == "logical":
        params["dbname"] = ctx.first.source  # subscriptions connect to the published database
    return {
        "name": SOURCE_NAME,
        "connectionParameters": params,
        "password": {"name": ctx.plan.source.password_secret, "key": "password"},
    }


def _superuser_access(ctx: _Ctx) -> bool:
    override = ctx.options.get("superuser_access")
    if isinstance(override, bool):
        return override
    return ctx.strategy in ADMIN_STRATEGIES


def _storage(size: Any, storage_class: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"size": _quantity(size)}
    if storage_class:
        out["storageClass"] = storage_class
    return out


def _cluster(ctx: _Ctx) -> dict[str, Any]:
    app, target, sizing = ctx.app, ctx.plan.target, ctx.app.sizing
    instances = int(_val(sizing.instances))
    spec: dict[str, Any] = {
        "description": f"{app.name}: {', '.join(d.source for d in app.databases)} ({ctx.strategy})",
        "instances": instances,
        "imageName": image_for(ctx.plan, app),
        "enableSuperuserAccess": _superuser_access(ctx),
    }
    if instances == 1:
        spec["enablePDB"] = False  # a PDB on a single instance blocks every node drain
    if instances > 1:
        spec["affinity"] = {
            "enablePodAntiAffinity": True,
            "podAntiAffinityType": "preferred",
            "topologyKey": "kubernetes.io/hostname",
        }
    if target.priority_class:
        spec["priorityClassName"] = target.priority_class
    spec["inheritedMetadata"] = {"labels": dict(ctx.labels)}
    spec["postgresql"] = _postgresql(ctx)
    spec["bootstrap"] = _bootstrap(ctx)
    if ctx.strategy == "physical":
        spec["replica"] = {"enabled": True, "source": SOURCE_NAME}
    if ctx.needs_source:
        spec["externalClusters"] = [_external_cluster(ctx)]
    roles = _managed_roles(ctx)
    if roles:
        spec["managed"] = {"roles": roles}
    spec["resources"] = _guaranteed(_val(sizing.cpu), _val(sizing.memory))
    spec["storage"] = _storage(_val(sizing.storage), target.storage_class)
    wal = _val(sizing.wal_storage)
    if wal is not None:
        spec["walStorage"] = _storage(wal, target.storage_class)
    spec["monitoring"] = {"enablePodMonitor": False, "disableDefaultQueries": False}
    if target.backup is not None:
        spec["plugins"] = [
            {
                "name": BARMAN_PLUGIN,
                "isWALArchiver": True,
                "parameters": {
                    "barmanObjectName": object_store_name(app),
                    "serverName": server_name(ctx.plan, app),
                },
            }
        ]
    annotations = {STRATEGY_ANNOTATION: ctx.strategy}
    return {"apiVersion": CNPG_API, "kind": "Cluster", "metadata": _meta(ctx, ctx.cluster, annotations), "spec": spec}


# --------------------------------------------------------------------------- companions


def _secret_template(ctx: _Ctx, name: str, username: str, purpose: str, *, shared: bool = False) -> dict[str, Any]:
    """basic-auth Secret with ``username`` only; ``shared`` ones carry no app label (one per namespace)."""
    meta = _meta(ctx, name, {FILL_ANNOTATION: FILL_NOTE, "consolidator.io/purpose": purpose})
    if shared:
        meta["labels"].pop(APP_LABEL, None)
    meta["labels"]["cnpg.io/reload"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": username},
    }


def _secrets(ctx: _Ctx) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if ctx.needs_source:
        user = source_connection_parameters(ctx.plan)["user"]
        secret = ctx.plan.source.password_secret
        out.append(_secret_template(ctx, secret, user, "legacy source login", shared=True))
    if ctx.owner and ctx.owner_secret:
        out.append(_secret_template(ctx, ctx.owner_secret, ctx.owner, "database owner (initdb)"))
    for role, secret in ctx.role_secrets.items():
        out.append(_secret_template(ctx, secret, role, "managed role password"))
    return out


def _pooler(ctx: _Ctx) -> dict[str, Any]:
    pooler = ctx.app.sizing.pooler
    params = {
        key: str(value)
        for key, value in (
            ("default_pool_size", pooler.default_pool_size),
            ("max_client_conn", pooler.max_client_conn),
        )
        if value
    }
    bouncer: dict[str, Any] = {"poolMode": pooler.pool_mode or "session"}
    if params:
        bouncer["parameters"] = params
    resources = _guaranteed(
        getattr(pooler, "cpu", None) or POOLER_CPU, getattr(pooler, "memory", None) or POOLER_MEMORY
    )
    return {
        "apiVersion": CNPG_API,
        "kind": "Pooler",
        "metadata": _meta(ctx, pooler_name(ctx.app)),
        "spec": {
            "cluster": {"name": ctx.cluster},
            "type": "rw",
            "instances": int(pooler.instances),
            "pgbouncer": bouncer,
            "template": {
                "metadata": {"labels": dict(ctx.labels)},
                "spec": {"containers": [{"name": "pgbouncer", "resources": resources}]},
            },
        },
    }


def _object_store(ctx: _Ctx, backup: BackupTarget) -> dict[str, Any]:
    credentials = backup.credentials_secret
    configuration: dict[str, Any] = {"destinationPath": backup.destination_path}
    if backup.endpoint_url:
        configuration["endpointURL"] = backup.endpoint_url
    configuration["s3Credentials"] = {
        "accessKeyId": {"name": credentials, "key": "ACCESS_KEY_ID"},
        "secretAccessKey": {"name": credentials, "key": "ACCESS_SECRET_KEY"},
    }
    configuration["wal"] = {"compression": "gzip", "maxParallel": 4}
    configuration["data"] = {"compression": "gzip"}
    resources = _guaranteed(
        getattr(backup, "sidecar_cpu", None) or SIDECAR_CPU, getattr(backup, "sidecar_memory", None) or SIDECAR_MEMORY
    )
    return {
        "apiVersion": BARMAN_API,
        "kind": "ObjectStore",
        "metadata": _meta(ctx, object_store_name(ctx.app)),
        "spec": {
            "retentionPolicy": backup.retention,
            "configuration": configuration,
            "instanceSidecarConfiguration": {"resources": resources},
        },
    }


def _scheduled_backup(ctx: _Ctx, backup: BackupTarget) -> dict[str, Any]:
    return {
        "apiVersion": CNPG_API,
        "kind": "ScheduledBackup",
        "metadata": _meta(ctx, f"{ctx.cluster}-backup"),
        "spec": {
            "cluster": {"name": ctx.cluster},
            "schedule": backup.schedule,  # 6 fields, seconds first
            "method": "plugin",  # the CRD default is still barmanObjectStore
            "pluginConfiguration": {"name": BARMAN_PLUGIN},
            "immediate": True,
            "backupOwnerReference": "self",
        },
    }


def _pod_monitors(ctx: _Ctx) -> list[dict[str, Any]]:
    """PodMonitors replace the deprecated ``enablePodMonitor`` (cluster and pooler metrics)."""
    selectors = [(ctx.cluster, {"cnpg.io/cluster": ctx.cluster, "cnpg.io/podRole": "instance"})]
    if ctx.app.sizing.pooler.enabled:
        selectors.append((pooler_name(ctx.app), {"cnpg.io/poolerName": pooler_name(ctx.app)}))
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(ctx, name),
            "spec": {"selector": {"matchLabels": labels}, "podMetricsEndpoints": [{"port": "metrics"}]},
        }
        for name, labels in selectors
    ]


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _namespaces(names: list[str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}]
        }
    }


def _network_policy(ctx: _Ctx) -> dict[str, Any]:
    """Ingress to the instances: own pods (replication), operator (status 8000), pooler and apps."""
    target = ctx.plan.target
    rules: list[dict[str, Any]] = [
        {"from": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": ctx.cluster}}}], "ports": _tcp(5432)},
        {"from": [_namespaces([target.operator_namespace])], "ports": _tcp(5432, 8000)},
    ]
    if ctx.app.sizing.pooler.enabled:
        pooler = {"podSelector": {"matchLabels": {"cnpg.io/poolerName": pooler_name(ctx.app)}}}
        rules.append({"from": [pooler], "ports": _tcp(5432)})
    app_namespaces = sorted(set(target.app_namespaces or [ctx.namespace]))
    rules.append({"from": [_namespaces(app_namespaces)], "ports": _tcp(5432)})
    if target.pod_monitor:
        rules.append({"from": [{"namespaceSelector": {}}], "ports": _tcp(9187)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(ctx, f"{ctx.cluster}-ingress"),
        "spec": {
            # instances only: Pooler pods keep their own (unrestricted) ingress
            "podSelector": {"matchLabels": {"cnpg.io/cluster": ctx.cluster, "cnpg.io/podRole": "instance"}},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def _priority_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "value": PRIORITY_VALUE,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "PostgreSQL clusters moved by consolidator: scheduled before ordinary workloads",
    }


def render_app(plan: Plan, app: App) -> list[dict[str, Any]]:
    """All objects of one app, dependencies first (Secrets and ObjectStore before the Cluster)."""
    ctx = _context(plan, app)
    backup = plan.target.backup
    objects: list[dict[str, Any]] = []
    if plan.target.priority_class:
        objects.append(_priority_class(plan.target.priority_class))
    objects += _secrets(ctx)
    if backup is not None:
        objects.append(_object_store(ctx, backup))
    objects.append(_cluster(ctx))
    if app.sizing.pooler.enabled:
        objects.append(_pooler(ctx))
    if backup is not None:
        objects.append(_scheduled_backup(ctx, backup))
    if plan.target.pod_monitor:
        objects += _pod_monitors(ctx)
    if plan.target.network_policy:
        objects.append(_network_policy(ctx))
    return objects


# --------------------------------------------------------------------------- files


def file_name(obj: dict[str, Any]) -> str:
    """``<kind-lower>-<name>.yaml``: one object per file, stable across runs."""
    return f"{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def kustomization_for(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """A Kustomization listing one file per object, in render order."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [file_name(o) for o in objects],
    }


def _identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace", "")), str(meta["name"]))


def _app_dir_problems(plan: Plan) -> list[str]:
    """Cluster names become directories under ``manifests/``: valid DNS labels, no repeats."""
    seen: set[str] = set()
    out: list[str] = []
    for app in plan.apps:
        if not _APP_DIR.match(app.cluster_name):
            out.append(f"App {app.name!r}: cluster name {app.cluster_name!r} cannot be a manifests directory; "
                       "fix: use lowercase letters, digits and '-'")
        elif app.cluster_name in seen:
            out.append(f"App {app.name!r}: cluster name {app.cluster_name!r} used twice; fix: rename one")
        seen.add(app.cluster_name)
    return out


def check_plan(plan: Plan) -> list[str]:
    """Admission problems of everything :func:`write_manifests` would write (empty = ok)."""
    problems = _app_dir_problems(plan)
    if problems:  # no layout possible: check each app's objects once per identity
        unique = {_identity(o): o for app in plan.apps for o in render_app(plan, app)}
        objects = list(unique.values())
    else:
        objects = [obj for objects in layout(plan).values() for obj in objects]
    return problems + check_objects(objects, major=plan.target.version)


def _without_app_label(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy fit for ``_shared``: it belongs to no single app."""
    labels = {k: v for k, v in (obj.get("metadata", {}).get("labels") or {}).items() if k != APP_LABEL}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


def layout(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Directory → objects: one per app, plus ``_shared`` for cluster-scoped and shared objects."""
    problems = _app_dir_problems(plan)
    if problems:
        raise ConfigError(problems[0].split("; fix: ")[0], hint="rename the app in the plan")
    per_app = {app.cluster_name: render_app(plan, app) for app in plan.apps}
    owners: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for objects in per_app.values():
        for obj in objects:
            owners.setdefault(_identity(obj), []).append(obj)
    shared: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for key, copies in owners.items():
        if len(copies) > 1 or not key[2]:
            neutral = [_without_app_label(c) for c in copies]
            if any(c != neutral[0] for c in neutral):
                raise ConfigError(f"{key[1]} {key[2]}/{key[3]} differs between apps", hint="give them distinct names")
            shared[key] = neutral[0] if len(copies) > 1 else copies[0]
    out = {SHARED_DIR: list(shared.values())} if shared else {}
    for name, objects in per_app.items():
        out[name] = [o for o in objects if _identity(o) not in shared]
    return out


class _PlainDumper(yaml.SafeDumper):
    """SafeDumper without ``&id001`` anchors: reviewers and kustomize patches expect plain YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(obj: dict[str, Any]) -> str:
    """One object as block YAML in render order (``sort_keys=False``), UTF-8 kept readable."""
    return yaml.dump(
        obj, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )


def _prune_files(directory: Path, keep: set[str]) -> None:
    for path in directory.iterdir():
        if path.is_file() and path.suffix in (".yaml", ".yml", ".tmp") and path.name not in keep:
            path.unlink()


def _prune_dirs(root: Path, keep: set[str]) -> None:
    """Remove app directories this tool wrote earlier (they hold a kustomization) and no longer needs."""
    for path in root.iterdir():
        if path.name in keep or path.is_symlink() or not path.is_dir():
            continue
        if (path / KUSTOMIZATION).is_file():
            shutil.rmtree(path)


def write_manifests(plan: Plan, out_dir: Path) -> list[Path]:
    """Write ``out_dir/manifests/<app>/…`` with kustomizations; prune stale files; return the paths."""
    root = Path(out_dir) / "manifests"
    tree = layout(plan)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for directory, objects in tree.items():
        target = root / directory
        target.mkdir(exist_ok=True)
        for obj in objects:
            path = target / file_name(obj)
            write_atomic(path, to_yaml(obj))
            written.append(path)
        write_atomic(target / KUSTOMIZATION, to_yaml(kustomization_for(objects)))
        written.append(target / KUSTOMIZATION)
        _prune_files(target, {file_name(o) for o in objects} | {KUSTOMIZATION})
    top = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": list(tree)}
    write_atomic(root / KUSTOMIZATION, to_yaml(top))
    written.append(root / KUSTOMIZATION)
    _prune_dirs(root, set(tree))
    return written
