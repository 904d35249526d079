"""Copies as Kubernetes Jobs (``execute --in-cluster``) against the in-memory Kubernetes fake.

The fake plays the operator (clusters go healthy, ``<cluster>-superuser`` appears) and the copy
Jobs' pods: each Job continues the journal seeded in its plan ConfigMap, one step per read of the
Job, mirrors every save into its journal ConfigMap through the real :class:`ConfigMapMirror`, then
succeeds or fails the way a pod of ``consolidator execute`` would. Where a step talks to Kubernetes
(the fence, promotion, the switch hooks) the pod runs the real code as the Job's ServiceAccount,
authorized against the Roles this side rendered. There is no source server behind the fake: the
strategies' source checks are stood in for by :class:`SourceChecks` (they run against real servers
in their own tests), and where a test needs SQL a real server plays the part.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consolidator.cli.main import main
from consolidator.engine import cnpg_physical, logical, physical
from consolidator.engine import remote as remote_module
from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.cnpg_physical import SourceCheck
from consolidator.engine.executor import ExecuteOptions
from consolidator.engine.journal import STATE_FILE, Journal, RunState
from consolidator.engine.lifecycle import status
from consolidator.engine.remote import InClusterOptions, check_job_permissions, execute_in_cluster
from consolidator.errors import ConfigError, ConsolidatorError, PlanValidationError, PreconditionError, StepFailed
from consolidator.events import Event
from consolidator.k8s.api import resource_for
from consolidator.k8s.jobs import (
    DEFAULT_IMAGE,
    ConfigMapMirror,
    JobSettings,
    in_copy_job,
    journal_mirror_from_env,
    render_job,
    render_rbac,
)
from consolidator.plan.estimates import SizeFacts
from consolidator.plan.model import Plan
from consolidator.plan.steps import build_steps
from consolidator.plan.store import load_plan, save_plan
from consolidator.serde import from_data
from tests.harness import Server
from tests.kube_fake import EXAMPLE_PLAN, Clock, FakeKube, ServiceAccountApi, cnpg_example_plan, fake_password_hash

NS = "apps"
CNPG = "postgresql.cnpg.io/v1"
SOURCE_PASSWORD = "s0urce-secret:pw"
SUPERUSER_PASSWORD = "Sup3r-secret-pw"
APPS = ["keycloak", "nextcloud", "mastodon_production"]  # dump, dump, logical
FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
          "message": "Job has reached the specified backoff limit"}  # fmt: skip


class SourceChecks:
    """Stands in for the source's answers to the strategies' own checks: records each check made and
    refuses for the apps in ``refuse`` (app name → the error the real check raises)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refuse: dict[str, ConsolidatorError] = {}

    def _check(self, kind: str, app: str) -> None:
        self.calls.append((kind, app))
        if app in self.refuse:
            raise self.refuse[app]


@pytest.fixture(autouse=True)
def source_checks(monkeypatch: pytest.MonkeyPatch) -> SourceChecks:
    checks = SourceChecks()

    def replica(plan: Plan, app: Any, dsn: str, operator: Any = None) -> SourceCheck:
        checks._check("replica cluster", app.name)
        return SourceCheck(major=plan.target.version, user="postgres", free_senders=8)

    monkeypatch.setattr(logical, "preflight_source", lambda dsn, app: checks._check("logical", app.name))
    monkeypatch.setattr(physical, "preflight", lambda run: checks._check("physical", run.app.name))
    monkeypatch.setattr(cnpg_physical, "check_source", replica)
    return checks


@pytest.fixture(scope="module")
def example() -> Plan:
    return load_plan(EXAMPLE_PLAN)


@pytest.fixture
def plan_dir(tmp_path: Path) -> Path:
    plan = cnpg_example_plan(NS)
    directory = tmp_path / "plan"
    save_plan(plan, directory)
    return directory


@pytest.fixture
def plan(plan_dir: Path) -> Plan:
    return load_plan(plan_dir)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    monkeypatch.setenv("PGPASSWORD", SOURCE_PASSWORD)  # fills the legacy source Secret at provisioning
    fake = FakeKube()
    fake.install_cnpg("1.30.0")
    fake.add_namespace(NS)
    fake.add_storage_class("standard")

    def operator(fake: FakeKube, cluster: dict[str, Any]) -> None:
        meta = cluster["metadata"]
        fake.add_secret(f"{meta['name']}-superuser", meta["namespace"],
                        {"username": "postgres", "password": SUPERUSER_PASSWORD})  # fmt: skip
        fake.script_status(CNPG, "Cluster", meta["namespace"], meta["name"],
                           [{"phase": "Cluster in healthy state", "readyInstances": cluster["spec"]["instances"],
                             "currentPrimary": f"{meta['name']}-1"}])  # fmt: skip

    fake.on_apply("Cluster", operator)
    return fake


