"""The in-cluster check that the pods reach the legacy server, against the fake API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consolidator.errors import PreconditionError
from consolidator.k8s.reachability import check_source_reachable
from consolidator.plan.model import Plan
from tests.kube_fake import FakeKube, cnpg_example_plan, fake_password_hash

NS = "apps"


@pytest.fixture
def plan() -> Plan:
    plan = cnpg_example_plan(NS)
    plan.source.conninfo = "host=10.0.0.5 port=5432 user=migrator dbname=postgres"
    plan.source.cluster_address = "legacy-pg.db.svc"
    return plan


def finishing(kube: FakeKube, phase: str, message: str, exit_code: int) -> None:
    """The kubelet's part: the probe pod runs and terminates with this message."""

    def run(fake: FakeKube, pod: dict[str, Any]) -> None:
        key = ("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        fake.objects[key]["status"] = {"phase": phase, "containerStatuses": [{"name": "check", "state": {
            "terminated": {"exitCode": exit_code, "message": message}}}]}  # fmt: skip

    kube.on_apply("Pod", run)


def test_reachable_source_and_the_pod_is_gone(plan: Plan) -> None:
    kube = FakeKube()
    finishing(kube, "Succeeded", "reached PostgreSQL 15.18 on x86_64-pc-linux-gnu\n", 0)
    app = plan.apps[0]
    answer = check_source_reachable(kube, plan, app, sleep=lambda _: None)
    assert answer.startswith("reached PostgreSQL 15.18")
    (pod,) = [o for o in kube.applied if o["kind"] == "Pod"]
    container = pod["spec"]["containers"][0]
    assert "host=legacy-pg.db.svc" in container["command"][5] and "user=migrator" in container["command"][5]
    assert container["env"] == [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
        "name": plan.source.password_secret, "key": "password"}}}]  # fmt: skip
    assert container["image"].startswith("ghcr.io/cloudnative-pg/postgresql:")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert kube.of_kind("Pod") == []  # removed again


@pytest.mark.parametrize(("message", "fix"), [
    ('psql: error: connection to server at "legacy-pg.db.svc" (10.96.0.7), port 5432 failed: FATAL:  password '
     'authentication failed for user "migrator"', "legacy-source-credentials"),
    ('psql: error: connection to server at "legacy-pg.db.svc" (10.96.0.7), port 5432 failed: FATAL:  no pg_hba.conf '
     'entry for host "10.244.1.9", user "migrator", database "postgres", no encryption', "pg_hba.conf entry"),
    ('psql: error: could not translate host name "legacy-pg.db.svc" to address: Name or service not known',
     "--source-from-cluster"),
])  # fmt: skip
def test_unreachable_source_names_the_reason_and_the_fix(plan: Plan, message: str, fix: str) -> None:
    kube = FakeKube()
    finishing(kube, "Failed", message, 2)
    with pytest.raises(PreconditionError) as err:
        check_source_reachable(kube, plan, plan.apps[0], sleep=lambda _: None)
    assert "legacy-pg.db.svc:5432" in err.value.message and message.splitlines()[-1] in err.value.message
    assert fix in (err.value.hint or "")
    assert kube.of_kind("Pod") == []


def test_a_pod_that_never_runs_times_out_with_its_waiting_reason(plan: Plan) -> None:
    kube = FakeKube()

    def stuck(fake: FakeKube, pod: dict[str, Any]) -> None:
        key = ("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        fake.objects[key]["status"] = {"phase": "Pending", "containerStatuses": [
            {"name": "check", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}  # fmt: skip

    kube.on_apply("Pod", stuck)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(PreconditionError, match="ImagePullBackOff"):
        check_source_reachable(kube, plan, plan.apps[0], timeout=10, sleep=sleep, clock=lambda: now[0])
    assert kube.of_kind("Pod") == []


def test_provision_stops_before_the_cluster_when_the_pods_cannot_reach_the_source(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consolidator.engine.cnpg import CnpgProvider

    monkeypatch.setenv("PGPASSWORD", "source-pw")
    kube = FakeKube()
    kube.install_cnpg("1.30.0")
    kube.add_namespace(NS)
    kube.source_check = "psql: error: connection to server at \"legacy-pg.db.svc\" failed: timeout expired"
    app = next(a for a in plan.apps if a.strategy.name == "logical")
    provider = CnpgProvider(tmp_path, kube, password_hash=fake_password_hash, in_cluster=False, sleep=lambda _: None)
    with pytest.raises(PreconditionError, match=r"cannot reach the legacy server at legacy-pg\.db\.svc:5432"):
        provider.provision(plan, app)
    assert kube.of_kind("Cluster") == [] and kube.of_kind("Pod") == []
    assert {o["kind"] for o in kube.applied} == {"Secret", "Pod"}  # its password Secret was there for the check
