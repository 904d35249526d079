"""Kubernetes switch hooks of a plan (``apps[].hooks.kubernetes``): parsed, validated, resolved.

```yaml
hooks:
  kubernetes:
    patch:
      - {kind: ConfigMap, name: mastodon-env, namespace: apps, key: DB_HOST, value: "{rw_host}"}
      - {kind: Secret, name: mastodon-db, namespace: apps, key: DB_PASS,
         from_secret: {name: "{app_secret}", key: password}}
    restart:
      - {kind: Deployment, name: mastodon-web, namespace: apps}
    pause_pooler: true      # default: true when the app has a Pooler
    rollout_timeout: 600    # seconds a restarted workload may take to roll out
```

``value`` and ``from_secret.name``/``namespace`` may use the placeholders ``{cluster}``,
``{namespace}`` (the cluster's), ``{rw_host}`` (``<cluster>-rw.<namespace>.svc``), ``{pooler_host}``
(``<cluster>-pooler-rw.<namespace>.svc``) and ``{app_secret}`` (``<cluster>-app``); ``{{``/``}}``
are literal braces. ``namespace`` defaults to the cluster's. ``from_secret`` copies one key of
another Secret (default: in the cluster's namespace) and only into a Secret, never a ConfigMap.
The plan holds no secret value: a patch either names a plain value or a Secret key to copy.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from consolidator.errors import ConfigError, PlanValidationError
from consolidator.plan.model import App

PLACEHOLDERS = ("cluster", "namespace", "rw_host", "pooler_host", "app_secret")
PATCH_KINDS = ("ConfigMap", "Secret")
RESTART_KINDS = ("Deployment", "StatefulSet")
DEFAULT_ROLLOUT_TIMEOUT = 600.0
_TOP_KEYS = ("patch", "restart", "pause_pooler", "rollout_timeout")
_PATCH_KEYS = ("kind", "name", "namespace", "key", "value", "from_secret")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str
    namespace: str


@dataclass(frozen=True)
class KeyPatch:
    """Set ``key`` of a ConfigMap/Secret to ``value``, or to ``from_secret``'s key (values never logged)."""

    kind: str
    name: str
    namespace: str
    key: str
    value: str | None = None
    from_secret: SecretRef | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} key {self.key}"


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class KubeSwitch:
    patches: tuple[KeyPatch, ...] = ()
    restarts: tuple[Workload, ...] = ()
    pause_pooler: bool | None = None  # None: pause when the app has a Pooler
    rollout_timeout: float = DEFAULT_ROLLOUT_TIMEOUT


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "…"