class Pods:
    """Plays the copy Jobs' pods: one step per read of the Job, journal mirrored like the real run."""

    def __init__(self, plan: Plan, *, fail_at: dict[str, str] | None = None, concurrency: int = 1,
                 actions: dict[tuple[str, str], Callable[[ServiceAccountApi], None]] | None = None) -> None:
        self.plan = plan
        self.fail_at = dict(fail_at or {})  # app → step that fails (once)
        # (app, step) → what the step asks of Kubernetes, run as the Job's ServiceAccount
        self.actions = dict(actions or {})
        self.accounts: list[ServiceAccountApi] = []
        self.concurrency = concurrency  # hold every Job until this many run at once (the bound is reached)
        self.hold: Any = None  # a callable: while it returns True, the pods do nothing
        self.runs: dict[tuple[str, str], tuple[str, Journal]] = {}
        self.started: list[dict[str, Any]] = []  # every Job as the pod saw it
        self.seeds: list[dict[str, Any]] = []  # the journal each pod started from
        self.max_active = 0
        self.steps_run: list[tuple[str, str]] = []

    def __call__(self, fake: FakeKube, job: dict[str, Any], tick: int) -> None:
        status = job.setdefault("status", {})
        if status.get("succeeded") or status.get("failed"):
            return
        if self.hold is not None and self.hold():
            return
        jobs = [o for k, o in list(fake.objects.items()) if k[1] == "Job"]  # other threads write meanwhile
        active = [j for j in jobs
                  if not (j.get("status") or {}).get("succeeded") and not (j.get("status") or {}).get("failed")]
        self.max_active = max(self.max_active, len(active))
        meta = job["metadata"]
        key = (meta["namespace"], meta["name"])
        if tick == 0:
            self._start(fake, job)
        if len(active) < self.concurrency and tick < 200:
            return
        app_name, journal = self.runs[key]
        app = self.plan.app(app_name)
        pending = [s for s in app.steps if not journal.is_done(app.name, s.name)]
        step = pending[0]
        self.steps_run.append((app.name, step.name))
        if self.fail_at.get(app.name) == step.name:
            del self.fail_at[app.name]
            with pytest.raises(StepFailed), journal.run_step(app.name, step.name):
                raise StepFailed(f"COPY into {app.name}.public.big failed: could not extend file: No space left")
            journal.update(lambda s: setattr(s.apps[app.name], "state", "failed"))
            status.update(failed=1, conditions=[FAILED])
            return
        try:
            with journal.run_step(app.name, step.name):
                action = self.actions.get((app.name, step.name))
                if action is not None:
                    spec = job["spec"]["template"]["spec"]
                    account = fake.as_service_account(meta["namespace"], spec["serviceAccountName"])
                    self.accounts.append(account)
                    action(account)
                if step.name == "copy":
                    journal.record_copied(app.name, app.databases[0].target, "public.items", part=0, parts=1,
                                          rows=42, size=8192, seconds=0.5)  # fmt: skip
        except ConsolidatorError:  # as the real run: the step failed, so did the pod
            journal.update(lambda s: setattr(s.apps[app.name], "state", "failed"))
            status.update(failed=1, conditions=[FAILED])
            return
        if step.name == "cutover":
            journal.update(lambda s: setattr(s.apps[app.name], "state", "cut_over"))
        if len(pending) == 1:
            status.update(succeeded=1, conditions=[{"type": "Complete", "status": "True"}])

    def _start(self, fake: FakeKube, job: dict[str, Any]) -> None:
        """What the init container and ``execute --resume`` do: continue the seeded journal."""
        meta, pod = job["metadata"], job["spec"]["template"]["spec"]
        self.started.append(copy.deepcopy(job))
        seed_cm = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
        seed = fake.get("v1", "ConfigMap", seed_cm, meta["namespace"])
        assert seed is not None
        data = json.loads(seed["data"]["state.json"])
        self.seeds.append(data)
        args = pod["containers"][0]["args"]
        app_name = args[args.index("--app") + 1]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        journal = Journal(Path("/nonexistent"), from_data(RunState, data))
        journal.save = _saver(journal)  # type: ignore[method-assign]  # no disk in a fake pod: the mirror only
        journal.mirror = ConfigMapMirror(fake, meta["namespace"], env["CONSOLIDATOR_JOURNAL_CONFIGMAP"]["value"],
                                         min_interval=0)  # fmt: skip
        journal.update(lambda s: setattr(s.apps[app_name], "state", "running"))
        self.runs[(meta["namespace"], meta["name"])] = (app_name, journal)


def _saver(journal: Journal) -> Any:
    from consolidator.serde import to_data

    def save(*, throttle: float = 0.0) -> None:
        journal.state.updated_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        assert journal.mirror is not None
        journal.mirror(json.dumps(to_data(journal.state), indent=1) + "\n")

    return save


def job_side(api: Any) -> CnpgProvider:
    """The provider as the Job's run builds it inside the cluster (here with the ServiceAccount's API)."""
    return CnpgProvider(None, api, in_cluster=True, poll_interval=0.001, sleep=lambda _s: None,
                        password_hash=fake_password_hash)


def run(plan_dir: Path, kube: FakeKube, *, resume: bool = False, parallel: int = 4, image: str | None = DEFAULT_IMAGE,
        apps: list[str] | None = None, events: list[Event] | None = None, provider: CnpgProvider | None = None,
        clock: Clock | None = None, **options: Any) -> tuple[Any, list[Event]]:  # fmt: skip
    """``clock``: fake time that each poll advances (else real, 1 ms polls); ``options``: InClusterOptions."""
    events = [] if events is None else events
    provider = provider or CnpgProvider(plan_dir, kube, in_cluster=True, poll_interval=0.001, sleep=lambda _s: None,
                                        password_hash=fake_password_hash)  # fmt: skip
    timing: dict[str, Any] = {"sleep": lambda _s: time.sleep(0.001)}
    if clock is not None:
        timing = {"sleep": clock.sleep, "clock": lambda: clock.now}
    remote = InClusterOptions(image=image, parallel=parallel, poll_interval=options.pop("poll_interval", 0.001),
                              **options)  # fmt: skip
    result = execute_in_cluster(plan_dir, ExecuteOptions(apps=apps or APPS, resume=resume, jobs=2), remote,
                                events.append, provider=provider, **timing)  # fmt: skip
    return result, events


def secret_free(text: str) -> bool:
    return SOURCE_PASSWORD not in text and SUPERUSER_PASSWORD not in text


# --------------------------------------------------------------------------- rendering


