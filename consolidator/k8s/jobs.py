"""Copies as Kubernetes Jobs: the objects one in-cluster run needs, and its journal mirror.

Per app, in the app's namespace (all labelled like the cluster's own objects):

* a ServiceAccount, Role and RoleBinding ``<cluster>-consolidator``: the run reads its Cluster and
  the ``<cluster>-superuser`` Secret (the target login), writes its journal ConfigMap, pauses and
  resumes its Pooler, promotes a physical standby, and does what the app's ``hooks.kubernetes`` do
  at cutover (:func:`job_rules`) — nothing else, each rule restricted to those names where
  Kubernetes allows it; a hook acting in another namespace gets a Role and RoleBinding there;
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
from consolidator.k8s.api import KubeApi, resource_for
from consolidator.k8s.switch import WORKLOAD_API, pauses_pooler, rollback_secret_name
from consolidator.manifests.admission import CNPG_API
from consolidator.manifests.render import APP_LABEL, MANAGED_BY, MANAGED_BY_LABEL, label_value, pooler_name
from consolidator.plan.kube_hooks import kube_switch
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
MAIN_CONTAINER = "consolidator"
# Waiting reasons of a Job's pod that do not go away by themselves (kubelet and scheduler wording).
PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
UNSCHEDULABLE = "Unschedulable"


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


def _meta(app: App, name: str, namespace: str | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace or app.namespace, "labels": _labels(app)}


def _rule(group: str, plural: str, verbs: list[str], names: list[str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": [group], "resources": [plural], "verbs": verbs}
    if names:
        rule["resourceNames"] = list(dict.fromkeys(names))
    return rule


def job_rules(plan: Plan, app: App) -> dict[str, list[dict[str, Any]]]:
    """Namespace → Role rules of the app's Job: exactly what its run asks of the API, by name.

    In the app's namespace: ``get`` its Cluster (``patch`` too for physical: promotion leaves replica
    mode) and ``<cluster>-superuser`` (physical: also the legacy source Secret, the standby's login
    until promotion), ``get, patch, update`` its journal ConfigMap, ``get, patch`` its Pooler (the
    fence pauses it). The cutover's ``hooks.kubernetes``: ``get, patch`` on each named ConfigMap,
    Secret, Deployment and StatefulSet, ``get`` on each ``from_secret`` Secret, in the namespaces
    the hooks name, and ``create, get, patch, delete`` on ``<cluster>-consolidator-rollback``;
    ``create`` cannot be restricted by name (the authorizer does not know the name of what is
    created), so that one rule allows creating Secrets in the app's namespace.
    """
    cnpg = CNPG_API.split("/")[0]
    physical = app.strategy.name == "physical"
    spec = kube_switch(app)
    secrets = [f"{app.cluster_name}-superuser"] + ([plan.source.password_secret] if physical else [])
    own = [
        _rule(cnpg, "clusters", ["get", "patch"] if physical else ["get"], [app.cluster_name]),
        _rule("", "secrets", ["get"], secrets),
        _rule("", "configmaps", ["get", "patch", "update"], [journal_configmap_name(app)]),
    ]
    if pauses_pooler(app, spec):  # the fence pauses the Pooler, cutover resumes it
        own.append(_rule(cnpg, "poolers", ["get", "patch"], [pooler_name(app)]))
    rules = {app.namespace: own}
    if spec is None or not (spec.patches or spec.restarts):
        return rules
    named: dict[tuple[str, str, str, tuple[str, ...]], list[str]] = {}  # (namespace, group, plural, verbs) → names
    named[(app.namespace, "", "secrets", ("get", "patch", "delete"))] = [rollback_secret_name(app)]
    for patch in spec.patches:
        named.setdefault((patch.namespace, "", f"{patch.kind.lower()}s", ("get", "patch")), []).append(patch.name)
        if patch.from_secret is not None:
            ref = patch.from_secret
            named.setdefault((ref.namespace, "", "secrets", ("get",)), []).append(ref.name)
    for workload in spec.restarts:
        resource = resource_for(WORKLOAD_API, workload.kind)
        named.setdefault((workload.namespace, resource.group, resource.plural, ("get", "patch")), []).append(
            workload.name)  # fmt: skip
    for (namespace, group, plural, verbs), names in named.items():
        rules.setdefault(namespace, []).append(_rule(group, plural, list(verbs), names))
    rules[app.namespace].append(_rule("", "secrets", ["create"]))  # the rollback record, created once
    return rules


def render_rbac(plan: Plan, app: App) -> list[dict[str, Any]]:
    """ServiceAccount, then a Role and RoleBinding per namespace of :func:`job_rules` (the app's first;
    in another namespace they are named ``<cluster>-consolidator-<app namespace>``)."""
    name = runner_name(app)
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(app, name),
                                  "automountServiceAccountToken": True}]  # fmt: skip
    rules = job_rules(plan, app)
    for namespace in [app.namespace, *sorted(n for n in rules if n != app.namespace)]:
        role = name if namespace == app.namespace else f"{name}-{app.namespace}"
        out += [
            {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(app, role, namespace),
             "rules": rules[namespace]},
            {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _meta(app, role, namespace),
             "roleRef": {"apiGroup": RBAC_API.split("/")[0], "kind": "Role", "name": role},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": app.namespace}]},
        ]  # fmt: skip
    return out


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
            "name": MAIN_CONTAINER, "image": settings.image, "imagePullPolicy": settings.pull_policy,
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


# --------------------------------------------------------------------------- a Job whose pod never starts


@dataclass(frozen=True)
class PodTrouble:
    """Why a Job's pod does not start: a waiting reason that persists, or the scheduler's refusal."""

    pod: str
    reason: str  # ImagePullBackOff, CreateContainerConfigError, Unschedulable…
    message: str
    image: str

    @property
    def kind(self) -> str:
        """``pull``, ``config`` or ``schedule``: ErrImagePull and ImagePullBackOff alternate, one trouble."""
        return "pull" if self.reason in PULL_REASONS else "config" if self.reason in CONFIG_REASONS else "schedule"


def _image_of(pod: dict[str, Any], container: str) -> str:
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c.get("name") == container:
            return str(c.get("image") or "")
    return next((str(c.get("image") or "") for c in spec.get("containers") or []), "")


def pod_trouble(pod: dict[str, Any]) -> PodTrouble | None:
    """The first container waiting for a reason that will not clear by itself, or the pod unschedulable."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in PULL_REASONS + CONFIG_REASONS:
            image = str(container.get("image") or "") or _image_of(pod, str(container.get("name")))
            return PodTrouble(name, reason, str(waiting.get("message") or ""), image)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" \
                and condition.get("reason") == UNSCHEDULABLE:  # fmt: skip
            return PodTrouble(name, UNSCHEDULABLE, str(condition.get("message") or ""), _image_of(pod, MAIN_CONTAINER))
    return None


