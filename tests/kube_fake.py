"""An in-memory Kubernetes API implementing :class:`consolidator.k8s.api.KubeApi` for fast tests.

Objects are stored by (apiVersion, kind, namespace, name). Server-side apply merges the applied
fields into the live object (maps merge, lists and scalars are replaced, ``status`` is never
touched) and records the field manager in ``metadata.managedFields``; every write bumps a global
``resourceVersion``. Failures are configurable: :meth:`FakeKube.deny` (403 for a verb on a
resource), :meth:`FakeKube.fail_with` (e.g. timeouts on every call), missing CRDs (just do not
:meth:`FakeKube.install_cnpg`). :meth:`FakeKube.script_status` plays the operator: each read of an
object takes the next status from a list (the last one sticks), and :meth:`FakeKube.on_apply`
lets a test react to an apply the way a controller would (create ``<cluster>-superuser``…).
:meth:`FakeKube.add_job_pod` plays the Job controller and kubelet for a Job's pod (running, or
waiting with ``ImagePullBackOff``…, or unschedulable), and :meth:`FakeKube.as_service_account`
is the API as a ServiceAccount sees it: every call authorized against the Roles bound to it, with
Kubernetes' RBAC rules (``resourceNames`` never match ``create`` or ``list``).
"""

from __future__ import annotations

import base64
import copy
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consolidator.errors import ConsolidatorError
from consolidator.k8s.api import (
    CRD_API,
    FIELD_MANAGER,
    KubeConflict,
    KubeForbidden,
    KubeUnreachable,
    Resource,
    identity,
    resource_for,
)
from consolidator.plan.model import Plan
from consolidator.plan.store import load_plan

Key = tuple[str, str, str, str]
CNPG_CRDS = ("clusters", "poolers", "backups", "scheduledbackups", "databases", "publications", "subscriptions",
             "imagecatalogs", "clusterimagecatalogs")  # fmt: skip
EXAMPLE_PLAN = Path(__file__).resolve().parents[1] / "plans" / "example"
"""The example plan directory (``plans/example``) that the Kubernetes tests start from."""


class Clock:
    """A fake monotonic clock that ``sleep`` advances: polling tests take no time.

    ``now`` is the time slept so far, ``sleeps`` how many times ``sleep`` was called.
    """

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, 0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


@functools.cache
def _example_plan() -> Plan:
    return load_plan(EXAMPLE_PLAN)


def cnpg_example_plan(namespace: str = "apps") -> Plan:
    """A fresh copy of ``plans/example`` retargeted at CloudNativePG in ``namespace``.

    The target and every app live in ``namespace`` and there is no ``local_root``. The plan is loaded
    once and deep-copied on each call, so tests never share state.
    """
    plan = copy.deepcopy(_example_plan())
    plan.target.provider, plan.target.namespace, plan.target.local_root = "cnpg", namespace, None
    for app in plan.apps:
        app.namespace = namespace
    return plan


