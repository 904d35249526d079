"""Validate rendered objects the way the API server would, as far as JSON schema can.

CRD kinds use ``spec.versions[0].schema.openAPIV3Schema`` from the CNPG 1.30 / Barman Cloud 0.14
CRDs in ``shared/schemas/cnpg/`` (override with ``CONSOLIDATOR_CNPG_SCHEMAS``), made strict:
every object schema with ``properties`` and no ``additionalProperties`` or
``x-kubernetes-preserve-unknown-fields`` rejects unknown fields, like ``kubectl apply`` with
strict field validation. ``metadata`` is checked for name/namespace/labels only. Core kinds
(Secret, NetworkPolicy, PriorityClass, PodMonitor, Kustomization) get light structural checks.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_CLUSTER_SCOPED = {"PriorityClass", "ClusterImageCatalog"}


class SchemaError(AssertionError):
    """A rendered object the API server would refuse."""


def schema_dir() -> Path:
    """``shared/schemas/cnpg`` next to the repository, unless the environment says otherwise."""
    override = os.environ.get("CONSOLIDATOR_CNPG_SCHEMAS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "schemas" / "cnpg"


def _strict(node: Any) -> Any:
    """Copy of a structural schema where objects with ``properties`` reject unknown fields."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_strict(s) for s in out[key]]
    if isinstance(out.get("not"), dict):
        out["not"] = _strict(out["not"])
    return out


@functools.cache
def _validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    directory = schema_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"CNPG CRD schemas not found in {directory} (set CONSOLIDATOR_CNPG_SCHEMAS)")
    found: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        version = crd["spec"]["versions"][0]
        schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        schema["properties"]["metadata"] = {"type": "object"}  # checked separately
        api_version = f"{crd['spec']['group']}/{version['name']}"
        validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        found[(api_version, crd["spec"]["names"]["kind"])] = validator_cls(schema)
    return found


def _fail(obj: dict[str, Any], problem: str) -> SchemaError:
    name = (obj.get("metadata") or {}).get("name", "<unnamed>")
    return SchemaError(f"{obj.get('kind')} {name}: {problem}")


def _check_metadata(obj: dict[str, Any], *, namespaced: bool) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise _fail(obj, "metadata missing")
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise _fail(obj, f"metadata.name {name!r} is not a DNS-1123 subdomain")
    namespace = meta.get("namespace")
    if namespaced and (not isinstance(namespace, str) or not _DNS1123_LABEL.match(namespace)):
        raise _fail(obj, f"metadata.namespace {namespace!r} is missing or invalid")
    if not namespaced and namespace is not None:
        raise _fail(obj, "cluster-scoped object with a namespace")
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise _fail(obj, f"metadata.{field} values must be strings")
    for key, value in (meta.get("labels") or {}).items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise _fail(obj, f"label {key}={value!r} is not a valid label value")
    unknown = set(meta) - {"name", "namespace", "labels", "annotations"}
    if unknown:
        raise _fail(obj, f"unexpected metadata fields {sorted(unknown)}")