def pod_ran(pod: dict[str, Any]) -> bool:
    """Whether the run itself (not the seed init container) started in this pod."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if container.get("name") == MAIN_CONTAINER and ("running" in state or "terminated" in state):
            return True
    return False


def pod_state(pod: dict[str, Any]) -> str:
    """``Pending (seed: ContainerCreating)``: the phase and every waiting reason, for a timeout message."""
    status = pod.get("status") or {}
    waiting = [f"{c.get('name')}: {((c.get('state') or {}).get('waiting') or {}).get('reason')}"
               for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
               if ((c.get("state") or {}).get("waiting") or {}).get("reason")]  # fmt: skip
    return str(status.get("phase") or "Pending") + (f" ({', '.join(waiting)})" if waiting else "")


def _pull_fix(app: App) -> str:
    ref = f"REGISTRY/consolidator:{__version__}"
    account = runner_name(app)
    return (f"push the image where the nodes pull from and pass it with --image (docker build -t {ref} . && "
            f"docker push {ref}; consolidator execute DIR --yes --in-cluster --image {ref}), or, for a private "
            f"registry, give ServiceAccount {account} an imagePullSecret (kubectl -n {app.namespace} patch "
            f"serviceaccount {account} -p '{{\"imagePullSecrets\": [{{\"name\": \"SECRET\"}}]}}')")  # fmt: skip


def stuck_failure(plan: Plan, app: App, trouble: PodTrouble, waited: float) -> tuple[str, str]:
    """(message, hint) for a pod that has waited ``waited`` seconds with ``trouble``; nothing is deleted."""
    where = f"Job {app.namespace}/{job_name(app)} never started"
    detail = f": {trouble.message}" if trouble.message else ""
    describe = f"kubectl describe pod {trouble.pod} -n {app.namespace}"
    resume = "then execute --in-cluster --resume (a Job that never started is replaced)"
    if trouble.kind == "pull":
        return (f"{where}: pod {trouble.pod} is in {trouble.reason} for image {trouble.image} after {waited:g}s"
                f"{detail}", f"the nodes cannot pull {trouble.image}: {_pull_fix(app)}; details: {describe}; {resume}")
    if trouble.kind == "config":
        return (f"{where}: pod {trouble.pod} is in {trouble.reason} (image {trouble.image}){detail}",
                f"{describe}; the Job reads key password of Secret {plan.source.password_secret} (the legacy "
                f"source login) and ConfigMap {plan_configmap_name(app)}: create or fix what it names, {resume}")
    return (f"{where}: pod {trouble.pod} is {trouble.reason} after {waited:g}s (image {trouble.image}){detail}",
            f"no node can run it: free capacity, or lower --jobs (one core and 256Mi per worker, plus 512Mi); "
            f"details: {describe}; {resume}")  # fmt: skip


def not_started_failure(app: App, image: str, pods: list[dict[str, Any]], waited: float) -> tuple[str, str]:
    """(message, hint) for a Job whose run has not started ``waited`` seconds after it was created."""
    job = job_name(app)
    if pods:
        name = str((pods[0].get("metadata") or {}).get("name") or "")
        state = f"pod {name} is {pod_state(pods[0])}"
        look = f"kubectl describe pod {name} -n {app.namespace}"
    else:
        state, look = "no pod was created", f"kubectl describe job/{job} -n {app.namespace}"
    return (f"Job {app.namespace}/{job} did not start within {waited:g}s (image {image}): {state}",
            f"{look} and kubectl get events -n {app.namespace} (a ResourceQuota or an admission policy may refuse "
            f"the pod); if the image cannot be pulled, {_pull_fix(app)}; then execute --in-cluster --resume")


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
