"""The cnpg provider against the in-memory Kubernetes fake: preflight, apply, wait, teardown, promote."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.cnpg_preflight import PreflightFailed
from consolidator.engine.provider import provider_for
from consolidator.errors import ExitCode, PreconditionError, StepFailed
from consolidator.k8s.api import KubeForbidden, KubeUnreachable
from consolidator.k8s.portforward import TcpRelay
from consolidator.manifests.render import write_manifests
from consolidator.plan.model import BackupTarget, Plan
from tests.cnpg_schema import validate_object
from tests.kube_fake import Clock, FakeKube, cnpg_example_plan, fake_password_hash

NS = "apps"
CNPG = "postgresql.cnpg.io/v1"
SOURCE_PASSWORD = "s0urce-secret:pw"
SUPERUSER_PASSWORD = "Sup3r-secret-pw"
SETTING_UP = {"phase": "Setting up primary", "readyInstances": 0}


@pytest.fixture
def plan() -> Plan:
    return cnpg_example_plan(NS)


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.install_cnpg("1.30.0")
    fake.add_namespace(NS)
    fake.add_storage_class("standard")
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider(kube: FakeKube, clock: Clock, plan_dir: Path | None, **kw: Any) -> CnpgProvider:
    kw.setdefault("in_cluster", False)
    return CnpgProvider(plan_dir, kube, poll_interval=2.0, ready_timeout=60, sleep=clock.sleep,
                        password_hash=fake_password_hash,
                        clock=lambda: clock.now, **kw)  # fmt: skip


def healthy(instances: int, timeline: int = 1) -> dict[str, Any]:
    return {"phase": "Cluster in healthy state", "readyInstances": instances, "currentPrimary": "x-1",
            "timelineID": timeline}  # fmt: skip


def play_operator(kube: FakeKube, *, polls_before_ready: int = 0) -> None:
    """On a Cluster apply: create ``<c>-superuser`` and go healthy after a few reads."""

    def react(fake: FakeKube, cluster: dict[str, Any]) -> None:
        meta, spec = cluster["metadata"], cluster["spec"]
        if spec.get("enableSuperuserAccess"):
            fake.add_secret(f"{meta['name']}-superuser", meta["namespace"],
                            {"username": "postgres", "password": SUPERUSER_PASSWORD},
                            labels={"cnpg.io/cluster": meta["name"]})  # fmt: skip
        ready = healthy(spec["instances"]) | {"currentPrimary": f"{meta['name']}-1"}
        fake.script_status(CNPG, "Cluster", meta["namespace"], meta["name"], [SETTING_UP] * polls_before_ready
                           + [ready])  # fmt: skip

    kube.on_apply("Cluster", react)


def errors(exc: PreflightFailed) -> list[str]:
    return [c.message for c in exc.checks if c.fatal]


# --------------------------------------------------------------------------- preflight


def test_preflight_happy_path(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    checks = provider(kube, clock, None).checks(plan, plan.apps)
    assert not [c for c in checks if c.fatal]
    messages = " | ".join(c.message for c in checks)
    assert "Kubernetes API v1.34.1" in messages and "CloudNativePG 1.30.0" in messages


def test_preflight_missing_crds(plan: Plan, clock: Clock) -> None:
    kube = FakeKube()
    kube.add_namespace(NS)
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    assert info.value.exit_code == ExitCode.REFUSED
    assert "CloudNativePG operator not installed" in info.value.message
    assert "kubectl apply --server-side" in (info.value.hint or "")


def test_preflight_old_operator(plan: Plan, clock: Clock) -> None:
    kube = FakeKube()
    kube.install_cnpg("1.24.2")
    kube.add_namespace(NS)
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    assert any("CloudNativePG 1.24.2 is too old" in m and "1.25" in m for m in errors(info.value))


def test_preflight_missing_plugin_with_backups(plan: Plan, clock: Clock) -> None:
    plan.target.backup = BackupTarget("s3://bucket/prefix", attempt="a1")
    kube = FakeKube()
    kube.install_cnpg("1.30.0", plugin=False)
    kube.add_namespace(NS)
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    assert any("Barman Cloud plugin not installed" in m and "objectstores.barmancloud.cnpg.io" in m
               for m in errors(info.value))  # fmt: skip
    old = FakeKube()
    old.install_cnpg("1.25.1")
    old.add_namespace(NS)
    with pytest.raises(PreflightFailed) as info:
        provider(old, clock, None).preflight(plan, plan.apps)
    assert any("cannot run the Barman Cloud plugin" in m for m in errors(info.value))


def test_preflight_names_missing_verb_and_resource(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    kube.deny("create", "poolers.postgresql.cnpg.io")
    kube.deny("delete", "poolers.postgresql.cnpg.io")
    kube.deny("create", "pods/portforward")
    kube.deny("list", "resourcequotas")  # a 403 answer during the checks is reported, not raised alone
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    found = errors(info.value)
    assert f"missing permission: cannot create, delete poolers.postgresql.cnpg.io in namespace {NS}" in found
    assert f"missing permission: cannot create pods/portforward in namespace {NS}" in found
    assert any("cannot list resourcequotas" in m for m in found)
    assert "kubectl auth can-i create poolers.postgresql.cnpg.io -n apps" in (info.value.hint or "")
    # inside the cluster no port-forward is needed
    kube.denied -= {("list", "resourcequotas"), ("create", "poolers.postgresql.cnpg.io"),
                    ("delete", "poolers.postgresql.cnpg.io")}  # fmt: skip
    assert not [c for c in provider(kube, clock, None, in_cluster=True).checks(plan, plan.apps) if c.fatal]


def test_preflight_quota(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    # 3 Clusters × 3 × 250m + team-wiki 100m + nextcloud's Pooler 2 × 250m = 2.85 cores
    kube.add_quota(NS, {"requests.cpu": "3", "requests.memory": "64Gi"}, {"requests.cpu": "1500m"})
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    (problem,) = errors(info.value)
    assert problem.startswith(f"ResourceQuota {NS}/quota: requests.cpu needs 2.85 cores, only 1.5 cores left")
    # the same quota fits once the apps' Clusters exist (their usage is already counted in 'used')
    for app in plan.apps:
        kube.put({"apiVersion": CNPG, "kind": "Cluster", "metadata": {"name": app.cluster_name, "namespace": NS}})
    assert not [c for c in provider(kube, clock, None).checks(plan, plan.apps) if c.fatal]


def test_preflight_storage_class_and_namespace(plan: Plan, clock: Clock) -> None:
    plan.target.storage_class = "fast-ssd"
    kube = FakeKube()
    kube.install_cnpg()
    kube.add_storage_class("standard")
    kube.deny("create", "namespaces")
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    assert "storage class fast-ssd does not exist" in errors(info.value)
    assert any(f"namespace {NS} does not exist" in m for m in errors(info.value))
    assert "available: standard" in (info.value.hint or "")


def test_preflight_unreachable_api(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    kube.timeout()
    with pytest.raises(KubeUnreachable) as info:
        provider(kube, clock, None).preflight(plan, plan.apps)
    assert info.value.exit_code == ExitCode.CONNECTION


# --------------------------------------------------------------------------- provision


def test_provision_applies_validated_objects_and_hands_out_a_passfile(
    plan: Plan, kube: FakeKube, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", SOURCE_PASSWORD)
    kube.objects = {k: v for k, v in kube.objects.items() if k[1] != "Namespace"}  # created on demand
    play_operator(kube, polls_before_ready=2)
    prov = provider(kube, clock, tmp_path)
    handles = {app.name: prov.provision(plan, app) for app in plan.apps}

    assert kube.get("v1", "Namespace", NS) is not None
    assert kube.applied and all(validate_object(obj) is None for obj in kube.applied if obj["kind"] != "Pod")
    # one reachability check per app whose pods connect to the legacy server (logical, physical, import)
    checked = [o["metadata"]["name"].rsplit("-source-check-", 1)[0] for o in kube.applied if o["kind"] == "Pod"]
    assert checked == [a.cluster_name for a in plan.apps if a.strategy.name in ("logical", "physical", "import")]
    assert checked
    assert kube.of_kind("Pod") == []  # the reachability check pods are gone
    for app in plan.apps:
        cluster = kube.get(CNPG, "Cluster", app.cluster_name, NS)
        assert cluster is not None and kube.managers(cluster) == {"consolidator"}
    pooler = kube.get(CNPG, "Pooler", "nextcloud-pooler-rw", NS)
    assert pooler is not None and kube.managers(pooler) == {"consolidator"}
    # every Secret template now has a password: the legacy login the source's, each role its hash from
    # the source (CloudNativePG passes verifiers through, so the roles keep their passwords)
    legacy = kube.read_secret(plan.source.password_secret, NS)
    assert legacy == {"username": "postgres", "password": SOURCE_PASSWORD}
    owner = kube.get("v1", "Secret", "keycloak-keycloak", NS)
    assert owner is not None and owner["stringData"]["password"] == fake_password_hash(plan, "keycloak")
    assert "consolidator.io/generated-password" not in owner["metadata"].get("annotations", {})
    # wait_ready polled through "Setting up primary"
    assert clock.sleeps == 2 * len([a for a in plan.apps])

    handle = handles["keycloak"]
    assert handle.passfile == str(tmp_path / "work" / "keycloak" / "superuser.pgpass")
    assert stat.S_IMODE(os.stat(handle.passfile).st_mode) == 0o600
    assert Path(handle.passfile).read_text() == f"*:*:*:postgres:{SUPERUSER_PASSWORD}\n"
    forward = next(f for f in kube.forwards if f.target == f"{NS}/keycloak-1:5432")
    assert f"host=127.0.0.1 port={forward.local_port} " in handle.conninfo
    assert f"passfile={handle.passfile}" in handle.conninfo and "password" not in handle.conninfo.replace(
        "passfile", "")
    assert SUPERUSER_PASSWORD not in repr(handle)
    assert handles["nextcloud"].app_conninfo == f"host=nextcloud-pooler-rw.{NS}.svc port=5432"
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "superuser.pgpass"
             and (SUPERUSER_PASSWORD in p.read_text(errors="ignore") or SOURCE_PASSWORD in p.read_text(
                 errors="ignore"))]  # fmt: skip
    assert leaks == []

    # provisioning again converges without new forwards or new passwords
    again = prov.provision(plan, plan.app("keycloak"))
    assert again.conninfo == handle.conninfo and len(kube.forwards) == len(plan.apps)
    assert kube.get("v1", "Secret", "keycloak-keycloak", NS)["stringData"] == owner["stringData"]  # type: ignore[index]


def test_provision_keeps_passwords_set_out_of_band(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    kube.add_secret("keycloak-keycloak", NS, {"username": "keycloak", "password": "from-vault"})
    play_operator(kube)
    handle = provider(kube, clock, None, in_cluster=True).provision(plan, plan.app("keycloak"))
    assert kube.read_secret("keycloak-keycloak", NS) == {"username": "keycloak", "password": "from-vault"}
    secret = kube.get("v1", "Secret", "keycloak-keycloak", NS)
    assert secret is not None and "consolidator.io/generated-password" not in secret["metadata"].get(
        "annotations", {})
    assert "host=keycloak-rw.apps.svc" in handle.conninfo and kube.forwards == []
    assert handle.passfile is not None and Path(handle.passfile).parent.name == "keycloak"


def test_provision_refuses_without_source_password(
    plan: Plan, kube: FakeKube, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    play_operator(kube)
    with pytest.raises(PreconditionError, match="legacy source login") as info:
        provider(kube, clock, None).provision(plan, plan.app("mastodon_production"))
    assert "kubectl -n apps create secret generic legacy-source-credentials" in (info.value.hint or "")


def test_provision_refuses_hand_edited_manifests(plan: Plan, kube: FakeKube, clock: Clock, tmp_path: Path) -> None:
    write_manifests(plan, tmp_path)
    play_operator(kube)
    prov = provider(kube, clock, tmp_path)
    prov.provision(plan, plan.app("keycloak"))  # files match the plan
    path = tmp_path / "manifests" / "keycloak" / "cluster-keycloak.yaml"
    path.write_text(path.read_text().replace("instances: 3", "instances: 5"))
    with pytest.raises(PreconditionError, match=r"cluster-keycloak\.yaml differs"):
        prov.provision(plan, plan.app("keycloak"))


def test_provision_with_backups_applies_object_store(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    plan.target.backup = BackupTarget("s3://bucket/prefix", attempt="a1")
    play_operator(kube)
    provider(kube, clock, None).provision(plan, plan.app("keycloak"))
    assert kube.get("barmancloud.cnpg.io/v1", "ObjectStore", "keycloak-store", NS) is not None
    assert kube.get(CNPG, "ScheduledBackup", "keycloak-backup", NS) is not None
    assert all(validate_object(obj) is None for obj in kube.applied)


# --------------------------------------------------------------------------- wait_ready


def _cluster(kube: FakeKube, plan: Plan, name: str, statuses: list[dict[str, Any]]) -> None:
    app = plan.app(name)
    kube.put({"apiVersion": CNPG, "kind": "Cluster", "metadata": {"name": app.cluster_name, "namespace": NS},
              "spec": {"instances": int(app.sizing.instances.value), "enableSuperuserAccess": True}})  # fmt: skip
    kube.add_secret(f"{app.cluster_name}-superuser", NS, {"username": "postgres", "password": SUPERUSER_PASSWORD})
    kube.script_status(CNPG, "Cluster", NS, app.cluster_name, statuses)


def test_wait_ready_after_polls(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    partial = {"phase": "Creating a new replica", "readyInstances": 2}
    _cluster(kube, plan, "keycloak", [SETTING_UP, SETTING_UP, partial, healthy(3)])
    handle = provider(kube, clock, None).wait_ready(plan, plan.app("keycloak"), timeout=60)
    assert clock.sleeps == 3 and handle.cluster == "keycloak" and handle.superuser == "postgres"


def test_wait_ready_surfaces_expected_empty_archive(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    stuck = {"phase": "Setting up primary", "readyInstances": 0, "conditions": [
        {"type": "ContinuousArchiving", "status": "False", "reason": "ContinuousArchivingFailing",
         "message": "unexpected failure invoking barman-cloud-wal-archive: exit status 1: Expected empty archive"}]}
    _cluster(kube, plan, "keycloak", [SETTING_UP, stuck])
    with pytest.raises(StepFailed) as info:
        provider(kube, clock, None).wait_ready(plan, plan.app("keycloak"), timeout=600)
    assert "Cluster apps/keycloak cannot archive WAL" in info.value.message
    assert "Expected empty archive" in info.value.message
    assert "target.backup.attempt" in (info.value.hint or "") and clock.sleeps == 1


def test_wait_ready_surfaces_failed_import_job(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    _cluster(kube, plan, "keycloak", [SETTING_UP])
    kube.put({"apiVersion": "batch/v1", "kind": "Job",
              "metadata": {"name": "keycloak-1-import", "namespace": NS, "labels": {"cnpg.io/cluster": "keycloak"}},
              "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                      "reason": "BackoffLimitExceeded",
                                                      "message": "Job has reached the specified backoff limit"}]}})
    with pytest.raises(StepFailed) as info:
        provider(kube, clock, None).wait_ready(plan, plan.app("keycloak"), timeout=600)
    assert "job keycloak-1-import failed: Job has reached the specified backoff limit" in info.value.message
    assert "logs job/keycloak-1-import" in (info.value.hint or "")


def test_wait_ready_unrecoverable_phase(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    _cluster(kube, plan, "keycloak", [{"phase": "Cluster is in an unrecoverable state, needs manual intervention",
                                       "phaseReason": "bootstrap failed"}])  # fmt: skip
    with pytest.raises(StepFailed, match=r"unrecoverable state.*bootstrap failed"):
        provider(kube, clock, None).wait_ready(plan, plan.app("keycloak"), timeout=600)


def test_wait_ready_timeout_names_phase(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    _cluster(kube, plan, "keycloak", [{"phase": "Setting up primary", "readyInstances": 1,
                                       "phaseReason": "waiting for the instance to be ready"}])  # fmt: skip
    with pytest.raises(StepFailed) as info:
        provider(kube, clock, None).wait_ready(plan, plan.app("keycloak"), timeout=10)
    assert info.value.message.startswith("Cluster apps/keycloak not ready after 10s: Setting up primary; 1/3 ready")
    assert clock.sleeps == 5


def test_describe_and_missing_cluster(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    prov = provider(kube, clock, None)
    assert prov.describe(plan, plan.app("keycloak")) is None
    with pytest.raises(PreconditionError, match="does not exist"):
        prov.wait_ready(plan, plan.app("keycloak"), timeout=5)
    _cluster(kube, plan, "keycloak", [SETTING_UP])  # no primary yet: a handle through the service
    handle = prov.describe(plan, plan.app("keycloak"))
    assert handle is not None and "keycloak-rw.apps.svc" in handle.conninfo
    assert prov.diagnose(plan, plan.app("keycloak")).startswith("Setting up primary; 0/3 ready")


# --------------------------------------------------------------------------- teardown / promote


def test_teardown_removes_only_our_objects(
    plan: Plan, kube: FakeKube, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", SOURCE_PASSWORD)
    play_operator(kube)
    prov = provider(kube, clock, None)
    for name in ("nextcloud", "mastodon_production"):
        prov.provision(plan, plan.app(name))
    kube.add_secret("unrelated", NS, {"password": "x"})
    kube.put({"apiVersion": CNPG, "kind": "Cluster", "metadata": {"name": "nextcloud", "namespace": "other",
              "labels": {"app.kubernetes.io/managed-by": "consolidator", "consolidator.io/app": "nextcloud"}}})
    assert prov.teardown(plan, plan.app("nextcloud")) is True
    remaining = {(k[1], k[2], k[3]) for k in kube.objects}
    assert ("Cluster", NS, "nextcloud") not in remaining and ("Pooler", NS, "nextcloud-pooler-rw") not in remaining
    assert ("Secret", NS, "nextcloud-nextcloud") not in remaining
    assert {("Cluster", NS, "mastodon-production"), ("Secret", NS, "unrelated"), ("Cluster", "other", "nextcloud"),
            ("Secret", NS, plan.source.password_secret), ("Secret", NS, "nextcloud-superuser")} <= remaining
    assert kube.forwards[0].closed
    assert prov.teardown(plan, plan.app("nextcloud")) is False


def test_promote_patches_replica_and_waits_for_new_timeline(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    promoting = {"phase": "Promoting", "timelineID": 2}
    _cluster(kube, plan, "Team Wiki", [healthy(1, timeline=1), healthy(1, timeline=1), promoting, healthy(1, 2)])
    prov = provider(kube, clock, None)
    prov.promote(plan, plan.app("Team Wiki"))
    live = kube.get(CNPG, "Cluster", "team-wiki", NS)
    assert live is not None and live["spec"]["replica"] == {"enabled": False}
    assert ("merge_patch", "Cluster", NS, "team-wiki") in kube.calls and clock.sleeps == 2


# --------------------------------------------------------------------------- plumbing


def test_provider_for_maps_cnpg(plan: Plan, tmp_path: Path) -> None:
    chosen = provider_for(plan, tmp_path)
    assert isinstance(chosen, CnpgProvider) and chosen.plan_dir == tmp_path and chosen.name == "cnpg"


def test_forbidden_call_is_exit_4_naming_verb_and_resource(kube: FakeKube) -> None:
    kube.deny("patch", "clusters.postgresql.cnpg.io")
    with pytest.raises(KubeForbidden) as info:
        kube.apply({"apiVersion": CNPG, "kind": "Cluster", "metadata": {"name": "x", "namespace": NS}})
    assert info.value.exit_code == ExitCode.REFUSED
    assert info.value.message == f"Kubernetes refused: cannot patch clusters.postgresql.cnpg.io in namespace {NS}"


def test_real_client_error_translation() -> None:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import MaxRetryError

    from consolidator.k8s.client import _translate

    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = '{"message": "poolers is forbidden: User \\"dev\\" cannot create resource"}'
    err = _translate(forbidden, "create", "poolers.postgresql.cnpg.io", NS)
    assert isinstance(err, KubeForbidden) and "cannot create poolers.postgresql.cnpg.io in namespace apps" in str(err)
    assert isinstance(_translate(ApiException(status=401), "get", "clusters", NS), KubeUnreachable)
    unreachable = _translate(MaxRetryError(None, "https://10.0.0.1:6443/version"), "get", "version", None)  # type: ignore[arg-type]
    assert isinstance(unreachable, KubeUnreachable) and unreachable.exit_code == ExitCode.CONNECTION
    assert _translate(ApiException(status=422, reason="Invalid"), "patch", "clusters", NS).exit_code == ExitCode.FAILED


def test_tcp_relay_pumps_both_ways() -> None:
    """What the real port-forward uses: one fresh stream per accepted connection."""
    opened: list[socket.socket] = []

    def opener() -> tuple[Any, Any]:
        ours, theirs = socket.socketpair()
        opened.append(theirs)

        def echo() -> None:
            while data := theirs.recv(1024):
                theirs.sendall(data.upper())

        threading.Thread(target=echo, daemon=True).start()
        return ours, ours.close

    relay = TcpRelay(opener)
    try:
        for word in (b"hello", b"again"):
            with socket.create_connection(("127.0.0.1", relay.local_port), timeout=5) as conn:
                conn.sendall(word)
                assert conn.recv(1024) == word.upper()
        assert len(opened) == 2
    finally:
        relay.close()


def test_real_client_over_http(tmp_path: Path) -> None:
    """KubernetesApi against a tiny local API server: 404 → None, 403 → verb+resource, 401 → exit 5."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from consolidator.k8s.client import KubernetesApi

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answers = {"/api/v1/namespaces/apps/secrets/gone": (404, {"message": "not found"}),
                       "/api/v1/namespaces/apps/secrets/hidden": (403, {"message": "secrets is forbidden"}),
                       "/version": (401, {"message": "Unauthorized"})}  # fmt: skip
            code, body = answers.get(self.path.split("?")[0].rstrip("/"), (200, {"data": {"password": "cHc="}}))
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "users: [{name: t, user: {token: t}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n"
    )
    try:
        api = KubernetesApi(config_file=str(config), request_timeout=5)
        assert api.read_secret("gone", NS) is None
        assert api.read_secret("there", NS) == {"password": "pw"}
        with pytest.raises(KubeForbidden, match=r"cannot get secrets in namespace apps: secrets is forbidden"):
            api.read_secret("hidden", NS)
        with pytest.raises(KubeUnreachable, match=r"401"):
            api.server_version()
    finally:
        server.shutdown()


