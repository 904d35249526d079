"""Copies as Kubernetes Jobs (``execute --in-cluster``) against the in-memory Kubernetes fake.

The fake plays the operator (clusters go healthy, ``<cluster>-superuser`` appears) and the copy
Jobs' pods: each Job continues the journal seeded in its plan ConfigMap, one step per read of the
Job, mirrors every save into its journal ConfigMap through the real :class:`ConfigMapMirror`, then
succeeds or fails the way a pod of ``consolidator execute`` would.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from consolidator.cli.main import main
from consolidator.engine import remote as remote_module
from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.executor import ExecuteOptions
from consolidator.engine.journal import STATE_FILE, Journal, RunState
from consolidator.engine.lifecycle import status
from consolidator.engine.remote import InClusterOptions, execute_in_cluster
from consolidator.errors import ConfigError, PreconditionError, StepFailed
from consolidator.events import Event
from consolidator.k8s.jobs import (
    DEFAULT_IMAGE,
    ConfigMapMirror,
    JobSettings,
    in_copy_job,
    journal_mirror_from_env,
    render_job,
    render_rbac,
)
from consolidator.plan.model import Plan
from consolidator.plan.store import load_plan, save_plan
from consolidator.serde import from_data
from tests.kube_fake import EXAMPLE_PLAN, FakeKube, cnpg_example_plan, fake_password_hash

NS = "apps"
CNPG = "postgresql.cnpg.io/v1"
SOURCE_PASSWORD = "s0urce-secret:pw"
SUPERUSER_PASSWORD = "Sup3r-secret-pw"
APPS = ["keycloak", "nextcloud", "mastodon_production"]  # dump, dump, logical
FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
          "message": "Job has reached the specified backoff limit"}  # fmt: skip


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

    def __init__(self, plan: Plan, *, fail_at: dict[str, str] | None = None, concurrency: int = 1) -> None:
        self.plan = plan
        self.fail_at = dict(fail_at or {})  # app → step that fails (once)
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
        with journal.run_step(app.name, step.name):
            if step.name == "copy":
                journal.record_copied(app.name, app.databases[0].target, "public.items", part=0, parts=1, rows=42,
                                      size=8192, seconds=0.5)  # fmt: skip
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


def run(plan_dir: Path, kube: FakeKube, *, resume: bool = False, parallel: int = 4, image: str = DEFAULT_IMAGE,
        apps: list[str] | None = None, events: list[Event] | None = None) -> tuple[Any, list[Event]]:  # fmt: skip
    events = [] if events is None else events
    provider = CnpgProvider(plan_dir, kube, in_cluster=True, poll_interval=0.001, sleep=lambda _s: None,
                            password_hash=fake_password_hash)
    result = execute_in_cluster(plan_dir, ExecuteOptions(apps=apps or APPS, resume=resume, jobs=2),
                                InClusterOptions(image=image, parallel=parallel, poll_interval=0.001), events.append,
                                provider=provider, sleep=lambda _s: time.sleep(0.001))  # fmt: skip
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

    account, role, binding = render_rbac(app)
    assert (account["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    rules = {r["resources"][0]: r for r in role["rules"]}
    assert rules["secrets"] == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                "resourceNames": ["keycloak-superuser"]}  # fmt: skip
    assert rules["clusters"]["resourceNames"] == ["keycloak"] and rules["clusters"]["verbs"] == ["get"]
    assert rules["configmaps"]["resourceNames"] == ["keycloak-consolidator-journal"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "keycloak-consolidator", "namespace": NS}]
    assert "poolers" not in rules  # keycloak has no Pooler; nextcloud's fence pauses its own, and only that
    pooler_rules = [r for r in render_rbac(plan.app("nextcloud"))[1]["rules"] if r["resources"] == ["poolers"]]
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
    with pytest.raises(PreconditionError) as info:
        execute_in_cluster(plan_dir, ExecuteOptions(apps=["keycloak"]), provider=provider)
    assert "cannot create jobs.batch in namespace apps" in info.value.message
    assert "cannot create roles.rbac.authorization.k8s.io in namespace apps" in info.value.message
    assert "kubectl auth can-i create jobs.batch -n apps" in (info.value.hint or "")
    assert not kube.of_kind("Job") and not (plan_dir / STATE_FILE).exists()


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