def _mapping(data: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PlanValidationError(path, f"{_describe(data)} is not a mapping")
    for key in data:
        if key not in allowed:
            raise PlanValidationError(f"{path}.{key}", f"unknown key (allowed: {', '.join(allowed)})")
    return data


def _string(data: dict[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise PlanValidationError(f"{path}.{key}", "is missing")
        return None
    if not isinstance(value, str) or not value:
        raise PlanValidationError(f"{path}.{key}", f"{_describe(value)} is not a non-empty string",
                                  hint="quote numbers and booleans: Kubernetes keys hold strings")  # fmt: skip
    return value


def _template(text: str, path: str) -> str:
    """Refuse unknown placeholders, conversions and unbalanced braces."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise PlanValidationError(path, f"{_describe(text)}: {exc} (write {{{{ and }}}} for literal braces)") \
            from None  # fmt: skip
    for _, field_name, spec, conversion in fields:
        if field_name is None:
            continue
        if field_name not in PLACEHOLDERS or spec or conversion:
            raise PlanValidationError(path, f"{_describe(text)}: unknown placeholder {{{field_name}}}",
                                      hint="placeholders: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    return text


def _name(value: str, path: str, *, label: bool = False) -> str:
    if "{" in value:
        return _template(value, path)
    pattern, limit = (_DNS_LABEL, 63) if label else (_DNS_SUBDOMAIN, 253)
    if len(value) > limit or not pattern.match(value):
        what = "a DNS-1123 label" if label else "a DNS-1123 subdomain"
        raise PlanValidationError(path, f"{_describe(value)} is not {what} (lowercase letters, digits, '-')")
    return value


def parse_kube_switch(data: Any, path: str, default_namespace: str) -> KubeSwitch:
    """The structured hooks, placeholders unresolved; errors name the key path."""
    data = _mapping(data, path, _TOP_KEYS)
    patches: list[KeyPatch] = []
    seen: set[tuple[str, str, str, str]] = set()
    raw_patches = data.get("patch") or []
    if not isinstance(raw_patches, list):
        raise PlanValidationError(f"{path}.patch", f"{_describe(raw_patches)} is not a list")
    for i, raw in enumerate(raw_patches):
        where = f"{path}.patch[{i}]"
        entry = _mapping(raw, where, _PATCH_KEYS)
        kind = _string(entry, "kind", where)
        if kind not in PATCH_KINDS:
            raise PlanValidationError(f"{where}.kind", f"{_describe(kind)} is not one of {', '.join(PATCH_KINDS)}")
        name = _name(str(_string(entry, "name", where)), f"{where}.name")
        namespace = _name(_string(entry, "namespace", where, required=False) or default_namespace,
                          f"{where}.namespace", label=True)  # fmt: skip
        key = str(_string(entry, "key", where))
        if len(key) > 253 or not _DATA_KEY.match(key):
            raise PlanValidationError(f"{where}.key", f"{_describe(key)} is not a valid key (letters, digits, '-._')")
        if ("value" in entry) == ("from_secret" in entry):
            raise PlanValidationError(where, "needs exactly one of value or from_secret")
        value = source = None
        if "value" in entry:
            value = _template(str(_string(entry, "value", where)), f"{where}.value")
        else:
            if kind != "Secret":
                raise PlanValidationError(f"{where}.from_secret", "copies a secret value: only into a Secret",
                                          hint="a ConfigMap would expose it; patch a Secret key instead")
            ref_path = f"{where}.from_secret"
            ref = _mapping(entry["from_secret"], ref_path, ("name", "key", "namespace"))
            ref_key = str(_string(ref, "key", ref_path))
            if not _DATA_KEY.match(ref_key):
                raise PlanValidationError(f"{ref_path}.key", f"{_describe(ref_key)} is not a valid key")
            source = SecretRef(name=_name(str(_string(ref, "name", ref_path)), f"{ref_path}.name"), key=ref_key,
                               namespace=_name(_string(ref, "namespace", ref_path, required=False) or "{namespace}",
                                               f"{ref_path}.namespace", label=True))  # fmt: skip
        identity = (kind, namespace, name, key)
        if identity in seen:
            raise PlanValidationError(where, f"{kind} {namespace}/{name} key {key} is patched twice")
        seen.add(identity)
        patches.append(KeyPatch(kind, name, namespace, key, value, source))
    restarts: list[Workload] = []
    raw_restarts = data.get("restart") or []
    if not isinstance(raw_restarts, list):
        raise PlanValidationError(f"{path}.restart", f"{_describe(raw_restarts)} is not a list")
    for i, raw in enumerate(raw_restarts):
        where = f"{path}.restart[{i}]"
        entry = _mapping(raw, where, ("kind", "name", "namespace"))
        kind = _string(entry, "kind", where)
        if kind not in RESTART_KINDS:
            raise PlanValidationError(f"{where}.kind", f"{_describe(kind)} is not one of {', '.join(RESTART_KINDS)}")
        workload = Workload(str(kind), _name(str(_string(entry, "name", where)), f"{where}.name"),
                            _name(_string(entry, "namespace", where, required=False) or default_namespace,
                                  f"{where}.namespace", label=True))  # fmt: skip
        if workload in restarts:
            raise PlanValidationError(where, f"{workload.ref} is restarted twice")
        restarts.append(workload)
    pause = data.get("pause_pooler")
    if pause is not None and not isinstance(pause, bool):
        raise PlanValidationError(f"{path}.pause_pooler", f"{_describe(pause)} is not true or false")
    timeout = data.get("rollout_timeout", DEFAULT_ROLLOUT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise PlanValidationError(f"{path}.rollout_timeout", f"{_describe(timeout)} is not a positive number")
    return KubeSwitch(tuple(patches), tuple(restarts), pause, float(timeout))


def check_app_hooks(app: dict[str, Any], path: str, provider: str) -> None:
    """Validation of ``apps[i].hooks.kubernetes`` when a plan is loaded (exit 3 with the key path)."""
    hooks = app.get("hooks") or {}
    if not isinstance(hooks, dict) or "kubernetes" not in hooks:
        return
    where = f"{path}.hooks.kubernetes"
    if provider != "cnpg":
        raise PlanValidationError(where, f"Kubernetes hooks need target.provider cnpg (this plan targets {provider})",
                                  hint="use shell hooks (hooks.switch / hooks.rollback) for local targets, or plan "
                                  "again with --target cnpg")  # fmt: skip
    parse_kube_switch(hooks["kubernetes"], where, str(app.get("namespace") or "default"))


def placeholders(app: App) -> dict[str, str]:
    """What each placeholder stands for in ``app``; ``pooler_host`` only when the app has a Pooler."""
    from consolidator.manifests.render import pooler_name

    ns, cluster = app.namespace, app.cluster_name
    values = {"cluster": cluster, "namespace": ns, "rw_host": f"{cluster}-rw.{ns}.svc", "app_secret": f"{cluster}-app"}
    if app.sizing.pooler.enabled:
        values["pooler_host"] = f"{pooler_name(app)}.{ns}.svc"
    return values


def _resolve(text: str, values: dict[str, str], app: App, path: str) -> str:
    try:
        return text.format_map(values)
    except KeyError as exc:
        raise ConfigError(f"{path}: {{{exc.args[0]}}} used but app {app.name} has no Pooler",
                          hint="enable the pooler override for the app, or use {rw_host}") from None  # fmt: skip


def kube_switch(app: App) -> KubeSwitch | None:
    """The app's Kubernetes hooks with placeholders resolved, or None when it has none."""
    raw = (app.hooks or {}).get("kubernetes")
    if raw is None:
        return None
    path = f"app {app.name}: hooks.kubernetes"
    spec = parse_kube_switch(raw, path, app.namespace)
    values = placeholders(app)
    patches = []
    for i, patch in enumerate(spec.patches):
        where = f"{path}.patch[{i}]"
        value = _resolve(patch.value, values, app, f"{where}.value") if patch.value is not None else None
        source = patch.from_secret
        if source is not None:
            source = SecretRef(_resolve(source.name, values, app, f"{where}.from_secret.name"), source.key,
                               _resolve(source.namespace, values, app, f"{where}.from_secret.namespace"))
        patches.append(KeyPatch(patch.kind, _resolve(patch.name, values, app, f"{where}.name"),
                                _resolve(patch.namespace, values, app, f"{where}.namespace"), patch.key, value,
                                source))  # fmt: skip
    restarts = [Workload(w.kind, _resolve(w.name, values, app, f"{path}.restart[{i}].name"),
                         _resolve(w.namespace, values, app, f"{path}.restart[{i}].namespace"))
                for i, w in enumerate(spec.restarts)]  # fmt: skip
    return KubeSwitch(tuple(patches), tuple(restarts), spec.pause_pooler, spec.rollout_timeout)