def test_job_rendering(plan: Plan) -> None:
    app = plan.app("keycloak")
    job = render_job(plan, app, JobSettings(image="registry.example/consolidator:1.2", workers=3, force=True))
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"] == {"name": "keycloak-consolidator", "namespace": NS, "labels": {
        "app.kubernetes.io/managed-by": "consolidator", "consolidator.io/app": "keycloak",
        "app.kubernetes.io/component": "copy"}}  # fmt: skip
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0 and pod["restartPolicy"] == "Never"
    assert container["image"] == "registry.example/consolidator:1.2" == pod["initContainers"][0]["image"]
    assert container["args"] == ["execute", "/plan", "--yes", "--app", "keycloak", "--json", "--resume",
                                 "--jobs", "3", "--force"]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"] == {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
        "name": plan.source.password_secret, "key": "password"}}}  # fmt: skip
    assert all("value" not in e or "PASSWORD" not in e["name"] for e in container["env"])
    assert env["CONSOLIDATOR_JOURNAL_CONFIGMAP"]["value"] == "keycloak-consolidator-journal"
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "3", "memory": "1280Mi"}
    assert container["securityContext"]["runAsNonRoot"] and not container["securityContext"]["allowPrivilegeEscalation"]
    assert pod["serviceAccountName"] == "keycloak-consolidator"
    assert {"name": "seed", "configMap": {"name": "keycloak-consolidator-plan"}} in pod["volumes"]
    default = render_job(plan, app, JobSettings())["spec"]["template"]["spec"]["containers"][0]
    assert default["image"] == DEFAULT_IMAGE and "--force" not in default["args"]

    account, role, binding = render_rbac(plan, app)
    assert (account["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    rules = {r["resources"][0]: r for r in role["rules"]}
    assert rules["secrets"] == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                "resourceNames": ["keycloak-superuser"]}  # fmt: skip
    assert rules["clusters"]["resourceNames"] == ["keycloak"] and rules["clusters"]["verbs"] == ["get"]
    assert rules["configmaps"]["resourceNames"] == ["keycloak-consolidator-journal"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "keycloak-consolidator", "namespace": NS}]
    assert "poolers" not in rules  # keycloak has no Pooler; nextcloud's fence pauses its own, and only that
    pooler_rules = [r for r in render_rbac(plan, plan.app("nextcloud"))[1]["rules"] if r["resources"] == ["poolers"]]
    assert pooler_rules == [{"apiGroups": ["postgresql.cnpg.io"], "resources": ["poolers"], "verbs": ["get", "patch"],
                             "resourceNames": ["nextcloud-pooler-rw"]}]  # fmt: skip


# --------------------------------------------------------------------------- runs