def test_finalize_ends_what_only_the_migration_needed(
    plan: Plan, kube: FakeKube, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After finalize: no rollback record (the app's previous settings), no superuser access, no passfile."""
    monkeypatch.setenv("PGPASSWORD", SOURCE_PASSWORD)
    play_operator(kube)
    prov = provider(kube, clock, tmp_path)
    app = plan.app("keycloak")
    handle = prov.provision(plan, app)
    kube.add_secret(f"{app.cluster_name}-consolidator-rollback", NS, {"manifest.json": "{}"})
    done = prov.finalize(plan, app)
    assert len(done) == 3 and not Path(str(handle.passfile)).exists()
    assert kube.get("v1", "Secret", f"{app.cluster_name}-consolidator-rollback", NS) is None
    cluster = kube.get(CNPG, "Cluster", app.cluster_name, NS)
    assert cluster is not None and cluster["spec"]["enableSuperuserAccess"] is False
    assert prov.finalize(plan, app) == []  # idempotent


def test_teardown_removes_what_an_in_cluster_run_created(
    plan: Plan, kube: FakeKube, clock: Clock, tmp_path: Path
) -> None:
    from consolidator.k8s.jobs import job_name, journal_configmap_name, plan_configmap_name, render_rbac

    app = plan.app("keycloak")
    created = [*render_rbac(plan, app),
               {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job_name(app), "namespace": NS}},
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": plan_configmap_name(app), "namespace": NS}},
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": journal_configmap_name(app), "namespace": NS}}]  # fmt: skip
    for obj in created:
        kube.put(obj)
    assert provider(kube, clock, tmp_path).teardown(plan, app)
    assert all(kube.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) is None
               for o in created)  # fmt: skip