def _only(obj: dict[str, Any], where: str, data: Any, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(data, dict):
        raise _fail(obj, f"{where} must be a mapping")
    unknown, missing = set(data) - allowed, set(required) - set(data)
    if unknown:
        raise _fail(obj, f"unknown field(s) {sorted(unknown)} in {where}")
    if missing:
        raise _fail(obj, f"missing field(s) {sorted(missing)} in {where}")


def _check_secret(obj: dict[str, Any]) -> None:
    _only(obj, "Secret", obj, {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"})
    for field in ("data", "stringData"):
        values = obj.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise _fail(obj, f"{field} values must be strings")
    if obj.get("type") == "kubernetes.io/basic-auth":
        keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
        if not keys & {"username", "password"}:
            raise _fail(obj, "basic-auth Secret needs username or password")


def _check_port(obj: dict[str, Any], port: Any) -> None:
    _only(obj, "port", port, {"protocol", "port", "endPort"})
    if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
        raise _fail(obj, f"bad protocol {port.get('protocol')!r}")
    if not isinstance(port.get("port"), int | str):
        raise _fail(obj, "port must be a number or a name")


def _check_peer(obj: dict[str, Any], peer: Any) -> None:
    _only(obj, "peer", peer, {"podSelector", "namespaceSelector", "ipBlock"})
    for selector in ("podSelector", "namespaceSelector"):
        if selector in peer:
            _check_selector(obj, peer[selector])


def _check_selector(obj: dict[str, Any], selector: Any) -> None:
    _only(obj, "selector", selector, {"matchLabels", "matchExpressions"})
    for expr in selector.get("matchExpressions") or []:
        _only(obj, "matchExpressions[]", expr, {"key", "operator", "values"}, {"key", "operator"})
        if expr["operator"] not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise _fail(obj, f"bad selector operator {expr['operator']!r}")


def _check_network_policy(obj: dict[str, Any]) -> None:
    _only(obj, "NetworkPolicy", obj, {"apiVersion", "kind", "metadata", "spec"}, {"spec"})
    spec = obj["spec"]
    _only(obj, "spec", spec, {"podSelector", "policyTypes", "ingress", "egress"}, {"podSelector"})
    _check_selector(obj, spec["podSelector"])
    if not set(spec.get("policyTypes") or []) <= {"Ingress", "Egress"}:
        raise _fail(obj, "policyTypes must be Ingress/Egress")
    for rule in spec.get("ingress") or []:
        _only(obj, "ingress[]", rule, {"from", "ports"})
        for peer in rule.get("from") or []:
            _check_peer(obj, peer)
        for port in rule.get("ports") or []:
            _check_port(obj, port)


def _check_priority_class(obj: dict[str, Any]) -> None:
    allowed = {"apiVersion", "kind", "metadata", "value", "globalDefault", "description", "preemptionPolicy"}
    _only(obj, "PriorityClass", obj, allowed, {"value"})
    if not isinstance(obj["value"], int) or isinstance(obj["value"], bool) or obj["value"] > 1_000_000_000:
        raise _fail(obj, "value must be an integer ≤ 1000000000")
    if obj.get("preemptionPolicy", "PreemptLowerPriority") not in ("PreemptLowerPriority", "Never"):
        raise _fail(obj, "bad preemptionPolicy")


def _check_pod_monitor(obj: dict[str, Any]) -> None:
    _only(obj, "PodMonitor", obj, {"apiVersion", "kind", "metadata", "spec"}, {"spec"})
    spec = obj["spec"]
    allowed = {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"}
    _only(obj, "spec", spec, allowed, {"selector"})
    _check_selector(obj, spec["selector"])
    for endpoint in spec.get("podMetricsEndpoints") or []:
        if not isinstance(endpoint, dict) or not ({"port", "portNumber", "targetPort"} & set(endpoint)):
            raise _fail(obj, "podMetricsEndpoints[] needs a port")


def validate_kustomization(doc: dict[str, Any]) -> None:
    """A kustomize.config.k8s.io/v1beta1 Kustomization with a list of relative resources."""
    obj = {"kind": "Kustomization", "metadata": {"name": "kustomization"}}
    _only(obj, "Kustomization", doc, {"apiVersion", "kind", "resources"}, {"apiVersion", "kind", "resources"})
    if doc["apiVersion"] != "kustomize.config.k8s.io/v1beta1" or doc["kind"] != "Kustomization":
        raise _fail(obj, "wrong apiVersion/kind")
    resources = doc["resources"]
    if not isinstance(resources, list) or len(set(resources)) != len(resources):
        raise _fail(obj, "resources must be a list without duplicates")
    for item in resources:
        if not isinstance(item, str) or item.startswith("/") or ".." in Path(item).parts:
            raise _fail(obj, f"resource {item!r} must be a relative path inside the tree")


_CORE: dict[tuple[str, str], Any] = {
    ("v1", "Secret"): _check_secret,
    ("networking.k8s.io/v1", "NetworkPolicy"): _check_network_policy,
    ("scheduling.k8s.io/v1", "PriorityClass"): _check_priority_class,
    ("monitoring.coreos.com/v1", "PodMonitor"): _check_pod_monitor,
}


def validate_object(obj: dict[str, Any]) -> None:
    """Raise :class:`SchemaError` when ``obj`` would not pass API-server validation."""
    if not isinstance(obj, dict):
        raise SchemaError(f"not a mapping: {obj!r}")
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    if key == ("kustomize.config.k8s.io/v1beta1", "Kustomization"):
        validate_kustomization(obj)
        return
    _check_metadata(obj, namespaced=key[1] not in _CLUSTER_SCOPED)
    if key in _CORE:
        _CORE[key](obj)
        return
    validator = _validators().get(key)
    if validator is None:
        raise _fail(obj, f"no schema for {key[0]} {key[1]}")
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:5])
        raise _fail(obj, details)