def test_in_cluster_run_follows_jobs_and_copies_the_journal(plan_dir: Path, plan: Plan, kube: FakeKube) -> None:
    pods = Pods(plan, concurrency=2)
    kube.play_jobs(pods)
    result, events = run(plan_dir, kube, parallel=2, image="registry.example/consolidator:9")

    assert result.exit_code == 0 and [a.state for a in result.apps] == ["cut_over"] * 3
    created = [c for c in kube.calls if c[0] == "create" and c[1] == "Job"]
    assert sorted(c[3] for c in created) == ["keycloak-consolidator", "mastodon-production-consolidator",
                                             "nextcloud-consolidator"]  # fmt: skip
    assert pods.max_active == 2  # bounded, and the bound was used
    assert all(j["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/consolidator:9"
               for j in pods.started)  # fmt: skip
    # the pods continued from a journal where this side had provisioned the cluster
    assert all(next(iter(s["apps"].values()))["steps"]["provision"]["state"] == "done" for s in pods.seeds)
    assert ("keycloak", "provision") not in pods.steps_run
    for name in APPS:  # progress re-emitted as a local run's events, in plan order
        app = plan.app(name)
        seen = [(e.type, e.fields["step"]) for e in events
                if e.type in ("step_start", "step_complete") and e.fields.get("app") == name]  # fmt: skip
        assert seen == [(kind, s.name) for s in app.steps for kind in ("step_start", "step_complete")]
        copied = [e for e in events if e.type == "step_progress" and e.fields.get("rows") == 42
                  and e.fields["app"] == name]  # fmt: skip
        assert len(copied) == 1 and copied[0].fields["step_id"] == f"{name}/copy"
    assert events[-1].type == "summary" and events[-1].fields["ok"] is True

    # the local journal holds the Jobs' outcome: status works as after a local run
    doc = status(plan_dir)
    states = {a["name"]: a for a in doc["apps"]}
    for name in APPS:
        assert states[name]["state"] == "cut_over" and all(s["state"] == "done" for s in states[name]["steps"])
        assert states[name]["tables"][f"{plan.app(name).databases[0].target}/public.items"]["rows"] == 42
        assert "keycloak-rw.apps.svc" in states["keycloak"]["target"]["conninfo"]
    assert states["Team Wiki"]["state"] == "pending"

    # never a secret value in what went to the cluster, nor in the plan directory (but the provider's passfile)
    for kind in ("Job", "ConfigMap", "ServiceAccount", "Role", "RoleBinding"):
        objects = kube.of_kind(kind)
        assert objects and all(secret_free(json.dumps(o)) for o in objects), kind
    leaks = [p for p in plan_dir.rglob("*") if p.is_file() and p.name != "superuser.pgpass"
             and not secret_free(p.read_text(errors="ignore"))]  # fmt: skip
    assert leaks == []

    # a second run finds everything done and starts no Job
    again, _ = run(plan_dir, kube, resume=True)
    assert again.exit_code == 0 and len([c for c in kube.calls if c[:2] == ("create", "Job")]) == 3


def test_failed_job_surfaces_the_journal_error_then_resume_recreates_it(
    plan_dir: Path, plan: Plan, kube: FakeKube
) -> None:
    pods = Pods(plan, fail_at={"keycloak": "copy"})
    kube.play_jobs(pods)
    result, events = run(plan_dir, kube, apps=["keycloak"])

    assert result.exit_code == 1
    (outcome,) = result.apps
    assert outcome.state == "failed"
    assert outcome.error == ("copy failed in Job apps/keycloak-consolidator: COPY into keycloak.public.big failed: "
                             "could not extend file: No space left")  # fmt: skip
    errored = [e for e in events if e.type == "step_errored"]
    assert len(errored) == 1 and "kubectl logs job/keycloak-consolidator -n apps" in errored[0].fields["hint"]
    local = json.loads((plan_dir / STATE_FILE).read_text())["apps"]["keycloak"]
    assert local["state"] == "failed" and local["steps"]["copy"]["state"] == "failed"
    assert "No space left" in local["steps"]["copy"]["error"] and local["steps"]["schema"]["state"] == "done"

    with pytest.raises(PreconditionError, match="did not finish"):  # as a local run: --resume or --restart
        run(plan_dir, kube, apps=["keycloak"])

    result, events = run(plan_dir, kube, apps=["keycloak"], resume=True)
    assert result.exit_code == 0 and result.apps[0].state == "cut_over"
    assert ("delete", "Job", NS, "keycloak-consolidator") in kube.calls
    assert len([c for c in kube.calls if c[:2] == ("create", "Job")]) == 2
    second = pods.started[-1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--resume" in second
    seed = pods.seeds[-1]["apps"]["keycloak"]["steps"]  # the new Job continued the mirrored journal
    assert seed["schema"]["state"] == "done" and seed["copy"]["state"] == "failed"
    assert pods.steps_run.count(("keycloak", "schema")) == 1 and pods.steps_run.count(("keycloak", "copy")) == 2
    assert [e.fields["step"] for e in events if e.type == "step_start"] == ["copy", "indexes", "large_objects",
                                                                         "sequences", "analyze", "verify", "cutover"]


def test_running_job_is_followed_not_replaced(plan_dir: Path, plan: Plan, kube: FakeKube) -> None:
    """This side stopped while a Job ran: --resume follows the same Job and takes its journal."""
    pods = Pods(plan)
    kube.play_jobs(pods)
    first, _ = run(plan_dir, kube, apps=["nextcloud"])
    assert first.exit_code == 0
    state = json.loads((plan_dir / STATE_FILE).read_text())
    state["apps"]["nextcloud"]["state"] = "running"  # as if this side died before the Job finished
    (plan_dir / STATE_FILE).write_text(json.dumps(state))
    job = kube.objects[("batch/v1", "Job", NS, "nextcloud-consolidator")]
    job["status"] = {"active": 1}
    pods.runs[(NS, "nextcloud-consolidator")][1].update(
        lambda s: s.apps["nextcloud"].steps["cutover"].__setattr__("state", "running"))
    kube._job_ticks[("batch/v1", "Job", NS, "nextcloud-consolidator")] = 5  # the pod is past its start
    events: list[Event] = []
    pods.hold = lambda: not any("following Job" in e.message for e in events)
    result, _ = run(plan_dir, kube, apps=["nextcloud"], resume=True, events=events)
    assert result.exit_code == 0 and result.apps[0].state == "cut_over"
    assert len([c for c in kube.calls if c[:2] == ("create", "Job")]) == 1
    assert any("following Job apps/nextcloud-consolidator" in e.message for e in events)


def test_refusals(plan_dir: Path, plan: Plan, kube: FakeKube, example: Plan, tmp_path: Path) -> None:
    provider = CnpgProvider(plan_dir, kube, password_hash=fake_password_hash, in_cluster=True)
    with pytest.raises(ConfigError, match="--source cannot be combined"):
        execute_in_cluster(plan_dir, ExecuteOptions(source_dsn="host=x password=y"), provider=provider)
    with pytest.raises(ConfigError, match="--restart"):
        execute_in_cluster(plan_dir, ExecuteOptions(restart=True), provider=provider)
    local_dir = tmp_path / "local"
    save_plan(example, local_dir)
    with pytest.raises(ConfigError, match="needs a cnpg plan"):
        execute_in_cluster(local_dir, ExecuteOptions(), provider=provider)
    kube.deny("create", "jobs.batch")
    kube.deny("create", "roles.rbac.authorization.k8s.io")
    kube.deny("list", "pods")  # following a Job whose pod does not start
    kube.deny("update", "configmaps")  # the Job's Role grants it on its journal: only what one holds is grantable
    with pytest.raises(PreconditionError) as info:
        execute_in_cluster(plan_dir, ExecuteOptions(apps=["keycloak"]), InClusterOptions(image="reg/c:1"),
                           provider=provider)  # fmt: skip
    assert "cannot create jobs.batch in namespace apps" in info.value.message
    assert "cannot create roles.rbac.authorization.k8s.io in namespace apps" in info.value.message
    assert "cannot list pods in namespace apps" in info.value.message
    assert "cannot update configmaps in namespace apps" in info.value.message
    assert "kubectl auth can-i" in (info.value.hint or "") and "only what you hold" in (info.value.hint or "")
    assert not kube.of_kind("Job") and not kube.of_kind("Cluster") and not (plan_dir / STATE_FILE).exists()


def test_cli_in_cluster_failure_exit_code(
    plan_dir: Path, plan: Plan, kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.play_jobs(Pods(plan, fail_at={"keycloak": "schema"}))
    monkeypatch.setattr(remote_module, "CnpgProvider",
                        lambda plan_dir, **kw: CnpgProvider(plan_dir, kube, sleep=lambda _s: None,
                                                            password_hash=fake_password_hash, **kw))
    monkeypatch.setattr(remote_module, "InClusterOptions", functools.partial(InClusterOptions, poll_interval=0.001))
    code = main(["execute", str(plan_dir), "--yes", "--in-cluster", "--app", "keycloak", "--image", "reg/c:1",
                 "--parallel", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "error: keycloak: schema failed in Job apps/keycloak-consolidator: COPY into" in err
    assert "hint: read its log: kubectl logs job/keycloak-consolidator -n apps" in err
    assert main(["execute", str(plan_dir), "--yes", "--image", "x"]) == 3  # --image without --in-cluster


# --------------------------------------------------------------------------- switch hooks inside the Job

WEB = "web"
APP_PASSWORD = "App-pw-5e1f0c"
RBAC = "rbac.authorization.k8s.io/v1"
HOOKS = {"kubernetes": {
    "patch": [
        {"kind": "ConfigMap", "name": "nextcloud-env", "namespace": WEB, "key": "DB_HOST", "value": "{rw_host}"},
        {"kind": "Secret", "name": "nextcloud-db", "namespace": WEB, "key": "DB_PASS",
         "from_secret": {"name": "{app_secret}", "key": "password"}},
    ],
    "restart": [{"kind": "Deployment", "name": "nextcloud-web", "namespace": WEB},
                {"kind": "StatefulSet", "name": "nextcloud-cron"}],
    "rollout_timeout": 30,
}}  # fmt: skip


@pytest.fixture
def hooked(plan_dir: Path, kube: FakeKube) -> Plan:
    """nextcloud switches through hooks.kubernetes: its config in namespace web, a worker in its own."""
    plan = load_plan(plan_dir)
    plan.app("nextcloud").hooks = copy.deepcopy(HOOKS)
    save_plan(plan, plan_dir)
    kube.add_namespace(WEB)
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nextcloud-env", "namespace": WEB},
              "data": {"DB_HOST": "legacy.db.example"}})  # fmt: skip
    kube.add_secret("nextcloud-db", WEB, {"DB_PASS": "old-pw"})
    kube.add_secret("nextcloud-app", NS, {"username": "nextcloud", "password": APP_PASSWORD})  # CloudNativePG's
    kube.add_workload("Deployment", "nextcloud-web", WEB, replicas=2, reads=1)
    kube.add_workload("StatefulSet", "nextcloud-cron", NS, replicas=1, reads=1)
    return load_plan(plan_dir)


def test_switch_hooks_run_inside_the_job_with_exactly_the_rights_they_need(
    plan_dir: Path, hooked: Plan, kube: FakeKube
) -> None:
    app = hooked.app("nextcloud")

    def fence(api: ServiceAccountApi) -> None:
        assert job_side(api).pause_traffic(hooked, app) == ["paused Pooler apps/nextcloud-pooler-rw"]

    def cutover(api: ServiceAccountApi) -> None:  # what the shared cutover step asks of the provider
        provider = job_side(api)
        target = provider.describe(hooked, app)
        assert target is not None
        provider.resume_traffic(hooked, app)
        provider.switch_app(hooked, app, target)

    pods = Pods(hooked, actions={("nextcloud", "fence"): fence, ("nextcloud", "cutover"): cutover})
    kube.play_jobs(pods)
    result, _ = run(plan_dir, kube, apps=["nextcloud"])

    assert result.exit_code == 0, result.apps[0].error
    assert len(pods.accounts) == 2 and all(a.denied == [] for a in pods.accounts)
    env = kube.get("v1", "ConfigMap", "nextcloud-env", WEB)
    assert env is not None and env["data"]["DB_HOST"] == "nextcloud-rw.apps.svc"
    assert (kube.read_secret("nextcloud-db", WEB) or {})["DB_PASS"] == APP_PASSWORD
    for kind, namespace, name in (("Deployment", WEB, "nextcloud-web"), ("StatefulSet", NS, "nextcloud-cron")):
        template = kube.objects[("apps/v1", kind, namespace, name)]["spec"]["template"]["metadata"]
        assert "kubectl.kubernetes.io/restartedAt" in template.get("annotations", {})
    assert kube.get("v1", "Secret", "nextcloud-consolidator-rollback", NS) is not None

    # a Role per namespace the hooks name, bound to the Job's ServiceAccount, rules restricted by name
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in kube.of_kind("Role")}
    assert set(roles) == {(NS, "nextcloud-consolidator"), (WEB, "nextcloud-consolidator-apps")}
    binding = kube.get(RBAC, "RoleBinding", "nextcloud-consolidator-apps", WEB)
    assert binding is not None and binding["roleRef"]["name"] == "nextcloud-consolidator-apps"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nextcloud-consolidator", "namespace": NS}]
    assert roles[(WEB, "nextcloud-consolidator-apps")] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"], "resourceNames": ["nextcloud-env"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"], "resourceNames": ["nextcloud-db"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"],
         "resourceNames": ["nextcloud-web"]},
    ]  # fmt: skip
    own = roles[(NS, "nextcloud-consolidator")]
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch", "delete"],
            "resourceNames": ["nextcloud-consolidator-rollback"]} in own  # fmt: skip
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["nextcloud-app"]} in own
    assert {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "patch"],
            "resourceNames": ["nextcloud-cron"]} in own  # fmt: skip
    unnamed = [r for rules in roles.values() for r in rules if "resourceNames" not in r]
    assert unnamed == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]  # create takes no names
    account = kube.as_service_account(NS, "nextcloud-consolidator")  # and nothing the hooks do not name
    for verb, api_version, kind, namespace, name in (
        ("get", "v1", "Secret", WEB, "other-secret"), ("patch", "apps/v1", "Deployment", WEB, "other-web"),
        ("delete", "v1", "ConfigMap", WEB, "nextcloud-env"), ("get", "v1", "Secret", NS, "keycloak-superuser"),
        ("patch", "apps/v1", "StatefulSet", WEB, "nextcloud-cron"), ("create", "v1", "ConfigMap", WEB, ""),
    ):  # fmt: skip
        assert not account.allowed(verb, resource_for(api_version, kind), namespace, name), (verb, kind, name)


