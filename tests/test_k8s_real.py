"""Opt-in: the demo's legacy apps migrated onto a real Kubernetes cluster with CloudNativePG.

Run with ``pytest -m k8s`` when ``KUBECONFIG`` points at a cluster where CloudNativePG (≥ 1.25) runs,
e.g. a local kind cluster (README, "Trying the cnpg provider on kind"). The legacy server itself runs
in the cluster (a plain ``postgres`` Deployment), so its pods reach it by Service name while this
machine reaches it through a port-forward — the same split as a real migration (``--source`` here,
``--source-from-cluster`` for the pods). Everything is created in a throwaway namespace and removed.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from consolidator.demo.legacy import create_legacy_databases
from consolidator.pg.connect import connect
from tests.test_cli import cli

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG pointing at a cluster with CNPG"),
]

IMAGE = os.environ.get("CONSOLIDATOR_K8S_LEGACY_IMAGE", "postgres:15")


def _legacy_objects(namespace: str, password: str) -> list[dict]:  # type: ignore[type-arg]
    labels = {"app": "legacy-pg"}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "legacy-pg-admin", "namespace": namespace},
         "stringData": {"password": password}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "legacy-pg", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{
                 "name": "postgres", "image": IMAGE,
                 "args": ["-c", "wal_level=logical", "-c", "max_wal_senders=10", "-c", "max_replication_slots=10"],
                 "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "legacy-pg-admin",
                                                                                    "key": "password"}}}],
                 "ports": [{"containerPort": 5432}],
                 "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 2},
             }]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy-pg", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"port": 5432, "targetPort": 5432}]}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def legacy() -> Iterator[tuple[str, str, str]]:
    """(namespace, DSN from this machine without password, admin password) of the in-cluster legacy server."""
    from consolidator.k8s.client import KubernetesApi

    api = KubernetesApi()
    namespace = f"consolidator-e2e-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    forward = None
    try:
        for obj in _legacy_objects(namespace, password):
            api.apply(obj)
        deadline = time.monotonic() + 300
        pod = None
        while time.monotonic() < deadline and pod is None:
            for item in api.list("v1", "Pod", namespace, label_selector="app=legacy-pg"):
                ready = [c for c in (item.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
                if ready and ready[0].get("status") == "True":
                    pod = item["metadata"]["name"]
            time.sleep(2)
        assert pod, "the legacy postgres pod did not become ready in 5 minutes"
        forward = api.port_forward(namespace, pod, 5432)
        dsn = make_conninfo(host="127.0.0.1", port=str(forward.local_port), user="postgres", dbname="postgres")
        with connect(make_conninfo(dsn, password=password)):
            pass
        yield namespace, dsn, password
    finally:
        if forward is not None:
            forward.close()
        api.delete("v1", "Namespace", namespace)


def test_demo_apps_onto_cloudnativepg(legacy: tuple[str, str, str], tmp_path: Path) -> None:
    namespace, dsn, password = legacy
    env = {"PGPASSWORD": password}
    create_legacy_databases(make_conninfo(dsn, password=password), scale_mb=5)
    out = tmp_path / "plan"
    planned = cli("plan", "--source", dsn, "--out", str(out), "--target", "cnpg", "--namespace", namespace,
                  "--instances", "1", "--sample-seconds", "0", "--source-from-cluster",
                  f"legacy-pg.{namespace}.svc:5432", "--strategy", "dump", "--strategy", "mastodon_production=logical",
                  env=env)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    try:
        done = cli("execute", str(out), "--yes", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        status = json.loads(cli("status", str(out), "--json", env=env).stdout)
        assert all(app["state"] == "cut_over" for app in status["apps"]), status
        verified = cli("verify", str(out), env=env)
        assert verified.returncode == 0, verified.stdout[-3000:]
    finally:
        cli("teardown", str(out), "--yes", "--force", env=env)
