"""Copies as Kubernetes Jobs: the objects one in-cluster run needs, and its journal mirror.

Per app, in the app's namespace (all labelled like the cluster's own objects):

* a ServiceAccount, Role and RoleBinding ``<cluster>-consolidator``: the run reads its Cluster and
  the ``<cluster>-superuser`` Secret (the target login) and writes its journal ConfigMap — nothing
  else, each rule restricted to those names;
* a ConfigMap ``<cluster>-consolidator-plan`` with ``plan.yaml`` and the journal to continue from
  (``state.json``): never a secret, only what the run needs;
* a ConfigMap ``<cluster>-consolidator-journal`` the run mirrors every journal save into
  (:class:`ConfigMapMirror`), which is how the operator's machine follows it;
* a Job ``<cluster>-consolidator`` running ``consolidator execute /plan --yes --app APP --json
  --resume`` with the image of this project. The source password comes from the legacy source
  Secret the manifests render (``externalClusters`` password) as ``PGPASSWORD`` through
  ``secretKeyRef``, never in arguments; ``backoffLimit: 0`` because resuming is the journal's job,
  not Kubernetes'. An init container copies the read-only ConfigMap into a writable ``/plan``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consolidator import __version__
from consolidator.errors import ConfigError, ConsolidatorError
from consolidator.k8s.api import KubeApi
from consolidator.manifests.admission import CNPG_API
from consolidator.manifests.render import APP_LABEL, MANAGED_BY, MANAGED_BY_LABEL, label_value, pooler_name
from consolidator.plan.model import App, Plan

log = logging.getLogger(__name__)

DEFAULT_IMAGE = f"consolidator:{__version__}"  # what `docker build -t consolidator:<version> .` produces
PLAN_KEY, JOURNAL_KEY = "plan.yaml", "state.json"
PLAN_DIR, SEED_DIR = "/plan", "/seed"
ENV_JOURNAL_CONFIGMAP = "CONSOLIDATOR_JOURNAL_CONFIGMAP"
ENV_NAMESPACE = "CONSOLIDATOR_NAMESPACE"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "copy"
CONFIGMAP_LIMIT = 1_000_000  # the API server refuses ConfigMaps above 1 MiB (data plus metadata)
RUN_AS = 10001  # the image's unprivileged user (Dockerfile)
RBAC_API = "rbac.authorization.k8s.io/v1"


def job_name(app: App) -> str:
    """``<cluster>-consolidator``: ≤ 63 characters since cluster names are ≤ 50 (a Job name is a label)."""
    return f"{app.cluster_name}-consolidator"


def runner_name(app: App) -> str:
    """The ServiceAccount, Role and RoleBinding of the app's Job."""
    return f"{app.cluster_name}-consolidator"


def plan_configmap_name(app: App) -> str:
    return f"{app.cluster_name}-consolidator-plan"


def journal_configmap_name(app: App) -> str:
    return f"{app.cluster_name}-consolidator-journal"


@dataclass
class JobSettings:
    """How the copy Job runs: image, parallel copy workers (``--jobs``), resources, retention."""

    image: str = DEFAULT_IMAGE
    workers: int = 4
    cpu: str | None = None  # default: one core per worker
    memory: str | None = None  # default: 512Mi plus 256Mi per worker
    ttl_seconds: int = 7 * 24 * 3600  # long enough to read its log after a failure
    pull_policy: str = "IfNotPresent"
    force: bool = False  # execute --force: accept target databases that already hold tables

    def resources(self) -> dict[str, Any]:
        """Requests = limits (Guaranteed QoS, like the clusters themselves)."""
        cpu = self.cpu or str(max(1, self.workers))
        memory = self.memory or f"{512 + 256 * max(1, self.workers)}Mi"
        return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


def _labels(app: App) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: label_value(app.name), COMPONENT_LABEL: COMPONENT}


def _meta(app: App, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": app.namespace, "labels": _labels(app)}


def render_rbac(app: App) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding: exactly what the in-cluster run asks of the API, by name."""
    name = runner_name(app)
    rules = [
        {"apiGroups": [CNPG_API.split("/")[0]], "resources": ["clusters"], "verbs": ["get"],
         "resourceNames": [app.cluster_name]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
         "resourceNames": [f"{app.cluster_name}-superuser"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch", "update"],
         "resourceNames": [journal_configmap_name(app)]},
    ]  # fmt: skip
    if app.sizing.pooler.enabled:  # the fence pauses the Pooler, cutover resumes it
        rules.append({"apiGroups": [CNPG_API.split("/")[0]], "resources": ["poolers"], "verbs": ["get", "patch"],
                      "resourceNames": [pooler_name(app)]})  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(app, name),
         "automountServiceAccountToken": True},
        {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(app, name), "rules": rules},
        {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta(app, name),
         "roleRef": {"apiGroup": RBAC_API.split("/")[0], "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": app.namespace}]},
    ]  # fmt: skip


def render_plan_configmap(app: App, plan_yaml: str, journal: str) -> dict[str, Any]:
    """``plan.yaml`` plus the journal the run continues from; refuses what the API server would."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(app, plan_configmap_name(app)),
           "data": {PLAN_KEY: plan_yaml, JOURNAL_KEY: journal}}  # fmt: skip
    size = len(json.dumps(obj).encode("utf-8"))
    if size > CONFIGMAP_LIMIT:
        raise ConfigError(f"the plan of {app.name} is too large for a ConfigMap ({size} bytes, limit 1 MiB)",
                          hint="run the large plan's apps from a smaller plan (consolidator plan --map …), "
                          "or execute without --in-cluster")  # fmt: skip
    return obj