def test_precheck_asks_for_what_the_jobs_roles_grant(hooked: Plan, kube: FakeKube) -> None:
    kube.deny("patch", "deployments.apps")
    kube.deny("create", "rolebindings.rbac.authorization.k8s.io")
    with pytest.raises(PreconditionError) as info:
        check_job_permissions(kube, hooked, [hooked.app("nextcloud"), hooked.app("keycloak")])
    message = info.value.message
    assert "cannot patch deployments.apps in namespace web" in message  # granted to the Job for its restart
    assert "cannot create rolebindings.rbac.authorization.k8s.io in namespace web" in message
    assert "cannot create rolebindings.rbac.authorization.k8s.io in namespace apps" in message
    assert "deployments.apps in namespace apps" not in message  # no hook restarts a Deployment there
    assert "only what you hold can be granted" in (info.value.hint or "")


# --------------------------------------------------------------------------- a Job whose pod never starts

BAD_IMAGE = "consolidator:0.1.0"


class Kubelet:
    """Plays the Jobs' pods before :class:`Pods` runs them: a Job of image ``bad`` gets a pod that stays
    stuck (``trouble``: :meth:`FakeKube.add_job_pod` arguments; none: no pod is ever created) for
    ``ticks`` reads of the Job (None: forever), then it runs; any other image runs at once."""

    def __init__(self, pods: Pods, *, bad: str = BAD_IMAGE, ticks: int | None = None, **trouble: Any) -> None:
        self.pods, self.bad, self.ticks, self.trouble = pods, bad, ticks, trouble

    def __call__(self, fake: FakeKube, job: dict[str, Any], tick: int) -> None:
        assert tick < 1000, "a Job whose pod never starts is followed forever"
        meta = job["metadata"]
        mine = [k for k, o in fake.objects.items() if k[1] == "Pod" and k[2] == meta["namespace"]
                and o["metadata"]["labels"].get("job-name") == meta["name"]]  # fmt: skip
        bad = job["spec"]["template"]["spec"]["containers"][0]["image"] == self.bad
        if bad and (self.ticks is None or tick < self.ticks):
            if not mine and self.trouble:
                fake.add_job_pod(job, **self.trouble)
            return
        if not any(fake.objects[k]["status"]["phase"] == "Running" for k in mine):
            for key in mine:  # the stuck pod's containers started after all
                del fake.objects[key]
            fake.add_job_pod(job)
        self.pods(fake, job, tick - (self.ticks or 0 if bad else 0))