def _merge(live: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(live)
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_patch(live: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: None deletes, maps merge, anything else replaces."""
    out = copy.deepcopy(live)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _matches(obj: dict[str, Any], label_selector: str | None) -> bool:
    if not label_selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in label_selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


class FakePortForward:
    def __init__(self, port: int, target: str) -> None:
        self.local_port, self.target, self.closed = port, target, False

    def close(self) -> None:
        self.closed = True


class FakeKube:
    """The fake cluster. ``calls`` records (verb, kind, namespace, name) of every write."""

    def __init__(self, version: str = "v1.34.1") -> None:
        self.version = version
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.denied: set[tuple[str, str]] = set()  # (verb, qualified resource)
        self.failure: ConsolidatorError | None = None
        self.scripts: dict[Key, list[dict[str, Any]]] = {}
        self.hooks: list[tuple[str, Callable[[FakeKube, dict[str, Any]], None]]] = []
        self.forwards: list[FakePortForward] = []
        self.applied: list[dict[str, Any]] = []  # every body given to apply, as sent
        self._rv = 0
        self.rollouts: dict[Key, int] = {}  # workload → reads in progress after a change (-1: stuck)
        self.job_player: Callable[[FakeKube, dict[str, Any], int], None] | None = None
        self._job_ticks: dict[Key, int] = {}
        self._job_lock = threading.RLock()  # copy Jobs are watched from several threads
        # The kubelet's part for source reachability check pods: True → they connect; a text → they fail
        # with it as their termination message; None → they stay Pending.
        self.source_check: bool | str | None = True
        self.on_apply("Pod", FakeKube._run_source_check)

    @staticmethod
    def _run_source_check(fake: FakeKube, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        if labels.get("consolidator.io/purpose") != "source-check" or fake.source_check is None:
            return
        ok = fake.source_check is True
        message = "reached PostgreSQL 15.18" if ok else str(fake.source_check)
        key = ("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        fake.objects[key]["status"] = {"phase": "Succeeded" if ok else "Failed", "containerStatuses": [{
            "name": "check", "state": {"terminated": {"exitCode": 0 if ok else 2, "message": message}}}]}

    # -- test set-up

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if someone else created it (no field manager of ours)."""
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})
        self._bump(stored)
        self.objects[identity(stored)] = stored
        return stored

    def install_cnpg(self, version: str = "1.30.0", *, plugin: bool = True, operator_namespace: str = "cnpg-system",
                     crds: tuple[str, ...] = CNPG_CRDS) -> None:  # fmt: skip
        """CNPG CRDs plus the operator Deployment (image tag = version); optionally the Barman Cloud plugin."""
        for plural in crds:
            self.put({"apiVersion": CRD_API, "kind": "CustomResourceDefinition",
                      "metadata": {"name": f"{plural}.postgresql.cnpg.io"}})  # fmt: skip
        if plugin:
            self.put({"apiVersion": CRD_API, "kind": "CustomResourceDefinition",
                      "metadata": {"name": "objectstores.barmancloud.cnpg.io"}})  # fmt: skip
        self.put({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cnpg-controller-manager", "namespace": operator_namespace,
                         "labels": {"app.kubernetes.io/name": "cloudnative-pg"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "manager", "image": f"ghcr.io/cloudnative-pg/cloudnative-pg:{version}"}]}}},
        })  # fmt: skip

    def add_namespace(self, name: str) -> None:
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def add_storage_class(self, name: str) -> None:
        self.put({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                  "provisioner": "fake.csi"})  # fmt: skip

    def add_quota(self, namespace: str, hard: dict[str, str], used: dict[str, str] | None = None) -> None:
        self.put({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota", "namespace": namespace},
                  "spec": {"hard": hard}, "status": {"hard": hard, "used": used or {}}})  # fmt: skip

    def add_secret(self, name: str, namespace: str, data: dict[str, str], labels: dict[str, str] | None = None) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace,
                  "labels": labels or {}}, "data": encoded})  # fmt: skip

    def deny(self, verb: str, resource: str) -> None:
        """403 for ``verb`` on ``resource`` (qualified, e.g. ``poolers.postgresql.cnpg.io``)."""
        self.denied.add((verb, resource))

    def fail_with(self, error: ConsolidatorError | None) -> None:
        """Every call raises ``error`` (e.g. a timeout) until reset with None."""
        self.failure = error

    def timeout(self) -> None:
        self.fail_with(KubeUnreachable("the Kubernetes API did not answer within 30s", hint="check the API server"))

    def script_status(self, api_version: str, kind: str, namespace: str, name: str,
                      statuses: list[dict[str, Any]]) -> None:  # fmt: skip
        """Successive reads of the object see these statuses in turn (the last one sticks)."""
        self.scripts[(api_version, kind, namespace, name)] = [copy.deepcopy(s) for s in statuses]

    def play_jobs(self, player: Callable[[FakeKube, dict[str, Any], int], None]) -> None:
        """Play the Job controller and its pod: before each read of a Job (get or list),
        ``player(fake, live_job, tick)`` may advance it — write its journal ConfigMap, set
        ``status.succeeded``/``failed`` on ``live_job`` (the stored object). ``tick`` counts that
        Job's reads from 0 and starts again when the Job is created anew."""
        self.job_player = player

    def on_apply(self, kind: str, hook: Callable[[FakeKube, dict[str, Any]], None]) -> None:
        self.hooks.append((kind, hook))

    def add_job_pod(self, job: dict[str, Any], *, waiting: tuple[str, str, str] | None = None,
                    unschedulable: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The pod of ``job`` as the Job controller creates it (label ``job-name``) and the kubelet
        reports it: running by default; ``waiting=(container, reason, message)`` leaves that container
        waiting (the main one waits with PodInitializing behind a stuck init container);
        ``unschedulable`` is the scheduler's message for a pod no node can take."""
        meta, template = job["metadata"], job["spec"]["template"]
        name = f"{meta['name']}-{len(self.of_kind('Pod')):05d}"
        spec = copy.deepcopy(template["spec"])
        init = [c["name"] for c in spec.get("initContainers") or []]
        main = [c["name"] for c in spec.get("containers") or []]
        images = {c["name"]: c["image"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])}

        def container(cname: str, state: dict[str, Any]) -> dict[str, Any]:
            return {"name": cname, "image": images[cname], "ready": "running" in state, "restartCount": 0,
                    "state": state}  # fmt: skip

        if unschedulable is not None:
            status: dict[str, Any] = {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]}
        elif waiting is not None:
            stuck, reason, message = waiting
            blocked = stuck in init
            states = {c: ({"waiting": {"reason": reason, "message": message}} if c == stuck
                          else {"waiting": {"reason": "PodInitializing"}} if blocked and c in main
                          else {"terminated": {"exitCode": 0, "reason": "Completed"}}) for c in init + main}
            status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                      "initContainerStatuses": [container(c, states[c]) for c in init],
                      "containerStatuses": [container(c, states[c]) for c in main]}  # fmt: skip
        else:
            status = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
                      "initContainerStatuses": [container(c, {"terminated": {"exitCode": 0}}) for c in init],
                      "containerStatuses": [container(c, {"running": {"startedAt": "now"}}) for c in main]}
        return self.put({"apiVersion": "v1", "kind": "Pod", "spec": spec, "status": status,
                         "metadata": {"name": name, "namespace": meta["namespace"],
                                      "labels": {**(template.get("metadata") or {}).get("labels", {}),
                                                 "job-name": meta["name"], "batch.kubernetes.io/job-name":
                                                 meta["name"]}}})  # fmt: skip

    def as_service_account(self, namespace: str, name: str) -> ServiceAccountApi:
        return ServiceAccountApi(self, namespace, name)

    def managers(self, obj: dict[str, Any]) -> set[str]:
        return {m["manager"] for m in (obj.get("metadata") or {}).get("managedFields") or []}

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for k, o in self.objects.items() if k[1] == kind]

    def add_workload(self, kind: str, name: str, namespace: str, *, replicas: int = 2, reads: int = 2) -> None:
        """A rolled-out Deployment/StatefulSet whose controller, after each template change, reports
        ``reads`` in-progress statuses (generation not yet observed, then half updated), then done;
        ``reads=-1`` never finishes (a stuck rollout)."""
        self.put({"apiVersion": "apps/v1", "kind": kind,
                  "metadata": {"name": name, "namespace": namespace, "generation": 1},
                  "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}},
                                                              "spec": {"containers": [{"name": name}]}}},
                  "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                             "availableReplicas": replicas}})  # fmt: skip
        self.rollouts[("apps/v1", kind, namespace, name)] = reads

    def _start_rollout(self, key: Key, obj: dict[str, Any]) -> None:
        generation, want = int(obj["metadata"]["generation"]), int(obj["spec"].get("replicas", 1))
        old = dict(obj.get("status") or {})
        seen = {**old, "observedGeneration": generation, "updatedReplicas": want // 2, "availableReplicas": want - 1}
        done = {**old, "observedGeneration": generation, "updatedReplicas": want, "availableReplicas": want}
        reads = self.rollouts[key]
        steps = [old, seen] * 1000 if reads < 0 else [*([old] + [seen] * (reads - 1))[:reads], done]
        self.scripts[key] = steps

    # -- plumbing

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def _check(self, verb: str, resource: Resource, namespace: str | None) -> None:
        if self.failure is not None:
            raise self.failure
        if (verb, resource.qualified) in self.denied:
            raise KubeForbidden(verb, resource.qualified, namespace if resource.namespaced else None)

    def _read(self, key: Key) -> dict[str, Any] | None:
        if key[1] == "Job" and self.job_player is not None and key in self.objects:
            with self._job_lock:
                tick = self._job_ticks.get(key, 0)
                self._job_ticks[key] = tick + 1
                self.job_player(self, self.objects[key], tick)
        obj = self.objects.get(key)
        if obj is None:
            return None
        script = self.scripts.get(key)
        if script:
            obj["status"] = script.pop(0) if len(script) > 1 else copy.deepcopy(script[0])
        return copy.deepcopy(obj)

    # -- KubeApi

    def server_version(self) -> str:
        if self.failure is not None:
            raise self.failure
        return self.version

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        res = resource_for(api_version, kind)
        self._check("get", res, namespace)
        return self._read((api_version, kind, (namespace or "") if res.namespaced else "", name))

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        self._check("list", resource_for(api_version, kind), namespace)
        keys = [k for k in self.objects if k[0] == api_version and k[1] == kind and (namespace is None
                or k[2] == namespace)]  # fmt: skip
        found = [self._read(k) for k in sorted(keys)]
        return [o for o in found if o is not None and _matches(o, label_selector)]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, namespace, name = identity(obj)
        res = resource_for(api_version, kind)
        self._check("patch", res, namespace)
        if not name or name == "None":
            raise AssertionError(f"apply without metadata.name: {obj}")
        if res.namespaced and not namespace:
            raise AssertionError(f"namespaced {kind} {name} applied without a namespace")
        self.applied.append(copy.deepcopy(obj))
        key = (api_version, kind, namespace, name)
        applied = {k: v for k, v in copy.deepcopy(obj).items() if k != "status"}
        live = self.objects.get(key)
        merged = _merge(live, applied) if live else applied
        fields = [m for m in merged["metadata"].get("managedFields") or [] if m["manager"] != FIELD_MANAGER]
        merged["metadata"]["managedFields"] = [*fields, {"manager": FIELD_MANAGER, "operation": "Apply"}]
        self._bump(merged)
        self.objects[key] = merged
        self.calls.append(("apply", kind, namespace, name))
        for hook_kind, hook in list(self.hooks):
            if hook_kind == kind:
                hook(self, copy.deepcopy(merged))
        return copy.deepcopy(merged)

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        res = resource_for(api_version, kind)
        self._check("patch", res, namespace)
        key = (api_version, kind, namespace or "", name)
        if key not in self.objects:
            raise AssertionError(f"merge patch of missing {key}")
        patched = _merge_patch(self.objects[key], patch)
        if patched.get("spec") != self.objects[key].get("spec"):  # as the API server: spec changes bump it
            patched["metadata"]["generation"] = int(patched["metadata"].get("generation") or 1) + 1
            if key in self.rollouts:
                self._start_rollout(key, patched)
        self._bump(patched)
        self.objects[key] = patched
        self.calls.append(("merge_patch", kind, namespace or "", name))
        return copy.deepcopy(patched)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, namespace, name = identity(obj)
        self._check("create", resource_for(api_version, kind), namespace)
        if (api_version, kind, namespace, name) in self.objects:
            raise KubeConflict(f"{kind} {name} already exists")
        self.calls.append(("create", kind, namespace, name))
        self._job_ticks.pop((api_version, kind, namespace, name), None)
        return copy.deepcopy(self.put(obj))

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self._check("delete", resource_for(api_version, kind), namespace)
        self.calls.append(("delete", kind, namespace or "", name))
        if kind == "Job":  # background propagation: the garbage collector removes the Job's pods
            for key in [k for k, o in self.objects.items() if k[1] == "Pod" and k[2] == (namespace or "")
                        and (o["metadata"].get("labels") or {}).get("job-name") == name]:  # fmt: skip
                del self.objects[key]
        return self.objects.pop((api_version, kind, namespace or "", name), None) is not None

    def get_crd(self, name: str) -> dict[str, Any] | None:
        return self.get(CRD_API, "CustomResourceDefinition", name)

    def read_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        obj = self.get("v1", "Secret", name, namespace)
        if obj is None:
            return None
        out = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        out.update(obj.get("stringData") or {})
        return out

    def can_i(self, verb: str, resource: Resource, namespace: str | None, subresource: str = "") -> bool:
        if self.failure is not None:
            raise self.failure
        qualified = f"{resource.qualified}/{subresource}" if subresource else resource.qualified
        return (verb, qualified) not in self.denied

    def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("v1", "ResourceQuota", namespace)

    def storage_classes(self) -> list[dict[str, Any]]:
        return self.list("storage.k8s.io/v1", "StorageClass")

    def port_forward(self, namespace: str, pod: str, port: int) -> FakePortForward:
        if self.failure is not None:
            raise self.failure
        forward = FakePortForward(40000 + len(self.forwards), f"{namespace}/{pod}:{port}")
        self.forwards.append(forward)
        return forward


RBAC_API = "rbac.authorization.k8s.io/v1"


class ServiceAccountApi:
    """``fake`` as ServiceAccount ``namespace/name`` sees it (a Job's pod): each call is authorized the way
    Kubernetes' RBAC authorizer does it, against the Roles that RoleBindings in the object's namespace
    bind to that account; a refusal raises KubeForbidden and is recorded in ``denied``."""

    def __init__(self, fake: FakeKube, namespace: str, name: str) -> None:
        self.fake, self.namespace, self.name = fake, namespace, name
        self.denied: list[tuple[str, str, str, str]] = []  # (verb, resource, namespace, name)

    def allowed(self, verb: str, resource: Resource, namespace: str, name: str = "") -> bool:
        for binding in self.fake.of_kind("RoleBinding"):
            if binding["metadata"].get("namespace") != namespace or binding["roleRef"]["kind"] != "Role":
                continue
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == self.name
                       and s.get("namespace") == self.namespace for s in binding.get("subjects") or []):  # fmt: skip
                continue
            role = self.fake.objects.get((RBAC_API, "Role", namespace, binding["roleRef"]["name"]))
            for rule in (role or {}).get("rules") or []:
                names = rule.get("resourceNames") or []
                if (resource.group in rule["apiGroups"] or "*" in rule["apiGroups"]) \
                        and (resource.plural in rule["resources"] or "*" in rule["resources"]) \
                        and (verb in rule["verbs"] or "*" in rule["verbs"]) \
                        and (not names or (name and name in names)):  # fmt: skip
                    return True
        return False

    def _authorize(self, verb: str, api_version: str, kind: str, namespace: str | None, name: str = "") -> None:
        resource = resource_for(api_version, kind)
        if not self.allowed(verb, resource, namespace or "", name):
            self.denied.append((verb, resource.qualified, namespace or "", name))
            raise KubeForbidden(verb, resource.qualified, namespace,
                                f"User \"system:serviceaccount:{self.namespace}:{self.name}\"")

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._authorize("get", api_version, kind, namespace, name)
        return self.fake.get(api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        self._authorize("list", api_version, kind, namespace)
        return self.fake.list(api_version, kind, namespace, label_selector)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, namespace, name = identity(obj)
        if (api_version, kind, namespace, name) not in self.fake.objects:
            self._authorize("create", api_version, kind, namespace)  # an apply that creates needs both
        self._authorize("patch", api_version, kind, namespace, name)
        return self.fake.apply(obj)

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        self._authorize("patch", api_version, kind, namespace, name)
        return self.fake.merge_patch(api_version, kind, name, namespace, patch)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, namespace, _ = identity(obj)
        self._authorize("create", api_version, kind, namespace)  # the authorizer sees no name on create
        return self.fake.create(obj)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self._authorize("delete", api_version, kind, namespace, name)
        return self.fake.delete(api_version, kind, name, namespace)

    def read_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        self._authorize("get", "v1", "Secret", namespace, name)
        return self.fake.read_secret(name, namespace)

    def can_i(self, verb: str, resource: Resource, namespace: str | None, subresource: str = "") -> bool:
        return self.allowed(verb, resource, namespace or "")

    def __getattr__(self, attr: str) -> Any:  # server_version, get_crd…: authorization not modelled
        return getattr(self.fake, attr)


def fake_password_hash(plan: Any, role: str) -> str:
    """Stands in for the source's ``pg_authid`` lookup (there is no source server behind the fake API):
    a SCRAM verifier per role, recognisable in the filled Secrets."""
    return f"SCRAM-SHA-256$4096:ZmFrZQ==${role}:fake"
