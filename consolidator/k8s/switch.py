"""Cutover on Kubernetes: pause the app's Pooler, patch ConfigMap/Secret keys, rollout-restart workloads.

Everything goes through :class:`~consolidator.k8s.api.KubeApi`. What the switch changes is recorded
*before* it changes it, in the Secret ``<cluster>-consolidator-rollback`` in the cluster's
namespace: a ``manifest.json`` key (which keys were patched, whether each existed, which workloads
were restarted with which ``restartedAt`` stamp — never a value) and one ``vN`` key per previous
value. Previous values, secret or not, thus stay inside the API: nothing reaches the plan
directory, the journal or a log, which only ever see what was done (``set Secret apps/db key
DB_PASS``).

Both directions are idempotent. A resumed switch keeps the values first recorded (a key already
recorded is never recorded again, so a crash after a patch cannot turn the new value into the
"previous" one), skips keys that already hold their new value and does not restart a workload
whose template already carries the stamp recorded for it. ``revert`` restores keys in reverse
order (removing those that did not exist), restarts the same workloads, then deletes the Secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from consolidator.errors import ConsolidatorError, StepFailed
from consolidator.k8s.api import FIELD_MANAGER, KubeApi, Resource, resource_for
from consolidator.manifests.admission import CNPG_API
from consolidator.manifests.render import APP_LABEL, MANAGED_BY, MANAGED_BY_LABEL, label_value, pooler_name
from consolidator.plan.kube_hooks import KeyPatch, KubeSwitch, Workload, kube_switch
from consolidator.plan.model import App

ROLLBACK_SUFFIX = "-consolidator-rollback"
MANIFEST_KEY = "manifest.json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
PURPOSE_ANNOTATION = "consolidator.io/purpose"
WORKLOAD_API = "apps/v1"


def rollback_secret_name(app: App) -> str:
    return f"{app.cluster_name}{ROLLBACK_SUFFIX}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _entry_id(kind: str, namespace: str, name: str, key: str = "") -> str:
    return f"{kind}/{namespace}/{name}" + (f"/{key}" if key else "")


def pauses_pooler(app: App, spec: KubeSwitch | None) -> bool:
    """Pause the Pooler during the drain: when the app has one, unless ``pause_pooler: false``."""
    return app.sizing.pooler.enabled and not (spec is not None and spec.pause_pooler is False)


# --------------------------------------------------------------------------------------- preflight


def switch_permissions(apps: list[App]) -> list[tuple[Resource, str, str, tuple[str, ...]]]:
    """(resource, subresource, namespace, verbs) the switch needs: only where the hooks act."""
    secrets, configmaps = resource_for("v1", "Secret"), resource_for("v1", "ConfigMap")
    out: list[tuple[Resource, str, str, tuple[str, ...]]] = []
    for app in apps:
        try:
            spec = kube_switch(app)
        except ConsolidatorError:
            continue  # reported by switch_problems
        if pauses_pooler(app, spec):
            out.append((resource_for(CNPG_API, "Pooler"), "", app.namespace, ("get", "patch")))
        if spec is None:
            continue
        if spec.patches or spec.restarts:  # the rollback record
            out.append((secrets, "", app.namespace, ("get", "create", "patch", "delete")))
        for patch in spec.patches:
            out.append((secrets if patch.kind == "Secret" else configmaps, "", patch.namespace, ("get", "patch")))
            if patch.from_secret is not None:
                out.append((secrets, "", patch.from_secret.namespace, ("get",)))
        for workload in spec.restarts:
            out.append((resource_for(WORKLOAD_API, workload.kind), "", workload.namespace, ("get", "patch")))
    return out


def switch_problems(api: KubeApi, apps: list[App]) -> list[tuple[str, str, str]]:
    """(severity, message, hint) for hooks that cannot work: bad placeholders, missing objects."""
    out: list[tuple[str, str, str]] = []
    for app in apps:
        try:
            spec = kube_switch(app)
        except ConsolidatorError as exc:  # a placeholder the app cannot fill
            out.append(("error", exc.message, exc.hint or ""))
            continue
        if spec is None:
            continue
        named = [("v1", p.kind, p.namespace, p.name) for p in spec.patches]
        named += [(WORKLOAD_API, w.kind, w.namespace, w.name) for w in spec.restarts]
        for api_version, kind, namespace, name in dict.fromkeys(named):
            if api.get(api_version, kind, name, namespace) is None:
                out.append(("error", f"{kind} {namespace}/{name} named by the Kubernetes hooks of {app.name} does "
                            "not exist", "create it, or fix the name in the plan's hooks.kubernetes"))  # fmt: skip
    return out


# --------------------------------------------------------------------------------------- switch


class Switcher:
    """Apply and revert one app's Kubernetes hooks; ``sleep``/``clock`` are injectable for tests."""

    def __init__(self, api: KubeApi, *, poll_interval: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.api = api
        self.poll_interval = poll_interval
        self._sleep, self._clock = sleep, clock

    # -- the Pooler

    def set_paused(self, app: App, paused: bool) -> list[str]:
        """``spec.pgbouncer.paused`` of the app's Pooler (declarative PAUSE/RESUME)."""
        if not pauses_pooler(app, kube_switch(app)):
            return []
        name = pooler_name(app)
        ref = f"Pooler {app.namespace}/{name}"
        pooler = self.api.get(CNPG_API, "Pooler", name, app.namespace)
        if pooler is None:
            return [f"{ref} not found: nothing to {'pause' if paused else 'resume'}"]
        if bool(((pooler.get("spec") or {}).get("pgbouncer") or {}).get("paused")) == paused:
            return []
        self.api.merge_patch(CNPG_API, "Pooler", name, app.namespace, {"spec": {"pgbouncer": {"paused": paused}}})
        return [f"{'paused' if paused else 'resumed'} {ref}"]

    # -- the rollback record

    def _record(self, app: App) -> tuple[dict[str, Any], dict[str, str]] | None:
        """(manifest, raw data) of the rollback Secret, or None when there is none."""
        secret = self.api.get("v1", "Secret", rollback_secret_name(app), app.namespace)
        if secret is None:
            return None
        data = dict(secret.get("data") or {})
        manifest = json.loads(_unb64(data[MANIFEST_KEY])) if MANIFEST_KEY in data else {}
        manifest.setdefault("patches", [])
        manifest.setdefault("restarts", {})
        return manifest, data

    def _save(self, app: App, manifest: dict[str, Any], values: dict[str, str], *, exists: bool) -> None:
        data = {MANIFEST_KEY: _b64(json.dumps(manifest, sort_keys=True)), **values}
        if exists:
            self.api.merge_patch("v1", "Secret", rollback_secret_name(app), app.namespace, {"data": data})
            return
        self.api.create({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": data,
            "metadata": {"name": rollback_secret_name(app), "namespace": app.namespace,
                         "labels": {MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: label_value(app.name)},
                         "annotations": {PURPOSE_ANNOTATION: f"values the switch of {app.name} replaced, for "
                                         f"consolidator rollback (managed by {FIELD_MANAGER})"}},
        })  # fmt: skip

    # -- keys

    def _current(self, kind: str, namespace: str, name: str, key: str) -> str | None:
        """The key's value now (None when the key is absent); the object must exist."""
        if kind == "Secret":
            values = self.api.read_secret(name, namespace)
        else:
            obj = self.api.get("v1", kind, name, namespace)
            values = None if obj is None else {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        if values is None:
            raise StepFailed(f"{kind} {namespace}/{name} does not exist (named by the Kubernetes hooks)",
                             hint="create it or fix hooks.kubernetes in the plan, then execute --resume")  # fmt: skip
        return values.get(key)

    def _set(self, kind: str, namespace: str, name: str, key: str, value: str | None) -> None:
        encoded = None if value is None else (_b64(value) if kind == "Secret" else value)
        self.api.merge_patch("v1", kind, name, namespace, {"data": {key: encoded}})

    def _desired(self, patch: KeyPatch) -> str:
        if patch.from_secret is None:
            return str(patch.value)
        ref = patch.from_secret
        values = self.api.read_secret(ref.name, ref.namespace)
        if values is None or ref.key not in values:
            what = f"Secret {ref.namespace}/{ref.name}" + ("" if values is None else f" has no key {ref.key}")
            raise StepFailed(f"cannot set {patch.ref}: {what}" + (" does not exist" if values is None else ""),
                             hint="CloudNativePG creates <cluster>-app with the initdb owner; check the name "
                             "in hooks.kubernetes, then execute --resume")  # fmt: skip
        return values[ref.key]

    # -- workloads

    def _restart_once(self, app: App, workload: Workload, manifest: dict[str, Any], phase: str) -> str:
        """Stamp ``restartedAt`` (recorded first) unless the template already carries our stamp."""
        live = self.api.get(WORKLOAD_API, workload.kind, workload.name, workload.namespace)
        if live is None:
            raise StepFailed(f"{workload.ref} does not exist (named by the Kubernetes hooks)",
                             hint="fix hooks.kubernetes.restart in the plan, then execute --resume")  # fmt: skip
        stamps = manifest["restarts"].setdefault(phase, {})
        ident = _entry_id(workload.kind, workload.namespace, workload.name)
        annotations = (((live.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
        if ident in stamps and annotations.get(RESTARTED_AT) == stamps[ident]:
            return f"{workload.ref} already restarted"
        stamps[ident] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._save(app, manifest, {}, exists=True)
        self.api.merge_patch(WORKLOAD_API, workload.kind, workload.name, workload.namespace,
                             {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamps[ident]}}}}})
        return f"restarted {workload.ref}"

    @staticmethod
    def rollout_state(obj: dict[str, Any]) -> tuple[bool, str]:
        """(done, what it is waiting for): generation observed, every replica updated and available."""
        want = int((obj.get("spec") or {}).get("replicas", 1))
        status = obj.get("status") or {}
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        observed = int(status.get("observedGeneration") or 0)
        updated, available = int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0)
        done = observed >= generation and updated == want and available == want
        detail = f"{updated}/{want} updated, {available}/{want} available"
        if observed < generation:
            detail = f"generation {generation} not observed yet (at {observed}); " + detail
        return done, detail

    def wait_rollouts(self, workloads: list[Workload], timeout: float,
                      then: str = "execute --resume (or consolidator rollback)") -> None:  # fmt: skip
        deadline = self._clock() + timeout
        pending = list(workloads)
        while True:
            waiting: list[tuple[Workload, str]] = []
            for workload in pending:
                live = self.api.get(WORKLOAD_API, workload.kind, workload.name, workload.namespace)
                if live is None:
                    raise StepFailed(f"{workload.ref} vanished during its rollout", hint="execute --resume")
                done, detail = self.rollout_state(live)
                if not done:
                    waiting.append((workload, detail))
            if not waiting:
                return
            pending = [w for w, _ in waiting]
            if self._clock() >= deadline:
                first, detail = waiting[0]
                raise StepFailed(
                    f"rollout of {first.ref} not done after {timeout:g}s: {detail}"
                    + (f" (and {len(waiting) - 1} more workloads)" if len(waiting) > 1 else ""),
                    hint=f"kubectl -n {first.namespace} rollout status {first.kind.lower()}/{first.name} and its "
                    f"pods' events; fix, then {then}",
                )
            self._sleep(self.poll_interval)

    # -- the two directions

    def switch(self, app: App) -> list[str]:
        """Record previous values, set every key, restart and wait; returns what was done (no values)."""
        spec = kube_switch(app)
        if spec is None or not (spec.patches or spec.restarts):
            return []
        record = self._record(app)
        manifest = record[0] if record is not None else {"patches": [], "restarts": {}}
        known = {_entry_id(e["kind"], e["namespace"], e["name"], e["key"]) for e in manifest["patches"]}
        new_values: dict[str, str] = {}
        for patch in spec.patches:
            ident = _entry_id(patch.kind, patch.namespace, patch.name, patch.key)
            if ident in known:
                continue  # recorded by an earlier attempt: its previous value is the original one
            previous = self._current(patch.kind, patch.namespace, patch.name, patch.key)
            slot = f"v{len(manifest['patches'])}"
            manifest["patches"].append({"kind": patch.kind, "namespace": patch.namespace, "name": patch.name,
                                        "key": patch.key, "existed": previous is not None, "slot": slot})
            if previous is not None:
                new_values[slot] = _b64(previous)
        if record is None or len(manifest["patches"]) != len(known):
            self._save(app, manifest, new_values, exists=record is not None)
        done: list[str] = []
        for patch in spec.patches:
            desired = self._desired(patch)
            if self._current(patch.kind, patch.namespace, patch.name, patch.key) == desired:
                done.append(f"{patch.ref} already set")
                continue
            self._set(patch.kind, patch.namespace, patch.name, patch.key, desired)
            done.append(f"set {patch.ref}")
        done += [self._restart_once(app, w, manifest, "switch") for w in spec.restarts]
        self.wait_rollouts(list(spec.restarts), spec.rollout_timeout)
        return done

    def revert(self, app: App, *, rollout_timeout: float | None = None) -> list[str]:
        """Restore every recorded key (reverse order), restart the same workloads, delete the record."""
        record = self._record(app)
        if record is None:
            return []
        manifest, data = record
        done: list[str] = []
        for entry in reversed(manifest["patches"]):
            kind, namespace, name, key = entry["kind"], entry["namespace"], entry["name"], entry["key"]
            ref = f"{kind} {namespace}/{name} key {key}"
            if self.api.get("v1", kind, name, namespace) is None:
                done.append(f"{kind} {namespace}/{name} is gone: {key} not restored")
                continue
            previous = _unb64(data[entry["slot"]]) if entry["existed"] else None
            if self._current(kind, namespace, name, key) != previous:
                self._set(kind, namespace, name, key, previous)
                done.append(f"restored {ref}" if entry["existed"] else f"removed {ref} (it did not exist before)")
        workloads = []
        for ident in manifest["restarts"].get("switch", {}):
            kind, namespace, name = ident.split("/", 2)
            workloads.append(Workload(kind, name, namespace))
        done += [self._restart_once(app, w, manifest, "revert") for w in workloads]
        if rollout_timeout is None:
            spec = kube_switch(app)
            rollout_timeout = spec.rollout_timeout if spec is not None else 600.0
        self.wait_rollouts(workloads, rollout_timeout, then="run consolidator rollback again")
        self.api.delete("v1", "Secret", rollback_secret_name(app), app.namespace)
        return done