def pod_of(kube: FakeKube, job: str) -> str:
    (pod,) = [o["metadata"]["name"] for o in kube.of_kind("Pod") if o["metadata"]["labels"].get("job-name") == job]
    return pod


def test_a_job_whose_image_cannot_be_pulled_fails_its_app_then_resume_replaces_it(
    plan_dir: Path, plan: Plan, kube: FakeKube
) -> None:
    pods = Pods(plan)
    kube.play_jobs(Kubelet(pods, waiting=("seed", "ImagePullBackOff", f'Back-off pulling image "{BAD_IMAGE}"')))
    clock = Clock()
    result, events = run(plan_dir, kube, apps=["keycloak"], image=BAD_IMAGE, clock=clock, poll_interval=5.0)

    (outcome,) = result.apps
    pod = pod_of(kube, "keycloak-consolidator")
    assert result.exit_code == 1 and outcome.state == "failed"
    assert outcome.error == (f"Job apps/keycloak-consolidator never started: pod {pod} is in ImagePullBackOff for "
                             f'image {BAD_IMAGE} after 180s: Back-off pulling image "{BAD_IMAGE}"')  # fmt: skip
    hint = next(e for e in events if e.type == "step_errored").fields["hint"]
    assert "--image REGISTRY/consolidator:" in hint and "docker build" in hint
    assert "imagePullSecrets" in hint and "patch serviceaccount keycloak-consolidator" in hint
    assert f"kubectl describe pod {pod} -n apps" in hint
    assert 180 <= clock.now < 200  # the grace period, not the start deadline
    assert pods.started == []  # the run never began
    assert not [c for c in kube.calls if c[0] == "delete"]  # the Job and its pod stay to be inspected
    assert kube.get("batch/v1", "Job", "keycloak-consolidator", NS) is not None and kube.of_kind("Pod")

    result, events = run(plan_dir, kube, apps=["keycloak"], resume=True, image="registry.example/consolidator:1")
    assert result.exit_code == 0 and result.apps[0].state == "cut_over"
    assert any("replacing Job apps/keycloak-consolidator, which never started" in e.message for e in events)
    assert ("delete", "Job", NS, "keycloak-consolidator") in kube.calls
    (started,) = pods.started
    assert started["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/consolidator:1"


@pytest.mark.parametrize("case", ["config", "unschedulable", "no pod"])
def test_a_job_that_never_starts_names_the_reason_and_the_fix(
    plan_dir: Path, plan: Plan, kube: FakeKube, case: str
) -> None:
    trouble: dict[str, Any] = {
        "config": {"waiting": ("consolidator", "CreateContainerConfigError",
                               f'secret "{plan.source.password_secret}" not found')},
        "unschedulable": {"unschedulable": "0/3 nodes are available: 3 Insufficient cpu."},
        "no pod": {},  # a ResourceQuota refused it: the Job controller creates none
    }[case]  # fmt: skip
    kube.play_jobs(Kubelet(Pods(plan), **trouble))
    clock = Clock()
    result, events = run(plan_dir, kube, apps=["keycloak"], image=BAD_IMAGE, clock=clock, poll_interval=5.0)
    (outcome,) = result.apps
    error, hint = outcome.error or "", next(e for e in events if e.type == "step_errored").fields["hint"]
    assert result.exit_code == 1 and outcome.state == "failed" and f"(image {BAD_IMAGE})" in error
    if case == "no pod":
        assert error == (f"Job apps/keycloak-consolidator did not start within 600s (image {BAD_IMAGE}): no pod was "
                         "created")  # fmt: skip
        assert "kubectl describe job/keycloak-consolidator -n apps" in hint and "ResourceQuota" in hint
        assert 600 <= clock.now < 620
        return
    pod = pod_of(kube, "keycloak-consolidator")
    assert f"kubectl describe pod {pod} -n apps" in hint and "--resume" in hint
    if case == "config":
        assert f"pod {pod} is in CreateContainerConfigError (image {BAD_IMAGE}): secret" in error
        assert f"Secret {plan.source.password_secret}" in hint
    else:
        assert f"pod {pod} is Unschedulable after 180s (image {BAD_IMAGE}): 0/3 nodes are available" in error
        assert "lower --jobs" in hint
    assert 180 <= clock.now < 200 and not [c for c in kube.calls if c[0] == "delete"]


def test_a_pod_that_starts_within_the_grace_period_is_followed(plan_dir: Path, plan: Plan, kube: FakeKube) -> None:
    pods = Pods(plan)
    kube.play_jobs(Kubelet(pods, ticks=20, waiting=("seed", "ErrImagePull", "rpc error: i/o timeout")))
    clock = Clock()
    result, _ = run(plan_dir, kube, apps=["keycloak"], image=BAD_IMAGE, clock=clock, poll_interval=5.0)
    assert result.exit_code == 0 and result.apps[0].state == "cut_over" and clock.now >= 95


# --------------------------------------------------------------------------- provisioning through the strategy

WIKI = "Team Wiki"


def test_logical_source_checks_refuse_before_a_cluster_or_job_exists(
    plan_dir: Path, plan: Plan, kube: FakeKube, source_checks: SourceChecks
) -> None:
    source_checks.refuse["mastodon_production"] = PreconditionError(
        "wal_level is 'replica' on the source; the logical strategy of mastodon_production needs 'logical'",
        hint="ALTER SYSTEM SET wal_level = logical, restart the source, then execute --resume")
    kube.play_jobs(Pods(plan))
    result, _ = run(plan_dir, kube, apps=["keycloak", "mastodon_production"])

    outcomes = {a.name: a for a in result.apps}
    assert outcomes["keycloak"].state == "cut_over"
    refused = outcomes["mastodon_production"]
    assert refused.state == "failed" and refused.exit_code == 4 == result.exit_code
    assert "wal_level" in (refused.error or "")
    assert ("logical", "mastodon_production") in source_checks.calls
    assert kube.get(CNPG, "Cluster", "mastodon-production", NS) is None
    assert kube.get("batch/v1", "Job", "mastodon-production-consolidator", NS) is None
    local = json.loads((plan_dir / STATE_FILE).read_text())["apps"]["mastodon_production"]
    assert local["steps"]["provision"]["state"] == "failed" and "wal_level" in local["steps"]["provision"]["error"]


def test_physical_standby_is_built_here_before_its_job_starts(
    plan_dir: Path, plan: Plan, kube: FakeKube, source_checks: SourceChecks
) -> None:
    app = plan.app(WIKI)
    healthy = {"phase": "Cluster in healthy state", "readyInstances": 1, "currentPrimary": "team-wiki-1"}

    def replicate(api: ServiceAccountApi) -> None:  # the standby's login until promotion: the source's
        target = job_side(api).describe(plan, app)
        assert target is not None and target.passfile and target.superuser == "postgres"

    def promote(api: ServiceAccountApi) -> None:
        kube.script_status(CNPG, "Cluster", NS, "team-wiki", [{**healthy, "timelineID": 1},
                                                              {**healthy, "timelineID": 2}])  # fmt: skip
        provider = job_side(api)
        provider.promote(plan, app)
        provider.wait_ready(plan, app)

    pods = Pods(plan, actions={(WIKI, "replicate"): replicate, (WIKI, "promote"): promote})
    kube.play_jobs(pods)
    result, events = run(plan_dir, kube, apps=[WIKI])

    assert result.exit_code == 0, result.apps[0].error
    writes = [c for c in kube.calls if c[1] in ("Cluster", "Job")]
    assert writes.index(("apply", "Cluster", NS, "team-wiki")) < writes.index(("create", "Job", NS,
                                                                               "team-wiki-consolidator"))
    assert source_checks.calls == [("physical", WIKI), ("replica cluster", WIKI)]  # the strategy's own checks
    (seed,) = pods.seeds
    assert {n: s["state"] for n, s in seed["apps"][WIKI]["steps"].items()} == {"provision": "done", "copy": "done"}
    assert (WIKI, "copy") not in pods.steps_run and (WIKI, "promote") in pods.steps_run
    cluster = kube.objects[(CNPG, "Cluster", NS, "team-wiki")]["spec"]
    assert cluster["bootstrap"]["pg_basebackup"] and cluster["replica"]["enabled"] is False  # promoted in the Job
    starts = [e.fields["step"] for e in events if e.type == "step_start"]
    assert starts == [s.name for s in app.steps]


class ImportedInto(CnpgProvider):
    """The imported Cluster's primary is played by a real server: the import's SQL check reaches it."""

    def __init__(self, plan_dir: Path, kube: FakeKube, server: Server) -> None:
        super().__init__(plan_dir, kube, in_cluster=True, poll_interval=0.001, sleep=lambda _s: None,
                         password_hash=fake_password_hash)  # fmt: skip
        self.server = server

    def _handle(self, plan: Plan, app: Any, cluster: dict[str, Any], *, strict: bool = True) -> Any:
        return dataclasses.replace(super()._handle(plan, app, cluster, strict=strict), conninfo=self.server.dsn,
                                   passfile=None)  # fmt: skip


def test_import_fences_and_waits_for_the_operators_import_here_then_the_job_continues(
    tmp_path: Path, kube: FakeKube, scratch: Server
) -> None:
    from consolidator.pg.connect import connect

    plan = cnpg_example_plan(NS)
    app = plan.app("keycloak")
    app.strategy.name, app.steps = "import", build_steps("keycloak", "import", SizeFacts(1, 0, 1, 1))
    plan.source.conninfo = scratch.dsn  # the legacy server: the fence closes its database
    plan_dir = tmp_path / "plan"
    save_plan(plan, plan_dir)
    with connect(scratch.dsn, dbname="postgres") as conn:
        conn.execute("CREATE DATABASE keycloak")  # on the source, and what the operator imported
    pods = Pods(load_plan(plan_dir))
    kube.play_jobs(pods)
    result, _ = run(plan_dir, kube, apps=["keycloak"], provider=ImportedInto(plan_dir, kube, scratch))

    assert result.exit_code == 0, result.apps[0].error
    (seed,) = pods.seeds
    state = seed["apps"]["keycloak"]
    assert [n for n, s in state["steps"].items() if s["state"] == "done"] == ["fence", "provision"]
    assert "keycloak" in state["fence"]  # the ACL rollback restores, recorded before the source closed
    with connect(scratch.dsn, dbname="postgres") as conn:
        assert conn.execute("SELECT has_database_privilege('public', 'keycloak', 'CONNECT')").fetchone() == (False,)
    cluster = kube.get(CNPG, "Cluster", "keycloak", NS)
    assert cluster is not None and cluster["spec"]["bootstrap"]["initdb"]["import"]["databases"] == ["keycloak"]
    assert [s for a, s in pods.steps_run if a == "keycloak"] == ["roles", "privileges", "sequences", "verify",
                                                                  "cutover"]


# --------------------------------------------------------------------------- the image


def test_in_cluster_needs_an_image_from_the_command_line_or_the_plan(
    plan_dir: Path, plan: Plan, kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(remote_module, "CnpgProvider",
                        lambda plan_dir, **kw: CnpgProvider(plan_dir, kube, sleep=lambda _s: None,
                                                            password_hash=fake_password_hash, **kw))
    code = main(["execute", str(plan_dir), "--yes", "--in-cluster", "--app", "keycloak"])
    err = capsys.readouterr().err
    assert code == 3 and "--in-cluster needs the image the copy Jobs run" in err
    assert "docker build -t REGISTRY/consolidator:" in err and "--in-cluster --image REGISTRY/consolidator:" in err
    assert kube.calls == [] and not (plan_dir / STATE_FILE).exists()  # refused before anything

    plan.target.copy_image = "registry.example/consolidator:7"
    save_plan(plan, plan_dir)
    pods = Pods(plan)
    kube.play_jobs(pods)
    result, _ = run(plan_dir, kube, apps=["keycloak"], image=None)
    assert result.exit_code == 0
    assert pods.started[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/consolidator:7"

    text = (plan_dir / "plan.yaml").read_text().replace("copy_image: registry.example/consolidator:7",
                                                         "copy_image: Registry.example/consolidator 7")
    (plan_dir / "plan.yaml").write_text(text)
    with pytest.raises(PlanValidationError) as info:
        load_plan(plan_dir)
    assert info.value.path == "target.copy_image" and "not an image reference" in info.value.message


# --------------------------------------------------------------------------- the journal mirror


def test_journal_mirror_is_called_on_every_save(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("x: 1\n")
    plain = Journal.create(tmp_path, ["a"])
    with plain.run_step("a", "copy"):
        plain.record_copied("a", "db", "t", part=0, parts=1, rows=1, size=2, seconds=0.1)
    without = json.loads(plain.path.read_text())

    mirrored_dir = tmp_path / "m"
    mirrored_dir.mkdir()
    (mirrored_dir / "plan.yaml").write_text("x: 1\n")
    journal = Journal.create(mirrored_dir, ["a"])
    texts: list[str] = []
    journal.mirror = texts.append
    with journal.run_step("a", "copy"):
        journal.record_copied("a", "db", "t", part=0, parts=1, rows=1, size=2, seconds=0.1)
    journal.update(lambda s: setattr(s.apps["a"], "state", "cut_over"))
    assert len(texts) == 4  # running, the table, done, the state
    assert texts[-1] == journal.path.read_text()  # exactly what is on disk
    with_mirror = json.loads(texts[2])
    for doc in (without, with_mirror):  # the local journal is the same with or without a mirror
        for volatile in ("started_at", "updated_at", "plan_sha256"):
            doc.pop(volatile)
        for step in doc["apps"]["a"]["steps"].values():
            step.update(started_at=None, finished_at=None, seconds=0)
        doc["apps"]["a"]["tables"]["db/t"]["seconds"] = 0
    assert with_mirror == without


def test_configmap_mirror_coalesces_and_always_writes_the_last_save(kube: FakeKube) -> None:
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k-consolidator-journal",
              "namespace": NS}, "data": {"state.json": ""}})  # fmt: skip
    mirror = ConfigMapMirror(kube, NS, "k-consolidator-journal", min_interval=0.2)
    for n in range(20):
        mirror(f'{{"n": {n}}}')
    assert mirror.writes == 1  # the first goes out at once, the rest wait for the interval
    deadline = time.monotonic() + 5
    while mirror.writes < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mirror.writes == 2
    cm = kube.get("v1", "ConfigMap", "k-consolidator-journal", NS)
    assert cm is not None and cm["data"]["state.json"] == '{"n": 19}'


def test_journal_mirror_from_env(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSOLIDATOR_JOURNAL_CONFIGMAP", raising=False)
    assert journal_mirror_from_env(kube) is None and not in_copy_job()  # a local run: no mirror, nothing changes
    monkeypatch.setenv("CONSOLIDATOR_JOURNAL_CONFIGMAP", "keycloak-consolidator-journal")
    monkeypatch.setenv("CONSOLIDATOR_NAMESPACE", NS)
    mirror = journal_mirror_from_env(kube)
    assert in_copy_job()  # execute skips the cluster-wide preflight its launcher already ran
    assert isinstance(mirror, ConfigMapMirror) and (mirror.namespace, mirror.name) == (NS,
                                                                                       "keycloak-consolidator-journal")
