"""Cutover on Kubernetes against the in-memory API: Pooler pause, key patches, rollout restarts, rollback."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from consolidator.engine import lifecycle
from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.cnpg_preflight import PreflightFailed
from consolidator.engine.journal import Journal
from consolidator.engine.run import AppRun
from consolidator.engine.strategy import Strategy
from consolidator.errors import ExitCode, PlanValidationError, StepFailed
from consolidator.k8s.switch import RESTARTED_AT, rollback_secret_name
from consolidator.plan.model import Plan
from consolidator.plan.store import load_plan, save_plan
from consolidator.plan.validate import validate_plan_data
from consolidator.serde import to_data
from tests.kube_fake import Clock, FakeKube, cnpg_example_plan, fake_password_hash

NS, WEB = "apps", "web"
CNPG = "postgresql.cnpg.io/v1"
OLD_PASS, NEW_PASS, SUPERUSER_PASS = "old-Pass-7f3a91", "new-Pass-c0ffee42", "Sup3r-pw-19d2"
HOOKS = {"kubernetes": {
    "patch": [
        {"kind": "ConfigMap", "name": "nextcloud-env", "namespace": WEB, "key": "DB_HOST", "value": "{rw_host}"},
        {"kind": "ConfigMap", "name": "nextcloud-env", "namespace": WEB, "key": "DB_POOL", "value": "{pooler_host}"},
        {"kind": "Secret", "name": "nextcloud-db", "namespace": WEB, "key": "DB_PASS",
         "from_secret": {"name": "{app_secret}", "key": "password"}},
        {"kind": "Secret", "name": "nextcloud-db", "namespace": WEB, "key": "DB_USER",
         "from_secret": {"name": "{cluster}-app", "key": "username"}},
    ],
    "restart": [{"kind": "Deployment", "name": "nextcloud-web", "namespace": WEB},
                {"kind": "StatefulSet", "name": "nextcloud-cron", "namespace": WEB}],
    "rollout_timeout": 30,
}}  # fmt: skip


@pytest.fixture
def plan() -> Plan:
    plan = cnpg_example_plan(NS)
    plan.app("nextcloud").hooks = copy.deepcopy(HOOKS)
    return plan


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.install_cnpg("1.30.0")
    for ns in (NS, WEB):
        fake.add_namespace(ns)
    fake.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nextcloud-env", "namespace": WEB},
              "data": {"DB_HOST": "legacy.db.example", "TZ": "UTC"}})  # fmt: skip
    fake.add_secret("nextcloud-db", WEB, {"DB_PASS": OLD_PASS, "OTHER": "kept"})
    fake.add_secret("nextcloud-app", NS, {"username": "nextcloud", "password": NEW_PASS})
    fake.add_workload("Deployment", "nextcloud-web", WEB, replicas=2, reads=2)
    fake.add_workload("StatefulSet", "nextcloud-cron", WEB, replicas=1, reads=1)
    # the provisioned target: a healthy Cluster with its superuser and the Pooler as rendered
    fake.put({"apiVersion": CNPG, "kind": "Cluster", "metadata": {"name": "nextcloud", "namespace": NS},
              "spec": {"instances": 1, "enableSuperuserAccess": True},
              "status": {"phase": "Cluster in healthy state", "readyInstances": 1, "currentPrimary": "nextcloud-1"}})
    fake.add_secret("nextcloud-superuser", NS, {"username": "postgres", "password": SUPERUSER_PASS})
    fake.put({"apiVersion": CNPG, "kind": "Pooler", "metadata": {"name": "nextcloud-pooler-rw", "namespace": NS},
              "spec": {"cluster": {"name": "nextcloud"}, "type": "rw", "pgbouncer": {"poolMode": "transaction"}}})
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider(kube: FakeKube, clock: Clock, plan_dir: Path | None = None) -> CnpgProvider:
    return CnpgProvider(plan_dir, kube, poll_interval=2.0, ready_timeout=60, sleep=clock.sleep,
                        password_hash=fake_password_hash,
                        clock=lambda: clock.now, in_cluster=True)  # fmt: skip


def config(kube: FakeKube) -> dict[str, str]:
    return dict(kube.get("v1", "ConfigMap", "nextcloud-env", WEB)["data"])  # type: ignore[index]


def template_stamp(kube: FakeKube, kind: str, name: str) -> str | None:
    obj = kube.objects[("apps/v1", kind, WEB, name)]
    return (obj["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)


def paused(kube: FakeKube) -> Any:
    return kube.objects[(CNPG, "Pooler", NS, "nextcloud-pooler-rw")]["spec"]["pgbouncer"].get("paused")


def key_writes(kube: FakeKube) -> list[tuple[str, str, str, str]]:
    return [c for c in kube.calls if c[0] == "merge_patch" and c[1] in ("ConfigMap", "Secret")
            and c[3] != rollback_secret_name_of()]  # fmt: skip


def rollback_secret_name_of() -> str:
    return "nextcloud-consolidator-rollback"


# --------------------------------------------------------------------------- switch and revert


def test_switch_then_revert_restores_exact_previous_values(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    app = plan.app("nextcloud")
    assert rollback_secret_name(app) == rollback_secret_name_of()
    prov = provider(kube, clock)
    done = prov.switch_app(plan, app, prov.describe(plan, app))  # type: ignore[arg-type]

    assert config(kube) == {"DB_HOST": f"nextcloud-rw.{NS}.svc", "DB_POOL": f"nextcloud-pooler-rw.{NS}.svc",
                            "TZ": "UTC"}  # fmt: skip
    # from_secret copied the target's credentials into the app's Secret
    assert kube.read_secret("nextcloud-db", WEB) == {"DB_PASS": NEW_PASS, "DB_USER": "nextcloud", "OTHER": "kept"}
    assert done == [f"set ConfigMap {WEB}/nextcloud-env key DB_HOST", f"set ConfigMap {WEB}/nextcloud-env key DB_POOL",
                    f"set Secret {WEB}/nextcloud-db key DB_PASS", f"set Secret {WEB}/nextcloud-db key DB_USER",
                    f"restarted Deployment {WEB}/nextcloud-web", f"restarted StatefulSet {WEB}/nextcloud-cron"]
    assert not any(OLD_PASS in line or NEW_PASS in line for line in done)
    # both rollouts were waited for (the Deployment reports two in-progress reads, then done)
    web = kube.objects[("apps/v1", "Deployment", WEB, "nextcloud-web")]
    assert web["metadata"]["generation"] == 2 and web["status"]["observedGeneration"] == 2
    assert template_stamp(kube, "Deployment", "nextcloud-web") and clock.sleeps == 2
    # the previous values live in the rollback Secret, in the cluster's namespace, not on disk
    record = kube.read_secret(rollback_secret_name(app), NS)
    assert record is not None and record["v2"] == OLD_PASS and record["v0"] == "legacy.db.example"
    manifest = json.loads(record["manifest.json"])
    assert [(p["key"], p["existed"]) for p in manifest["patches"]] == [
        ("DB_HOST", True), ("DB_POOL", False), ("DB_PASS", True), ("DB_USER", False)]
    assert OLD_PASS not in record["manifest.json"]

    stamps = (template_stamp(kube, "Deployment", "nextcloud-web"),
              template_stamp(kube, "StatefulSet", "nextcloud-cron"))
    reverted = prov.revert_switch(plan, app)
    assert config(kube) == {"DB_HOST": "legacy.db.example", "TZ": "UTC"}  # DB_POOL did not exist: removed
    assert kube.read_secret("nextcloud-db", WEB) == {"DB_PASS": OLD_PASS, "OTHER": "kept"}
    assert reverted[:4] == [f"removed Secret {WEB}/nextcloud-db key DB_USER (it did not exist before)",
                            f"restored Secret {WEB}/nextcloud-db key DB_PASS",
                            f"removed ConfigMap {WEB}/nextcloud-env key DB_POOL (it did not exist before)",
                            f"restored ConfigMap {WEB}/nextcloud-env key DB_HOST"]  # reverse order
    # the same workloads were restarted again, and the record is gone
    assert template_stamp(kube, "Deployment", "nextcloud-web") not in (None, stamps[0])
    assert template_stamp(kube, "StatefulSet", "nextcloud-cron") not in (None, stamps[1])
    assert kube.get("v1", "Secret", rollback_secret_name(app), NS) is None
    assert prov.revert_switch(plan, app) == []  # nothing left to revert


def test_switch_resumed_keeps_original_values_and_does_not_repeat(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    app = plan.app("nextcloud")
    kube.add_workload("Deployment", "nextcloud-web", WEB, replicas=2, reads=-1)  # stuck the first time
    prov = provider(kube, clock)
    with pytest.raises(StepFailed) as info:
        prov.switch_app(plan, app, prov.describe(plan, app))  # type: ignore[arg-type]
    assert info.value.message.startswith(f"rollout of Deployment {WEB}/nextcloud-web not done after 30s: "
                                         "1/2 updated, 1/2 available")  # fmt: skip
    assert f"kubectl -n {WEB} rollout status deployment/nextcloud-web" in (info.value.hint or "")
    assert clock.sleeps == 15

    # the operator of the app fixes the pods; the resumed cutover switches again
    kube.scripts.pop(("apps/v1", "Deployment", WEB, "nextcloud-web"))
    kube.rollouts[("apps/v1", "Deployment", WEB, "nextcloud-web")] = 1
    live = kube.objects[("apps/v1", "Deployment", WEB, "nextcloud-web")]
    live["status"] = {"observedGeneration": live["metadata"]["generation"], "updatedReplicas": 2,
                      "availableReplicas": 2}  # fmt: skip
    writes, stamp = len(key_writes(kube)), template_stamp(kube, "Deployment", "nextcloud-web")
    again = prov.switch_app(plan, app, prov.describe(plan, app))  # type: ignore[arg-type]
    assert len(key_writes(kube)) == writes  # nothing patched twice
    assert template_stamp(kube, "Deployment", "nextcloud-web") == stamp  # nor restarted twice
    assert f"Secret {WEB}/nextcloud-db key DB_PASS already set" in again
    assert f"Deployment {WEB}/nextcloud-web already restarted" in again
    record = kube.read_secret(rollback_secret_name(app), NS)
    assert record is not None and record["v2"] == OLD_PASS  # one set of original values
    assert len(json.loads(record["manifest.json"])["patches"]) == 4

    prov.revert_switch(plan, app)
    assert config(kube) == {"DB_HOST": "legacy.db.example", "TZ": "UTC"}
    assert kube.read_secret("nextcloud-db", WEB) == {"DB_PASS": OLD_PASS, "OTHER": "kept"}


def test_switch_refuses_missing_source_secret_key_without_patching(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    app = plan.app("nextcloud")
    kube.add_secret("nextcloud-app", NS, {"username": "nextcloud"})  # no password key
    prov = provider(kube, clock)
    with pytest.raises(StepFailed, match=rf"cannot set Secret {WEB}/nextcloud-db key DB_PASS: "
                                         rf"Secret {NS}/nextcloud-app has no key password"):
        prov.switch_app(plan, app, prov.describe(plan, app))  # type: ignore[arg-type]
    assert kube.read_secret("nextcloud-db", WEB) == {"DB_PASS": OLD_PASS, "OTHER": "kept"}
    prov.revert_switch(plan, app)  # the keys patched before the failure go back
    assert config(kube) == {"DB_HOST": "legacy.db.example", "TZ": "UTC"}


# --------------------------------------------------------------------------- through the engine


def _journal(plan: Plan, plan_dir: Path) -> Journal:
    save_plan(plan, plan_dir)
    return Journal.create(plan_dir, [a.name for a in plan.apps])


def test_cutover_pauses_pooler_during_drain_then_rollback(
    plan: Plan, kube: FakeKube, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _journal(plan, tmp_path)
    prov = provider(kube, clock, tmp_path)
    app = plan.app("nextcloud")
    # the fence step pauses the Pooler first (an app without databases: nothing to fence on a source)
    fenced_app = copy.deepcopy(app)
    fenced_app.databases = []
    Strategy().step_fence(AppRun(plan=plan, app=fenced_app, plan_dir=tmp_path, source_dsn="", provider=prov,
                                 journal=journal))  # fmt: skip
    assert paused(kube) is True
    assert ("merge_patch", "Pooler", NS, "nextcloud-pooler-rw") in kube.calls

    journal.update(lambda s: setattr(s.apps[app.name], "verified", True))
    run = AppRun(plan=plan, app=app, plan_dir=tmp_path, source_dsn="", provider=prov, journal=journal)
    Strategy().step_cutover(run)
    assert paused(kube) is False  # resumed before the workloads restart against it
    state = Journal.load(tmp_path).app(app.name)  # type: ignore[union-attr]
    assert state.state == "cut_over"
    assert f"set Secret {WEB}/nextcloud-db key DB_PASS" in state.hooks_run
    assert f"restarted Deployment {WEB}/nextcloud-web" in state.hooks_run
    assert config(kube)["DB_HOST"] == f"nextcloud-rw.{NS}.svc"

    # rollback through the lifecycle: reverts the switch and leaves the Pooler running
    kube.merge_patch(CNPG, "Pooler", "nextcloud-pooler-rw", NS, {"spec": {"pgbouncer": {"paused": True}}})
    monkeypatch.setattr(lifecycle, "make_provider", lambda plan, plan_dir: prov)
    lifecycle.rollback(tmp_path, "nextcloud")
    assert config(kube) == {"DB_HOST": "legacy.db.example", "TZ": "UTC"}
    assert kube.read_secret("nextcloud-db", WEB) == {"DB_PASS": OLD_PASS, "OTHER": "kept"}
    assert paused(kube) is False
    assert Journal.load(tmp_path).app(app.name).state == "rolled_back"  # type: ignore[union-attr]

    # no secret value (previous or new) ever reached the plan directory: journal, work dir, plan
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert tmp_path / "state.json" in files
    for path in files:
        content = path.read_bytes()
        for secret in (OLD_PASS, NEW_PASS):
            assert secret.encode() not in content, f"{secret} leaked into {path}"
            assert base64.b64encode(secret.encode()) not in content, f"{secret} (base64) leaked into {path}"


def test_pause_pooler_false_and_apps_without_pooler(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    prov = provider(kube, clock)
    assert prov.pause_traffic(plan, plan.app("keycloak")) == []  # no Pooler: nothing to hold
    plan.app("nextcloud").hooks["kubernetes"]["pause_pooler"] = False
    assert prov.pause_traffic(plan, plan.app("nextcloud")) == [] and paused(kube) is None
    plan.app("nextcloud").hooks["kubernetes"]["pause_pooler"] = True
    assert prov.pause_traffic(plan, plan.app("nextcloud")) == [f"paused Pooler {NS}/nextcloud-pooler-rw"]
    assert prov.pause_traffic(plan, plan.app("nextcloud")) == []  # idempotent
    assert prov.resume_traffic(plan, plan.app("nextcloud")) == [f"resumed Pooler {NS}/nextcloud-pooler-rw"]


# --------------------------------------------------------------------------- preflight


def test_preflight_needs_rbac_only_where_hooks_act(plan: Plan, kube: FakeKube, clock: Clock) -> None:
    prov = provider(kube, clock)
    assert not [c for c in prov.checks(plan, plan.apps) if c.fatal]
    kube.deny("patch", "configmaps")
    kube.deny("patch", "deployments.apps")
    kube.deny("get", "statefulsets.apps")
    with pytest.raises(PreflightFailed) as info:
        prov.preflight(plan, plan.apps)
    found = [c.message for c in info.value.checks if c.fatal]
    assert f"missing permission: cannot patch configmaps in namespace {WEB}" in found
    assert f"missing permission: cannot patch deployments.apps in namespace {WEB}" in found
    assert f"missing permission: cannot get statefulsets.apps in namespace {WEB}" in found
    # the operator-version Deployment read stays optional (a warning), the workload patch does not
    assert not any("deployments.apps in namespace cnpg-system" in m for m in found)


def test_preflight_names_missing_objects_and_unfillable_placeholders(plan: Plan, kube: FakeKube,
                                                                     clock: Clock) -> None:  # fmt: skip
    del kube.objects[("apps/v1", "StatefulSet", WEB, "nextcloud-cron")]
    plan.app("keycloak").hooks = {"kubernetes": {"patch": [
        {"kind": "ConfigMap", "name": "keycloak-env", "namespace": NS, "key": "KC_DB_URL", "value": "{pooler_host}"}]}}
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keycloak-env", "namespace": NS}})
    with pytest.raises(PreflightFailed) as info:
        provider(kube, clock).preflight(plan, plan.apps)
    found = [c.message for c in info.value.checks if c.fatal]
    assert f"StatefulSet {WEB}/nextcloud-cron named by the Kubernetes hooks of nextcloud does not exist" in found
    assert any("{pooler_host} used but app keycloak has no Pooler" in m for m in found)


# --------------------------------------------------------------------------- plan validation


def _data(plan: Plan, hooks: Any, app: str = "nextcloud") -> dict[str, Any]:
    data = to_data(plan)
    index = next(i for i, a in enumerate(plan.apps) if a.name == app)
    data["apps"][index]["hooks"] = {"kubernetes": hooks}
    return data


@pytest.mark.parametrize(("hooks", "path", "message"), [
    ({"patch": [{"kind": "Pod", "name": "x", "key": "K", "value": "v"}]},
     "hooks.kubernetes.patch[0].kind", '"Pod" is not one of ConfigMap, Secret'),
    ({"patch": [{"kind": "ConfigMap", "name": "x", "key": "K"}]},
     "hooks.kubernetes.patch[0]", "needs exactly one of value or from_secret"),
    ({"patch": [{"kind": "ConfigMap", "name": "x", "key": "K", "value": "{host}"}]},
     "hooks.kubernetes.patch[0].value", "unknown placeholder {host}"),
    ({"patch": [{"kind": "ConfigMap", "name": "x", "key": "K", "from_secret": {"name": "s", "key": "p"}}]},
     "hooks.kubernetes.patch[0].from_secret", "copies a secret value: only into a Secret"),
    ({"patch": [{"kind": "Secret", "name": "x", "key": "K", "value": 5432}]},
     "hooks.kubernetes.patch[0].value", "5432 is not a non-empty string"),
    ({"patch": [{"kind": "Secret", "name": "Bad_Name", "key": "K", "value": "v"}]},
     "hooks.kubernetes.patch[0].name", "is not a DNS-1123 subdomain"),
    ({"restart": [{"kind": "DaemonSet", "name": "x"}]},
     "hooks.kubernetes.restart[0].kind", "is not one of Deployment, StatefulSet"),
    ({"restart": [{"kind": "Deployment", "name": "x", "replicas": 2}]},
     "hooks.kubernetes.restart[0].replicas", "unknown key"),
    ({"pause_pooler": "yes"}, "hooks.kubernetes.pause_pooler", "is not true or false"),
    ({"rollout_timeout": 0}, "hooks.kubernetes.rollout_timeout", "is not a positive number"),
    ({"patch": [{"kind": "Secret", "name": "x", "key": "K", "value": "a"},
                {"kind": "Secret", "name": "x", "key": "K", "value": "b"}]},
     "hooks.kubernetes.patch[1]", "is patched twice"),
])  # fmt: skip
def test_plan_validation_names_the_key_path(plan: Plan, hooks: Any, path: str, message: str) -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_plan_data(_data(plan, hooks))
    index = next(i for i, a in enumerate(plan.apps) if a.name == "nextcloud")
    assert info.value.path == f"apps[{index}].{path}"
    assert message in info.value.message and info.value.exit_code == ExitCode.USAGE


def test_valid_hooks_load_and_local_targets_refuse_them(plan: Plan, tmp_path: Path) -> None:
    validate_plan_data(_data(plan, HOOKS["kubernetes"]))
    save_plan(plan, tmp_path)
    assert load_plan(tmp_path).app("nextcloud").hooks == HOOKS

    local = copy.deepcopy(plan)
    local.target.provider = "local"
    save_plan(local, tmp_path)
    with pytest.raises(PlanValidationError) as info:
        load_plan(tmp_path)
    assert info.value.path.endswith(".hooks.kubernetes")
    assert "Kubernetes hooks need target.provider cnpg (this plan targets local)" in info.value.message
    assert "hooks.switch" in (info.value.hint or "") and info.value.exit_code == ExitCode.USAGE
