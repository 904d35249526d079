"""The narrow Kubernetes interface the ``cnpg`` provider needs, and the errors it raises.

Why a narrow interface: the provider's logic (preflight, apply, wait, teardown) must be testable
without a cluster, so everything it asks of Kubernetes goes through these few calls, which an
in-memory fake (``tests/kube_fake.py``) implements as faithfully as the real client
(:mod:`consolidator.k8s.client`). Objects are plain dicts as the API server returns them.

Error contract shared by every implementation:

* 404 is not an error: ``get``/``read_secret``/``get_crd`` return None, ``delete`` returns False;
* 401 and an unreachable API raise :class:`KubeUnreachable` (ConnectionFailure, exit 5);
* 403 raises :class:`KubeForbidden` (PreconditionError, exit 4) naming the verb and resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from consolidator.errors import ConnectionFailure, PreconditionError

FIELD_MANAGER = "consolidator"
CRD_API = "apiextensions.k8s.io/v1"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: what RBAC checks and error messages name."""

    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def qualified(self) -> str:
        """``clusters.postgresql.cnpg.io``, or ``secrets`` for the core group (as kubectl spells it)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# The kinds the provider touches. The real client discovers any kind; this table is what RBAC
# checks and the fake need without a discovery round trip.
RESOURCES: dict[tuple[str, str], Resource] = {
    ("v1", "Namespace"): Resource("", "v1", "namespaces", namespaced=False),
    ("v1", "Secret"): Resource("", "v1", "secrets"),
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps"),
    ("v1", "Pod"): Resource("", "v1", "pods"),
    ("v1", "Service"): Resource("", "v1", "services"),
    ("v1", "PersistentVolumeClaim"): Resource("", "v1", "persistentvolumeclaims"),
    ("v1", "ResourceQuota"): Resource("", "v1", "resourcequotas"),
    ("apps/v1", "Deployment"): Resource("apps", "v1", "deployments"),
    ("batch/v1", "Job"): Resource("batch", "v1", "jobs"),
    ("storage.k8s.io/v1", "StorageClass"): Resource("storage.k8s.io", "v1", "storageclasses", namespaced=False),
    ("scheduling.k8s.io/v1", "PriorityClass"): Resource("scheduling.k8s.io", "v1", "priorityclasses",
                                                         namespaced=False),  # fmt: skip
    ("networking.k8s.io/v1", "NetworkPolicy"): Resource("networking.k8s.io", "v1", "networkpolicies"),
    ("monitoring.coreos.com/v1", "PodMonitor"): Resource("monitoring.coreos.com", "v1", "podmonitors"),
    (CRD_API, "CustomResourceDefinition"): Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                                    namespaced=False),  # fmt: skip
    ("postgresql.cnpg.io/v1", "Cluster"): Resource("postgresql.cnpg.io", "v1", "clusters"),
    ("postgresql.cnpg.io/v1", "Pooler"): Resource("postgresql.cnpg.io", "v1", "poolers"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): Resource("postgresql.cnpg.io", "v1", "scheduledbackups"),
    ("postgresql.cnpg.io/v1", "Backup"): Resource("postgresql.cnpg.io", "v1", "backups"),
    ("postgresql.cnpg.io/v1", "Database"): Resource("postgresql.cnpg.io", "v1", "databases"),
    ("postgresql.cnpg.io/v1", "Publication"): Resource("postgresql.cnpg.io", "v1", "publications"),
    ("postgresql.cnpg.io/v1", "Subscription"): Resource("postgresql.cnpg.io", "v1", "subscriptions"),
    ("barmancloud.cnpg.io/v1", "ObjectStore"): Resource("barmancloud.cnpg.io", "v1", "objectstores"),
}


def resource_for(api_version: str, kind: str) -> Resource:
    """The table entry, or a best guess (lowercase plural) for kinds outside it."""
    found = RESOURCES.get((api_version, kind))
    if found is not None:
        return found
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, kind.lower() + "s")


def identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name) of an object; namespace is '' for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    return str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name"))


def selector(labels: dict[str, str]) -> str:
    """``k=v,k2=v2`` equality selector for ``list``."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubeForbidden(PreconditionError):
    """403: the identity we run as lacks ``verb`` on ``resource`` (exit 4, the fix is an RBAC grant)."""

    def __init__(self, verb: str, resource: str, namespace: str | None, detail: str = "") -> None:
        where = f" in namespace {namespace}" if namespace else " (cluster-wide)"
        super().__init__(
            f"Kubernetes refused: cannot {verb} {resource}{where}" + (f": {detail}" if detail else ""),
            hint=f"grant it to the identity in use (check: kubectl auth can-i {verb} {resource}"
            + (f" -n {namespace}" if namespace else "")
            + "), or run with a kubeconfig context that has it",
        )
        self.verb, self.resource, self.namespace = verb, resource, namespace


class KubeUnreachable(ConnectionFailure):
    """The API server cannot be reached, timed out, or rejected our credentials (401)."""


class KubeConflict(PreconditionError):
    """409 on create: the object already exists (callers that only ensure existence ignore it)."""


class PortForward(Protocol):
    """A local TCP port relaying to a pod's port until closed."""

    @property
    def local_port(self) -> int: ...

    def close(self) -> None: ...


class KubeApi(Protocol):
    """Exactly the calls the ``cnpg`` provider makes; see the module docstring for the error contract."""

    def server_version(self) -> str:
        """``v1.34.2``-style git version of the API server (also the reachability probe)."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        ...

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Objects of a kind (in one namespace or all), filtered by an equality label selector."""
        ...

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with field manager ``consolidator``, forcing conflicts; returns the live object."""
        ...

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """RFC 7386 merge patch of one object (None values delete keys)."""
        ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object; raises :class:`KubeConflict` when it exists."""
        ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete one object (background propagation); False when it was not there."""
        ...

    def get_crd(self, name: str) -> dict[str, Any] | None:
        """A CustomResourceDefinition by name (``clusters.postgresql.cnpg.io``), or None."""
        ...

    def read_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        """A Secret's decoded ``data`` (plus ``stringData`` if the server echoes it), or None."""
        ...

    def can_i(self, verb: str, resource: Resource, namespace: str | None, subresource: str = "") -> bool:
        """SelfSubjectAccessReview: may the current identity do ``verb`` on ``resource``?"""
        ...

    def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        """ResourceQuota objects of a namespace (``status.hard`` / ``status.used``)."""
        ...

    def storage_classes(self) -> list[dict[str, Any]]:
        """Every StorageClass object of the cluster."""
        ...

    def port_forward(self, namespace: str, pod: str, port: int) -> PortForward:
        """Relay a free loopback port to ``pod:port`` until closed."""
        ...