def render_journal_configmap(app: App, journal: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(app, journal_configmap_name(app)),
            "data": {JOURNAL_KEY: journal}}  # fmt: skip


def job_command(app: App, settings: JobSettings) -> list[str]:
    """The arguments after the image's entrypoint (``consolidator``); never a credential.

    Always ``--resume``: the seeded journal has at least the provisioning this side did."""
    args = ["execute", PLAN_DIR, "--yes", "--app", app.name, "--json", "--resume", "--jobs", str(settings.workers)]
    return [*args, "--force"] if settings.force else args


def render_job(plan: Plan, app: App, settings: JobSettings) -> dict[str, Any]:
    """The copy Job of one app; the pod is unprivileged, read-only, and gets the source password by reference."""
    security = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    env = [
        {"name": "PGPASSWORD",
         "valueFrom": {"secretKeyRef": {"name": plan.source.password_secret, "key": "password"}}},
        {"name": ENV_JOURNAL_CONFIGMAP, "value": journal_configmap_name(app)},
        {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]  # fmt: skip
    mounts = [{"name": "plan", "mountPath": PLAN_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    pod = {
        "serviceAccountName": runner_name(app),
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS},
        "initContainers": [{
            "name": "seed", "image": settings.image, "imagePullPolicy": settings.pull_policy,
            "command": ["cp", f"{SEED_DIR}/{PLAN_KEY}", f"{SEED_DIR}/{JOURNAL_KEY}", f"{PLAN_DIR}/"],
            "volumeMounts": [{"name": "seed", "mountPath": SEED_DIR, "readOnly": True},
                             {"name": "plan", "mountPath": PLAN_DIR}],
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}},
            "securityContext": security,
        }],
        "containers": [{
            "name": "consolidator", "image": settings.image, "imagePullPolicy": settings.pull_policy,
            "args": job_command(app, settings), "env": env, "volumeMounts": mounts, "resources": settings.resources(),
            "securityContext": security,
        }],
        "volumes": [{"name": "seed", "configMap": {"name": plan_configmap_name(app)}},
                    {"name": "plan", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(app, job_name(app)),
        "spec": {
            "backoffLimit": 0,  # resuming is ours (the journal), not Kubernetes'
            "ttlSecondsAfterFinished": settings.ttl_seconds,
            "template": {"metadata": {"labels": _labels(app)}, "spec": pod},
        },
    }


def job_outcome(job: dict[str, Any]) -> tuple[str, str]:
    """(``active`` | ``succeeded`` | ``failed``, the reason Kubernetes gives for a failure)."""
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None)
    if failed is not None or int(status.get("failed") or 0) > 0:
        detail = (failed or {}).get("message") or (failed or {}).get("reason") or "its pod failed"
        return "failed", str(detail)
    complete = any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)
    if complete or int(status.get("succeeded") or 0) > 0:
        return "succeeded", ""
    return "active", ""


def logs_hint(app: App) -> str:
    return f"kubectl logs job/{job_name(app)} -n {app.namespace}"


# --------------------------------------------------------------------------- the journal mirror


class ConfigMapMirror:
    """Mirrors journal saves into a ConfigMap's ``state.json``, at most once per ``min_interval``.

    Saves in between are coalesced: the latest text is written by a timer when the interval is up,
    so the last save always lands (a non-daemon timer: the process waits for it before exiting).
    An API error never stops the run; the next save tries again.
    """

    def __init__(self, api: KubeApi, namespace: str, name: str, *, min_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.api, self.namespace, self.name = api, namespace, name
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: str | None = None
        self._last = float("-inf")
        self._timer: threading.Timer | None = None
        self.writes = 0

    def __call__(self, text: str) -> None:
        with self._lock:
            self._pending = text
            wait = self._last + self.min_interval - self._clock()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush)
                    self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            text, self._pending, self._timer = self._pending, None, None
            if text is None:
                return
            self._last = self._clock()
            try:
                self.api.merge_patch("v1", "ConfigMap", self.name, self.namespace, {"data": {JOURNAL_KEY: text}})
                self.writes += 1
            except ConsolidatorError as exc:  # visibility only: the copy goes on, the next save retries
                log.warning("journal mirror %s/%s: %s", self.namespace, self.name, exc.message)
                self._pending = self._pending or text


def in_copy_job() -> bool:
    """True inside a copy Job: the launching side already ran the cluster-wide preflight, which the
    Job's narrow Role could not (CRDs, storage classes, the operator's namespace)."""
    return bool(os.environ.get(ENV_JOURNAL_CONFIGMAP))


def journal_mirror_from_env(api: KubeApi | None = None) -> Callable[[str], None] | None:
    """Inside a copy Job (``CONSOLIDATOR_JOURNAL_CONFIGMAP`` set): the mirror the journal calls; else None."""
    name = os.environ.get(ENV_JOURNAL_CONFIGMAP)
    namespace = os.environ.get(ENV_NAMESPACE)
    if not name or not namespace:
        return None
    if api is None:
        from consolidator.k8s.client import KubernetesApi

        api = KubernetesApi()
    return ConfigMapMirror(api, namespace, name)
