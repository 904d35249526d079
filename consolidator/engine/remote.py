"""``execute --in-cluster``: every app's copy runs as a Kubernetes Job next to its cluster.

For data that should not travel through the operator's machine. This side runs each app's steps up
to the one that creates its target (:func:`local_steps`: the strategy's own ``provision``, with the
source checks it makes; for ``physical`` the standby ``copy`` builds; for ``import`` the fence
first) through the journal exactly as a local run does, then per app renders the copy Job and what
it needs (:mod:`consolidator.k8s.jobs`) and follows it: several apps at once (``--parallel``), each
Job's progress read back from the journal it mirrors into ``<cluster>-consolidator-journal`` and
re-emitted as the usual events, every change copied into the local ``state.json`` (so ``status``,
``verify``, ``rollback`` and ``finalize`` work as after a local run). A failed Job becomes the
failed step with the error the journal recorded and where to read the pod's log; ``--resume``
starts a new Job that continues the journal (an unfinished Job is followed, not replaced, unless
its pod never started). A Job whose pod never starts (image not pullable, a missing Secret, no node
to run it) fails the app after a grace period, naming the reason, the image and the fix; nothing is
deleted then, so the pod can still be inspected.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from consolidator import __version__
from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.executor import (
    DONE_STATES,
    AppOutcome,
    ExecuteOptions,
    ExecuteResult,
    _prepare_journal,
    selected_apps,
    strategy_for,
)
from consolidator.engine.journal import AppState, Journal, RunState, exclusive
from consolidator.engine.run import AppRun
from consolidator.engine.strategy import Strategy
from consolidator.engine.summary import write_summary
from consolidator.errors import ConfigError, ConsolidatorError, Interrupted, PreconditionError, StepFailed
from consolidator.events import EventSink, emit
from consolidator.k8s.api import KubeApi, KubeConflict, Resource, resource_for, selector
from consolidator.k8s.jobs import (
    JOURNAL_KEY,
    RBAC_API,
    JobSettings,
    PodTrouble,
    job_name,
    job_outcome,
    journal_configmap_name,
    logs_hint,
    not_started_failure,
    pod_ran,
    pod_trouble,
    render_job,
    render_journal_configmap,
    render_plan_configmap,
    render_rbac,
    stuck_failure,
)
from consolidator.pg.diagnostics import explain
from consolidator.plan.model import App, Plan
from consolidator.plan.store import load_plan, plan_path
from consolidator.serde import from_data, to_data

FACTS_KEY = "in_cluster"  # AppState.facts entry: which Job ran, which mirrored journal was merged
# The step that creates the target when it is not ``provision``: physical's copy builds the standby.
PROVISIONING_STEP = {"physical": "copy"}
# What this side asks of the API in each app's namespace besides what the provider's preflight checks
# (pods: following a Job whose pod does not start).
JOB_PERMISSIONS = (
    ("batch/v1", "Job", ("create", "get", "delete")),
    ("v1", "ConfigMap", ("create", "get", "patch")),
    ("v1", "ServiceAccount", ("create", "patch")),
    ("v1", "Pod", ("get", "list")),
)
# ... and in every namespace where a Job gets a Role (its app's, and those its Kubernetes hooks name).
ROLE_PERMISSIONS = (
    (RBAC_API, "Role", ("create", "patch")),
    (RBAC_API, "RoleBinding", ("create", "patch")),
)


@dataclass
class InClusterOptions:
    image: str | None = None  # None: the plan's target.copy_image (refused when neither is set)
    parallel: int = 4  # apps whose Jobs run at the same time
    poll_interval: float = 5.0
    ttl_seconds: int = 7 * 24 * 3600
    pending_grace: float = 180.0  # a pod waiting with ImagePullBackOff… this long fails its app
    start_timeout: float = 600.0  # a Job whose run has not started after this long fails its app
    extra: dict[str, Any] = field(default_factory=dict)  # JobSettings overrides (cpu, memory, pull_policy)


def local_steps(app: App) -> list[str]:
    """The steps run on this side before the Job: every step up to the one that creates the target, in
    plan order (``provision``; physical's ``copy``, which builds the standby; import fences first)."""
    names = [s.name for s in app.steps]
    last = PROVISIONING_STEP.get(app.strategy.name, "provision")
    return names[: names.index(last) + 1] if last in names else []


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rule_resources(obj: dict[str, Any]) -> list[tuple[Resource, tuple[str, ...]]]:
    """(resource, verbs) of every rule of a rendered Role."""
    return [(Resource(group, "v1", plural), tuple(rule["verbs"])) for rule in obj.get("rules") or []
            for group in rule["apiGroups"] for plural in rule["resources"]]  # fmt: skip


def check_job_permissions(api: KubeApi, plan: Plan, apps: list[App]) -> None:
    """Refuse, listing every missing grant at once, before anything is created.

    Besides creating the Jobs and their objects, this side needs everything their Roles grant:
    Kubernetes lets nobody grant what they do not hold themselves."""
    wanted: dict[tuple[str, Resource], tuple[str, ...]] = {}
    granted: set[tuple[str, Resource]] = set()

    def want(namespace: str, resource: Resource, verbs: tuple[str, ...]) -> None:
        known = wanted.get((namespace, resource), ())
        wanted[(namespace, resource)] = known + tuple(v for v in verbs if v not in known)

    for app in apps:
        for api_version, kind, verbs in JOB_PERMISSIONS:
            want(app.namespace, resource_for(api_version, kind), verbs)
        for obj in render_rbac(plan, app):
            if obj["kind"] != "Role":
                continue
            namespace = obj["metadata"]["namespace"]
            for api_version, kind, verbs in ROLE_PERMISSIONS:
                want(namespace, resource_for(api_version, kind), verbs)
            for resource, verbs in _rule_resources(obj):
                want(namespace, resource, verbs)
                granted.add((namespace, resource))
    missing: list[tuple[list[str], str, str, bool]] = []
    for (namespace, resource), verbs in sorted(wanted.items(), key=lambda i: (i[0][0], i[0][1].qualified)):
        denied = [v for v in verbs if not api.can_i(v, resource, namespace)]
        if denied:
            missing.append((denied, resource.qualified, namespace, (namespace, resource) in granted))
    if missing:
        verbs, resource, namespace, _ = missing[0]
        grants = any(g for *_, g in missing)
        raise PreconditionError(
            "copies inside the cluster need more permissions: "
            + "; ".join(f"cannot {', '.join(v)} {r} in namespace {n}" for v, r, n, _ in missing),
            hint=f"grant them to the identity in use (check: kubectl auth can-i {verbs[0]} {resource} -n {namespace})"
            + ("; the Jobs' Roles need some of them (for the switch hooks too) and only what you hold can be "
               "granted" if grants else "")
            + "; see the README, Copies inside the cluster",
        )


def execute_in_cluster(plan_dir: Path, opts: ExecuteOptions, remote: InClusterOptions | None = None,
                       sink: EventSink | None = None, *, provider: CnpgProvider | None = None,
                       sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic) -> ExecuteResult:  # fmt: skip
    """Provision, then run and follow one copy Job per app (at most ``remote.parallel`` at once)."""
    remote = remote or InClusterOptions()
    plan = load_plan(plan_dir)
    if plan.target.provider != "cnpg":
        raise ConfigError(f"--in-cluster needs a cnpg plan; this one targets {plan.target.provider}",
                          hint="plan again with --target cnpg, or execute without --in-cluster")  # fmt: skip
    if opts.restart:
        raise ConfigError("--restart cannot be combined with --in-cluster",
                          hint="undo the run with consolidator execute --restart (without --in-cluster) or "
                          "teardown, then execute --in-cluster again")  # fmt: skip
    if opts.source_dsn:
        raise ConfigError("--source cannot be combined with --in-cluster: a DSN never leaves this machine",
                          hint=f"the Job reaches the source with the plan's conninfo and the password in Secret "
                          f"{plan.source.password_secret}")  # fmt: skip
    image = remote.image or plan.target.copy_image
    if not image:
        ref = f"REGISTRY/consolidator:{__version__}"
        raise ConfigError("--in-cluster needs the image the copy Jobs run: give --image, or set target.copy_image "
                          "in the plan",
                          hint=f"build it from this repository and push it where the cluster pulls from: docker "
                          f"build -t {ref} . && docker push {ref}; then consolidator execute {plan_dir} --yes "
                          f"--in-cluster --image {ref}")  # fmt: skip
    if remote.parallel < 1:
        raise ConfigError(f"--parallel {remote.parallel}: must be at least 1", hint="e.g. --parallel 4")
    apps = selected_apps(plan, opts.apps)
    strategies = {app.name: strategy_for(app) for app in apps}  # refuses what this version cannot run, up front
    # As a local run: the steps run here (import checks its databases over SQL) reach the target through
    # a port-forward, or its Service when this side runs inside the cluster too.
    provider = provider or CnpgProvider(plan_dir)
    for line in provider.preflight(plan, apps):
        emit(sink, "log", f"preflight: {line}")
    check_job_permissions(provider.api, plan, apps)
    settings = JobSettings(image=image, workers=opts.jobs, ttl_seconds=remote.ttl_seconds, force=opts.force,
                           **remote.extra)  # fmt: skip
    result = ExecuteResult()
    stop = threading.Event()
    with exclusive(plan_dir), contextlib.closing(provider):
        journal = _prepare_journal(plan_dir, plan, opts, provider, plan.source.conninfo)
        plan_yaml = plan_path(plan_dir).read_bytes().decode("utf-8")  # byte for byte: the Job checks its digest
        runs = [_RemoteApp(plan_dir, plan, app, strategies[app.name], provider, journal, opts, settings, plan_yaml,
                           remote, sink, sleep, clock, stop) for app in apps]  # fmt: skip
        with ThreadPoolExecutor(max_workers=remote.parallel, thread_name_prefix="in-cluster") as pool:
            futures = [pool.submit(run.run) for run in runs]
            try:
                result.apps = [f.result() for f in futures]
            except BaseException:
                stop.set()  # the Jobs go on in the cluster; execute --in-cluster --resume follows them again
                raise
        result.summary = write_summary(plan, journal, plan_dir)
    emit(sink, "summary", "execute finished", apps=[a.__dict__ for a in result.apps], ok=result.ok)
    return result


class _RemoteApp:
    """One app: provision here, then its Job there, followed through the mirrored journal."""

    def __init__(self, plan_dir: Path, plan: Plan, app: App, strategy: Strategy, provider: CnpgProvider,
                 journal: Journal, opts: ExecuteOptions, settings: JobSettings, plan_yaml: str,
                 remote: InClusterOptions, sink: EventSink | None, sleep: Callable[[float], None],
                 clock: Callable[[], float], stop: threading.Event) -> None:  # fmt: skip
        self.plan_dir, self.plan, self.app, self.strategy = plan_dir, plan, app, strategy
        self.provider, self.journal, self.opts = provider, journal, opts
        self.settings, self.plan_yaml, self.poll_interval = settings, plan_yaml, remote.poll_interval
        self.pending_grace, self.start_timeout = remote.pending_grace, remote.start_timeout
        self.sink, self.sleep, self.clock, self.stop = sink, sleep, clock, stop
        self.api = provider.api
        self.job = job_name(app)
        self._started: set[str] = set()
        self._copy_started = time.monotonic()
        self._following_since = 0.0  # clock() when this side created or took up the Job
        self._ran = False  # the Job's run started (its pod ran, or it wrote its journal)
        self._waiting: dict[tuple[str, str], float] = {}  # (pod, trouble kind) → clock() first seen

    # -- driver

    def run(self) -> AppOutcome:
        app, started = self.app, time.monotonic()
        try:
            self._catch_up()
            state = self.journal.app(app.name)
            if state.state in DONE_STATES:
                emit(self.sink, "log", f"{app.name}: already {state.state}")
                return AppOutcome(app.name, state.state, 0.0)
            self.journal.update(lambda s: setattr(s.apps[app.name], "state", "running"))
            self._run_local_steps()
            seen = self._start()
            self._follow(seen)
        except (ConsolidatorError, psycopg.Error) as exc:
            message, hint = (exc.message, exc.hint) if isinstance(exc, ConsolidatorError) else explain(exc)
            code = int(exc.exit_code) if isinstance(exc, ConsolidatorError) else 1
            self.journal.update(lambda s: setattr(s.apps[app.name], "state", "failed"))
            emit(self.sink, "step_errored", f"{app.name}: {message}", level="error", app=app.name, hint=hint)
            return AppOutcome(app.name, "failed", time.monotonic() - started, message, code)
        return AppOutcome(app.name, self.journal.app(app.name).state, time.monotonic() - started)

    def _run_local_steps(self) -> None:
        """The strategy's own steps up to its target (:func:`local_steps`), journaled as a local run does:
        the source checks they make refuse here, before any Job exists, and the Job continues after them."""
        app, wanted = self.app, local_steps(self.app)
        run = AppRun(plan=self.plan, app=app, plan_dir=self.plan_dir, source_dsn=self.plan.source.conninfo,
                     provider=self.provider, journal=self.journal, options=self.opts, sink=self.sink)  # fmt: skip
        for step in app.steps:
            if step.name not in wanted or self.journal.is_done(app.name, step.name):
                continue
            emit(self.sink, "step_start", f"{app.name}: {step.name}", step_id=step.id, app=app.name, step=step.name,
                 estimated_seconds=step.estimated_seconds)  # fmt: skip
            began = time.monotonic()
            with self.journal.run_step(app.name, step.name):
                self.strategy.run_step(run, step.name)
            emit(self.sink, "step_complete", f"{app.name}: {step.name} done", step_id=step.id, app=app.name,
                 step=step.name, seconds=round(time.monotonic() - began, 3))  # fmt: skip

    # -- the Job

    def _get_job(self) -> dict[str, Any] | None:
        return self.api.get("batch/v1", "Job", self.job, self.app.namespace)

    def _mirrored(self) -> str:
        cm = self.api.get("v1", "ConfigMap", journal_configmap_name(self.app), self.app.namespace)
        return str(((cm or {}).get("data") or {}).get(JOURNAL_KEY) or "")

    def _catch_up(self) -> None:
        """A Job that finished while nobody followed it (this side was stopped): take its journal."""
        text = self._mirrored()
        if not text or _sha(text) == self._merged_sha():
            return
        job = self._get_job()
        if job is not None and job_outcome(job)[0] == "active":
            return  # followed below
        remote = self._parse(text)
        if remote is not None:
            self._merge(remote, text)
            emit(self.sink, "log", f"{self.app.name}: took the journal of Job {self.app.namespace}/{self.job}")

    def _seed(self) -> str:
        """The journal the Job continues from: this app only, without this machine's target paths."""
        local = self.journal.state
        state = from_data(AppState, to_data(self.journal.app(self.app.name)))  # only this thread changes it
        state.target = {}
        state.facts.pop(FACTS_KEY, None)
        seed = RunState(plan_sha256=local.plan_sha256, started_at=local.started_at, apps={self.app.name: state},
                        updated_at=local.updated_at)  # fmt: skip
        return json.dumps(to_data(seed), indent=1, ensure_ascii=False) + "\n"

    def _start(self) -> AppState | None:
        """Follow a running Job, or replace a finished one (or one that never started) by a new Job
        continuing the journal."""
        app = self.app
        existing = self._get_job()
        self._following_since = self.clock()
        if existing is not None and job_outcome(existing)[0] == "active":
            stuck = self._never_started()
            if stuck is None:
                emit(self.sink, "log", f"{app.name}: following Job {app.namespace}/{self.job}, already running")
                return self._parse(self._mirrored())
            emit(self.sink, "log", f"{app.name}: replacing Job {app.namespace}/{self.job}, which never started "
                 f"(pod {stuck.pod}: {stuck.reason})")  # fmt: skip
        if existing is not None:
            self.api.delete("batch/v1", "Job", self.job, app.namespace)
        seed = self._seed()
        for obj in render_rbac(self.plan, app):
            self.api.apply(obj)
        self.api.apply(render_plan_configmap(app, self.plan_yaml, seed))
        self.api.apply(render_journal_configmap(app, seed))  # what a previous Job mirrored is superseded
        self._record_merged(seed)
        job = render_job(self.plan, app, self.settings)
        for _ in range(30):  # a deleted Job may take a moment to go (its pods are removed first)
            try:
                self.api.create(job)
                break
            except KubeConflict:
                self._pause()
        else:
            raise StepFailed(f"Job {app.namespace}/{self.job} still exists after it was deleted",
                             hint=f"kubectl delete job/{self.job} -n {app.namespace}, then execute --in-cluster "
                             "--resume")  # fmt: skip
        emit(self.sink, "log", f"{app.name}: started Job {app.namespace}/{self.job} ({self.settings.image})")
        return self._parse(seed)

    def _pause(self) -> None:
        if self.stop.is_set():
            raise Interrupted(f"{self.app.name}: stopped following Job {self.app.namespace}/{self.job}",
                              hint="it goes on in the cluster; execute --in-cluster --resume follows it again")
        self.sleep(self.poll_interval)

    def _pods(self) -> list[dict[str, Any]]:
        """The Job's pods (a replaced Job's may still be terminating: not ours)."""
        pods = self.api.list("v1", "Pod", self.app.namespace, selector({"job-name": self.job}))
        return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]

    def _never_started(self) -> PodTrouble | None:
        """An active Job that wrote nothing and whose pod is stuck (image, config, scheduling): safe to replace."""
        if _sha(self._mirrored()) != self._merged_sha():
            return None
        pods = self._pods()
        if any(pod_ran(p) for p in pods):
            return None
        return next((t for t in map(pod_trouble, pods) if t is not None), None)

    def _check_started(self) -> None:
        """Until the run starts: fail on a pod stuck beyond the grace period, or a Job not started in time.
        The Job and its pod stay for ``kubectl describe``; --resume replaces them."""
        pods = self._pods()
        if any(pod_ran(p) for p in pods):
            self._ran = True
            return
        now = self.clock()
        for trouble in filter(None, map(pod_trouble, pods)):
            first = self._waiting.setdefault((trouble.pod, trouble.kind), now)
            if now - first >= self.pending_grace:
                message, hint = stuck_failure(self.plan, self.app, trouble, now - first)
                raise StepFailed(message, hint=hint)
        if now - self._following_since >= self.start_timeout:
            message, hint = not_started_failure(self.app, self.settings.image, pods, now - self._following_since)
            raise StepFailed(message, hint=hint)

    def _follow(self, seen: AppState | None) -> None:
        app = self.app
        last = self._merged_sha()
        while True:
            job = self._get_job()
            text = self._mirrored()  # read after the Job: a finished Job's last save is already there
            if text and _sha(text) != last:
                self._ran = True  # the run wrote its journal
                remote = self._parse(text)
                if remote is not None:
                    self._emit_changes(seen, remote)
                    self._merge(remote, text)
                    seen = remote
                last = _sha(text)
            if job is None:
                raise StepFailed(f"Job {app.namespace}/{self.job} disappeared before it finished",
                                 hint=f"kubectl get events -n {app.namespace}; then execute --in-cluster --resume")
            outcome, detail = job_outcome(job)
            if outcome == "succeeded":
                return
            if outcome == "failed":
                self._fail(seen, detail)
            if not self._ran:
                self._check_started()
            self._pause()

    def _fail(self, seen: AppState | None, detail: str) -> None:
        """The Job failed: the journal's own error (what the run said), else Kubernetes' reason."""
        app, where = self.app, f"Job {self.app.namespace}/{self.job}"
        steps = [(s, seen.steps.get(s.name)) for s in app.steps] if seen else []
        failed = next(((s, r) for s, r in steps if r is not None and r.state == "failed"), None)
        running = next(((s, r) for s, r in steps if r is not None and r.state == "running"), None)
        if failed is not None:
            message = f"{failed[0].name} failed in {where}: {failed[1].error or detail}"
        elif running is not None:
            message = f"{where} failed during {running[0].name}: {detail}"

            def mark(s: Any, name: str = running[0].name) -> None:
                step = s.apps[app.name].steps[name]
                step.state, step.error = "failed", detail[:500]

            self.journal.update(mark)
        else:
            message = f"{where} failed: {detail}"
        raise StepFailed(message, hint=f"read its log: {logs_hint(app)}; fix the cause, then execute --in-cluster "
                         "--resume (a new Job continues the journal)")  # fmt: skip

    # -- the journal

    def _parse(self, text: str) -> AppState | None:
        if not text:
            return None
        try:
            state = from_data(RunState, json.loads(text))
        except (ValueError, TypeError, KeyError, ConsolidatorError):
            return None  # a half-written or foreign document: the next one will do
        return state.apps.get(self.app.name)

    def _merged_sha(self) -> str:
        return str(self.journal.app(self.app.name).facts.get(FACTS_KEY, {}).get("journal_sha256") or "")

    def _record_merged(self, text: str) -> None:
        self.journal.update(lambda s: s.apps[self.app.name].facts.__setitem__(
            FACTS_KEY, {"job": self.job, "journal_sha256": _sha(text)}))  # fmt: skip

    def _merge(self, remote: AppState, text: str) -> None:
        """The Job's view of the app becomes ours; the target as this machine reaches it stays."""

        def merge(s: RunState) -> None:
            local = s.apps.get(self.app.name) or AppState(name=self.app.name)
            merged = copy.deepcopy(remote)
            merged.target = local.target or merged.target
            merged.facts[FACTS_KEY] = {"job": self.job, "journal_sha256": _sha(text)}
            s.apps[self.app.name] = merged

        self.journal.update(merge)

    def _emit_changes(self, old: AppState | None, new: AppState) -> None:
        """Steps started and finished, tables copied and bytes so far, as a local run reports them."""
        app = self.app
        for step in app.steps:
            now = new.steps.get(step.name)
            before = old.steps.get(step.name) if old else None
            if now is None or (before is not None and (before.state, before.attempts) == (now.state, now.attempts)):
                continue
            was_done = before is not None and before.state == "done"
            if now.state in ("running", "done") and step.name not in self._started and not was_done:
                self._started.add(step.name)
                if step.name == "copy":
                    self._copy_started = time.monotonic()
                emit(self.sink, "step_start", f"{app.name}: {step.name}", step_id=step.id, app=app.name,
                     step=step.name, estimated_seconds=step.estimated_seconds)  # fmt: skip
            if now.state == "done" and not was_done:
                emit(self.sink, "step_complete", f"{app.name}: {step.name} done", step_id=step.id, app=app.name,
                     step=step.name, seconds=now.seconds)  # fmt: skip
        copy_id = f"{app.name}/copy"
        for key, table in new.tables.items():
            before_table = old.tables.get(key) if old else None
            if table.state == "done" and (before_table is None or before_table.state != "done"):
                emit(self.sink, "step_progress", f"copied {app.name} {key}", step_id=copy_id, app=app.name,
                     table=f"{table.database}/{table.name}", rows=table.rows, bytes=table.bytes,
                     seconds=table.seconds)  # fmt: skip
        copied = sum(t.bytes for t in new.tables.values())
        before_bytes = sum(t.bytes for t in old.tables.values()) if old else 0
        copying = new.steps.get("copy")
        if copied != before_bytes and copying is not None and copying.state == "running":
            elapsed = max(time.monotonic() - self._copy_started, 0.001)
            emit(self.sink, "step_progress", f"copy {app.name}", step_id=copy_id, app=app.name, bytes=copied,
                 bytes_total=max(copied, app.size_bytes), elapsed_seconds=round(elapsed, 1),
                 rate=round(copied / elapsed))  # fmt: skip
