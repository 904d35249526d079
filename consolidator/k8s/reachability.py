"""Can the cluster's pods reach the legacy server? Asked from inside the cluster, before a Cluster needs it.

Logical subscriptions, physical base backups and the operator's import all connect *from the pods*
to the address in ``externalClusters``, with the password from its Secret. A laptop that reaches the
source proves nothing about that path (NetworkPolicies, pg_hba, DNS, a LoadBalancer in between), so
a short-lived Pod with the cluster's own operand image runs ``psql … -c 'SELECT 1'`` exactly as the
operator would connect, and its termination message says what went wrong.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from psycopg.conninfo import make_conninfo

from consolidator.errors import PreconditionError
from consolidator.k8s.api import KubeApi
from consolidator.manifests.render import (
    APP_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    image_for,
    label_value,
    source_connection_parameters,
)
from consolidator.plan.model import App, Plan

PROBE_SECONDS = 20  # connect_timeout 10 s, plus the image pull on a warm node
POSTGRES_UID = 26  # the operand image's postgres user


def probe_pod(plan: Plan, app: App, *, database: str | None = None) -> dict[str, Any]:
    """The Pod that connects like the operator: same image, same parameters, password from the same Secret."""
    params = source_connection_parameters(plan)
    if database:
        params["dbname"] = database
    conninfo = make_conninfo(**params, connect_timeout="10")
    name = f"{app.cluster_name}-source-check-{secrets.token_hex(3)}"[:63]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": app.namespace,
                     "labels": {MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: label_value(app.name),
                                "consolidator.io/purpose": "source-check"}},  # fmt: skip
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 60,
            "securityContext": {"runAsNonRoot": True, "runAsUser": POSTGRES_UID, "seccompProfile":
                                {"type": "RuntimeDefault"}},  # fmt: skip
            "containers": [{
                "name": "check",
                "image": image_for(plan, app),
                "command": ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", conninfo, "-c",
                            "SELECT 'reached ' || version()"],
                "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
                    "name": plan.source.password_secret, "key": "password"}}}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True},  # fmt: skip
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                              "limits": {"cpu": "200m", "memory": "64Mi"}},  # fmt: skip
            }],
        },
    }  # fmt: skip


def check_source_reachable(
    api: KubeApi,
    plan: Plan,
    app: App,
    *,
    timeout: float = 120,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll: float = 2.0,
) -> str:
    """Run the probe Pod to completion and remove it; the server's answer, or PreconditionError with the
    reason (the Pod's termination message) and where to look."""
    pod = probe_pod(plan, app)
    name, namespace = pod["metadata"]["name"], app.namespace
    params = source_connection_parameters(plan)
    where = f"{params.get('host')}:{params.get('port', '5432')}"
    api.apply(pod)
    try:
        deadline = clock() + timeout
        while True:
            live = api.get("v1", "Pod", name, namespace) or {}
            status = live.get("status") or {}
            phase = status.get("phase", "Pending")
            if phase in ("Succeeded", "Failed"):
                break
            if clock() > deadline:
                waiting = _waiting_reason(status)
                raise PreconditionError(
                    f"app {app.name}: the reachability check pod {namespace}/{name} did not finish in "
                    f"{timeout:.0f}s ({phase}{': ' + waiting if waiting else ''})",
                    hint="check that the image can be pulled and the namespace can run pods "
                         f"(kubectl describe pod {name} -n {namespace})",
                )  # fmt: skip
            sleep(poll)
        terminated = _terminated(status)
        message = str(terminated.get("message") or "").strip().splitlines()
        if phase == "Succeeded":
            return message[-1] if message else f"reached {where}"
        reason = message[-1] if message else f"exit code {terminated.get('exitCode', '?')}"
        raise PreconditionError(
            f"app {app.name}: the cluster's pods cannot reach the legacy server at {where} as "
            f"{params.get('user')}: {reason}",
            hint=_hint(reason, plan),
        )
    finally:
        api.delete("v1", "Pod", name, namespace)


def _terminated(status: dict[str, Any]) -> dict[str, Any]:
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return {}


def _waiting_reason(status: dict[str, Any]) -> str:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason") or "")
    return ""


def _hint(reason: str, plan: Plan) -> str:
    text = reason.lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return (f"put the source password in Secret {plan.source.password_secret} (key password) in the app's "
                "namespace")  # fmt: skip
    if "pg_hba.conf" in text:
        return "add a pg_hba.conf entry on the legacy server for the cluster's pod network, then reload it"
    if "could not translate host name" in text or "timeout expired" in text or "connection refused" in text:
        return ("make the legacy server reachable from the pods (DNS, firewall, NetworkPolicy), or plan again "
                "with --source-from-cluster HOST[:PORT] naming the address the pods can use")  # fmt: skip
    return "run the same psql from a pod in that namespace to see the full error"
