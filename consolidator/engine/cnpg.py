"""The ``cnpg`` provider: one CloudNativePG ``Cluster`` per app, driven through :class:`KubeApi`.

What it does, and why this way:

* **preflight** (:mod:`.cnpg_preflight`) checks everything a first apply would trip over, before
  anything is created, and lists every problem at once.
* **provision** applies exactly the objects ``consolidator plan`` rendered (``render_app``, the same
  function that wrote ``DIR/manifests/<cluster>/``) with server-side apply; when the manifest files
  exist they must still match the plan, so what reaches the cluster is what was reviewed.
  Secret templates get values here (see :meth:`CnpgProvider._fill_secret`), then it waits.
* **wait_ready** polls the Cluster until ``readyInstances == spec.instances`` in the healthy phase,
  and turns the operator's ``phase``/``phaseReason``/conditions (and failed bootstrap Jobs) into a
  StepFailed naming the cluster and the fix.
* The :class:`TargetHandle` logs in as the ``<cluster>-superuser`` Secret's user (CNPG creates it
  because the manifests set ``enableSuperuserAccess`` for dump/logical/physical); the password goes
  to a 0600 passfile in ``DIR/work/<cluster>/``, never into a conninfo, the plan or a command line.
  Inside Kubernetes the host is the ``<cluster>-rw`` Service; outside, a port-forward to the primary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from consolidator.engine.cnpg_preflight import Check, Preflight
from consolidator.engine.provider import Provider, TargetHandle
from consolidator.errors import PreconditionError, StepFailed
from consolidator.fsutil import write_atomic
from consolidator.k8s.api import (
    KubeApi,
    KubeConflict,
    KubeForbidden,
    PortForward,
    identity,
    selector,
)
from consolidator.k8s.switch import Switcher
from consolidator.manifests.admission import BARMAN_API, CNPG_API
from consolidator.manifests.render import (
    APP_LABEL,
    FILL_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    file_name,
    label_value,
    pooler_name,
    render_app,
    to_yaml,
)
from consolidator.pg.connect import pgpass_line
from consolidator.plan.model import App, Plan

HEALTHY = "Cluster in healthy state"
GENERATED_ANNOTATION = "consolidator.io/generated-password"
PURPOSE_ANNOTATION = "consolidator.io/purpose"
# Phases after which the operator will not get the cluster healthy by itself (CNPG's phase constants
# are long sentences; these fragments match them across releases).
FATAL_PHASE_FRAGMENTS = ("unrecoverable", "cannot proceed", "unable to create", "missing architecture")
# Kinds we create per app, in teardown order (dependents before what they depend on).
OWNED_KINDS = (
    (CNPG_API, "ScheduledBackup"),
    (CNPG_API, "Pooler"),
    (CNPG_API, "Cluster"),
    (BARMAN_API, "ObjectStore"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "Secret"),
)


def _cluster_ref(app: App) -> str:
    return f"Cluster {app.namespace}/{app.cluster_name}"


def _write_passfile(path: Path, user: str, password: str) -> None:
    """0600 pgpass: any host and port (the port-forward's local port changes per run), this user only."""

    write_atomic(path, pgpass_line("*", "*", "*", user, password), mode=0o600)


def source_password_hashes(plan: Plan) -> dict[str, str]:
    """Every role's password hash on the source (``SCRAM-SHA-256$…`` or ``md5…``), roles without one left
    out; one query, read with the plan's source conninfo (libpq finds the password as for every session)."""
    from consolidator.pg.connect import connect

    with connect(plan.source.conninfo, dbname="postgres") as conn:
        if not conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0]:
            raise PreconditionError(
                "cannot read the source's password hashes (the role Secrets need them)",
                hint="connect to the source as a superuser: the roles keep their passwords through their hashes",
            )
        rows = conn.execute("SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolpassword IS NOT NULL")
        return {str(name): str(hashed) for name, hashed in rows}


def source_password_hash(plan: Plan, role: str) -> str | None:
    """One role's hash on the source, or None (see :func:`source_password_hashes`)."""
    return source_password_hashes(plan).get(role)


class CnpgProvider(Provider):
    """CloudNativePG clusters on the Kubernetes cluster ``api`` talks to (default: current kubeconfig)."""

    name = "cnpg"
    standby_connects_from_here = False  # the replica Cluster's pods reach the source, not this machine

    def __init__(
        self,
        plan_dir: Path | None = None,
        api: KubeApi | None = None,
        *,
        poll_interval: float = 2.0,
        ready_timeout: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        in_cluster: bool | None = None,
        password_hash: Callable[[Plan, str], str | None] | None = None,
    ) -> None:
        self.plan_dir = plan_dir
        self._api = api
        self.poll_interval = poll_interval
        self.ready_timeout = ready_timeout
        self._sleep, self._clock = sleep, clock
        self.in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) if in_cluster is None else in_cluster
        self._password_hash = password_hash or self._cached_hash  # role → its hash on the source
        self._hashes: dict[str, str] | None = None
        self._forwards: dict[str, tuple[str, PortForward]] = {}  # cluster → (pod, forward)
        self._scratch: Path | None = None

    @property
    def api(self) -> KubeApi:
        """The real API is only built on first use (constructing the provider never connects)."""
        if self._api is None:
            from consolidator.k8s.client import KubernetesApi

            self._api = KubernetesApi()
        return self._api

    def work_dir(self, app: App) -> Path:
        """Where the passfile lives: ``DIR/work/<cluster>/`` (a private temp dir without a plan dir)."""
        if self.plan_dir is not None:
            return self.plan_dir / "work" / app.cluster_name
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="consolidator-cnpg-"))
        return self._scratch / app.cluster_name

    # ----------------------------------------------------------------------------------- preflight

    def checks(self, plan: Plan, apps: Iterable[App]) -> list[Check]:
        """Everything the first apply needs (see :mod:`.cnpg_preflight`); raises listing every fatal problem."""
        return Preflight(self.api, in_cluster=self.in_cluster).run(plan, list(apps))

    def _cached_hash(self, plan: Plan, role: str) -> str | None:
        """The source's hashes are read once per provider, not once per role Secret."""
        if self._hashes is None:
            self._hashes = source_password_hashes(plan)
        return self._hashes.get(role)

    def preflight(self, plan: Plan, apps: list[App]) -> list[str]:
        """:meth:`checks` as the engine reports them (one line each; fatal problems raise)."""
        return [c.message if c.severity == "info" else f"{c.severity}: {c.message}" for c in self.checks(plan, apps)]

    # ----------------------------------------------------------------------------------- switch (k8s/switch.py)

    def _switcher(self) -> Switcher:
        return Switcher(self.api, poll_interval=self.poll_interval, sleep=self._sleep, clock=self._clock)

    def pause_traffic(self, plan: Plan, app: App) -> list[str]:
        return self._switcher().set_paused(app, True)

    def resume_traffic(self, plan: Plan, app: App) -> list[str]:
        return self._switcher().set_paused(app, False)

    def switch_app(self, plan: Plan, app: App, target: TargetHandle) -> list[str]:
        return self._switcher().switch(app)

    def finalize(self, plan: Plan, app: App) -> list[str]:
        """No way back after this: the switch's rollback Secret (the app's previous settings) goes, the
        Cluster's superuser access the migration needed is turned off, and so is our passfile for it."""
        from consolidator.k8s.switch import rollback_secret_name

        done = []
        if self.api.delete("v1", "Secret", rollback_secret_name(app), app.namespace):
            done.append(f"deleted Secret {app.namespace}/{rollback_secret_name(app)} (the switch's rollback record)")
        cluster = self._cluster(app)
        if cluster is not None and (cluster.get("spec") or {}).get("enableSuperuserAccess"):
            self.api.merge_patch(CNPG_API, "Cluster", app.cluster_name, app.namespace,
                                 {"spec": {"enableSuperuserAccess": False}})  # fmt: skip
            done.append(f"turned superuser access off on Cluster {app.namespace}/{app.cluster_name} (set "
                        "strategy.options.superuser_access: false in the plan so the GitOps manifests agree)")
        passfile = self.work_dir(app) / "superuser.pgpass"
        if passfile.exists():
            passfile.unlink()
            done.append(f"removed {passfile}")
        return done + self._remove_copy_job(plan, app)

    def revert_switch(self, plan: Plan, app: App) -> list[str]:
        return self._switcher().revert(app)

    # ----------------------------------------------------------------------------------- provision

    def objects(self, plan: Plan, app: App) -> list[dict[str, Any]]:
        """The app's rendered objects; refuses when ``DIR/manifests/<cluster>/`` no longer matches the plan."""
        objects = render_app(plan, app)
        if self.plan_dir is not None:
            directory = self.plan_dir / "manifests" / app.cluster_name
            for obj in objects:
                path = directory / file_name(obj)
                if path.is_file() and path.read_text(encoding="utf-8") != to_yaml(obj):
                    raise PreconditionError(
                        f"{path} differs from what plan.yaml renders for {app.name}",
                        hint="edit overrides in plan.yaml and run consolidator plan again (it rewrites the "
                        "manifests), or revert the hand edit",
                    )
        return objects

    def _ensure_namespace(self, namespace: str) -> None:
        if self.api.get("v1", "Namespace", namespace) is not None:
            return
        with contextlib.suppress(KubeConflict):
            self.api.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}})  # fmt: skip

    def _fill_secret(self, plan: Plan, obj: dict[str, Any]) -> dict[str, Any]:
        """A Secret template with its password: kept when already set, else found or generated.

        * set out of band (SealedSecret, ExternalSecret, kubectl): left alone — the apply below only
          carries ``username`` and our labels, so the password stays owned by whoever wrote it;
        * the legacy source login (``externalClusters[].password``): the password libpq finds for the
          source DSN (PGPASSWORD, pgpass…), else a refusal saying how to create the Secret;
        * role and initdb-owner passwords: the role's password *hash* from the source (SCRAM or md5),
          which CloudNativePG passes through unchanged — so the operator, which keeps reconciling
          ``managed.roles`` from these Secrets, agrees with the hash the roles step copies and the apps
          keep their passwords; a role without one on the source gets a random password, marked
          ``consolidator.io/generated-password``.
        """
        _, _, namespace, name = identity(obj)
        current = self.api.read_secret(name, namespace) or {}
        if current.get("password"):
            return obj
        annotations = obj["metadata"].get("annotations") or {}
        username = obj.get("stringData", {}).get("username", "")
        if name == plan.source.password_secret:
            from consolidator.engine.local import source_password

            password = source_password(plan.source.conninfo, username)
            if not password:
                raise PreconditionError(
                    f"Secret {namespace}/{name} (the legacy source login {username!r}) has no password and none "
                    "is known for the source",
                    hint=f"create it: kubectl -n {namespace} create secret generic {name} --type="
                    f"kubernetes.io/basic-auth --from-literal=username={username} --from-file=password=FILE, or "
                    "give the source password through PGPASSWORD/pgpass",
                )
        else:
            password = self._password_hash(plan, username)
            if password is None:
                password = secrets.token_urlsafe(24)
                annotations = {**annotations, GENERATED_ANNOTATION: "true"}
        filled = {**obj, "stringData": {**obj.get("stringData", {}), "password": password}}
        annotations = {k: v for k, v in annotations.items() if k != FILL_ANNOTATION}
        filled["metadata"] = {**obj["metadata"], "annotations": annotations}
        return filled

    def provision(self, plan: Plan, app: App) -> TargetHandle:
        objects = self.objects(plan, app)
        for namespace in sorted({identity(o)[2] for o in objects if identity(o)[2]}):
            self._ensure_namespace(namespace)
        secrets_first = sorted(objects, key=lambda o: o["kind"] != "Secret")
        checked = False
        for obj in secrets_first:
            if obj["kind"] != "Secret" and not checked:
                checked = True
                self._check_source_path(plan, app, objects)
            self.api.apply(self._fill_secret(plan, obj) if obj["kind"] == "Secret" else obj)
        return self.wait_ready(plan, app, self.ready_timeout)

    def _check_source_path(self, plan: Plan, app: App, objects: list[dict[str, Any]]) -> None:
        """Before a Cluster that connects to the legacy server exists: can its pods reach it? (Its
        password Secret is applied by then.) Skipped once the Cluster exists, e.g. on resume."""
        from consolidator.k8s.reachability import check_source_reachable

        wants_source = any(o["kind"] == "Cluster" and (o.get("spec") or {}).get("externalClusters") for o in objects)
        if wants_source and self._cluster(app) is None:
            check_source_reachable(self.api, plan, app, sleep=self._sleep, clock=self._clock,
                                   poll=self.poll_interval)  # fmt: skip

    # ----------------------------------------------------------------------------------- status

    def _cluster(self, app: App) -> dict[str, Any] | None:
        return self.api.get(CNPG_API, "Cluster", app.cluster_name, app.namespace)

    def _problem(self, app: App, cluster: dict[str, Any]) -> tuple[str, str] | None:
        """(message, fix) when the operator reports something it will not get past by itself."""
        status = cluster.get("status") or {}
        phase, reason = str(status.get("phase") or ""), str(status.get("phaseReason") or "")
        texts = [phase, reason] + [str(c.get("message") or "") for c in status.get("conditions") or []]
        if any("Expected empty archive" in t for t in texts):
            detail = next(t for t in texts if "Expected empty archive" in t)
            return (f"{_cluster_ref(app)} cannot archive WAL: {detail}",
                    "the backup destination already holds WAL for this serverName: set a new target.backup.attempt "
                    "in plan.yaml (a new serverName), plan again, then teardown and execute --restart; or empty "
                    "that prefix deliberately")  # fmt: skip
        if any(fragment in phase.lower() for fragment in FATAL_PHASE_FRAGMENTS):
            return (f"{_cluster_ref(app)}: {phase}" + (f" ({reason})" if reason else ""),
                    f"kubectl -n {app.namespace} describe cluster {app.cluster_name}; fix the cause, then "
                    "consolidator teardown and execute --restart (a failed bootstrap is not retried)")  # fmt: skip
        return self._failed_job(app)

    def _failed_job(self, app: App) -> tuple[str, str] | None:
        """A bootstrap Job (initdb, import, pgbasebackup) that gave up: the Cluster never gets ready."""
        try:
            jobs = self.api.list("batch/v1", "Job", app.namespace, selector({"cnpg.io/cluster": app.cluster_name}))
        except KubeForbidden:
            return None  # optional insight; preflight does not require it
        for job in jobs:
            conditions = (job.get("status") or {}).get("conditions") or []
            failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None)
            if failed is None:
                continue
            name = job["metadata"]["name"]
            detail = failed.get("message") or failed.get("reason") or "failed"
            return (f"{_cluster_ref(app)}: job {name} failed: {detail}",
                    f"read its log (kubectl -n {app.namespace} logs job/{name}); fix the cause (missing role, "
                    "extension or locale, disk space), then consolidator teardown and execute --restart")  # fmt: skip
        return None

    @staticmethod
    def _state(cluster: dict[str, Any]) -> str:
        status = cluster.get("status") or {}
        want = int((cluster.get("spec") or {}).get("instances", 1))
        parts = [str(status.get("phase") or "no status yet"), f"{status.get('readyInstances', 0)}/{want} ready"]
        if status.get("phaseReason"):
            parts.append(str(status["phaseReason"]))
        parts += [f"{c.get('type')}: {c['message']}" for c in status.get("conditions") or []
                  if c.get("status") == "False" and c.get("message")]  # fmt: skip
        return "; ".join(parts)

    @staticmethod
    def _healthy(cluster: dict[str, Any]) -> bool:
        status = cluster.get("status") or {}
        want = int((cluster.get("spec") or {}).get("instances", 1))
        return status.get("phase") == HEALTHY and int(status.get("readyInstances") or 0) >= want

    def _poll(self, app: App, timeout: float, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = self._clock() + timeout
        while True:
            cluster = self._cluster(app)
            if cluster is None:
                raise PreconditionError(f"{_cluster_ref(app)} does not exist", hint="run consolidator execute first")
            if done(cluster):
                return cluster
            problem = self._problem(app, cluster)
            if problem is not None:
                raise StepFailed(problem[0], hint=problem[1])
            if self._clock() >= deadline:
                raise StepFailed(
                    f"{_cluster_ref(app)} not {what} after {timeout:g}s: {self._state(cluster)}",
                    hint=f"kubectl -n {app.namespace} describe cluster {app.cluster_name} (and the operator's log); "
                    "execute --resume waits again",
                )
            self._sleep(self.poll_interval)

    def wait_ready(self, plan: Plan, app: App, timeout: float = 120) -> TargetHandle:
        cluster = self._poll(app, timeout, self._healthy, "ready")
        return self._handle(plan, app, cluster)

    def describe(self, plan: Plan, app: App) -> TargetHandle | None:
        cluster = self._cluster(app)
        if cluster is None:
            return None
        return self._handle(plan, app, cluster, strict=False)

    def source_access(self, plan: Plan, app: App, *, host: str, port: str, user: str,
                      password: str | None) -> dict[str, str]:  # fmt: skip
        """The legacy server as the cluster's ``externalClusters`` entry names it (``--source-from-cluster``
        when the pods see it elsewhere), and the pgpass file CloudNativePG writes into every instance
        from that entry's password Secret."""
        from consolidator.manifests.render import SOURCE_NAME, source_connection_parameters

        params = source_connection_parameters(plan)
        params.pop("dbname", None)
        return {**params, "passfile": f"/controller/external/{SOURCE_NAME}/pgpass"}

    def diagnose(self, plan: Plan, app: App) -> str:
        cluster = self._cluster(app)
        if cluster is None:
            return "the Cluster does not exist"
        if self._healthy(cluster):
            return ""
        problem = self._problem(app, cluster)
        return problem[0] if problem else self._state(cluster)

    # ----------------------------------------------------------------------------------- connection

    def _handle(self, plan: Plan, app: App, cluster: dict[str, Any], *, strict: bool = True) -> TargetHandle:
        """Superuser conninfo through the passfile; ``strict=False`` tolerates a cluster still bootstrapping."""
        if ((cluster.get("spec") or {}).get("replica") or {}).get("enabled"):
            from consolidator.engine.cnpg_physical import standby_handle  # replica mode: the source's login

            return standby_handle(self, plan, app, cluster, strict=strict)
        name, namespace = app.cluster_name, app.namespace
        service = f"{name}-rw.{namespace}.svc"
        app_host = f"{pooler_name(app)}.{namespace}.svc" if app.sizing.pooler.enabled else service
        handle = TargetHandle(cluster=name, conninfo=make_conninfo(host=service, port="5432", dbname="postgres"),
                              passfile=None, major=plan.target.version,
                              app_conninfo=f"host={app_host} port=5432")  # fmt: skip
        if not (cluster.get("spec") or {}).get("enableSuperuserAccess"):
            if not strict:
                return handle
            raise PreconditionError(
                f"{_cluster_ref(app)} has no superuser access; the {app.strategy.name} strategy needs it",
                hint="set strategy.options.superuser_access: true for the app in plan.yaml and plan again",
            )
        secret = self.api.read_secret(f"{name}-superuser", namespace) or {}
        if not secret.get("password"):
            if not strict:
                return handle
            raise StepFailed(f"Secret {namespace}/{name}-superuser has no password yet",
                             hint="CloudNativePG creates it with enableSuperuserAccess; check the operator's log")
        user = secret.get("username") or "postgres"
        passfile = self.work_dir(app) / "superuser.pgpass"
        _write_passfile(passfile, user, secret["password"])
        host, port = (service, 5432) if self.in_cluster else ("127.0.0.1", self._forward(app, cluster, strict))
        if port is None:
            return handle
        conninfo = make_conninfo(host=host, port=str(port), user=user, dbname="postgres", passfile=str(passfile),
                                 sslmode="require")  # fmt: skip
        return TargetHandle(cluster=name, conninfo=conninfo, passfile=str(passfile), major=plan.target.version,
                            superuser=user, app_conninfo=handle.app_conninfo)  # fmt: skip

    def _forward(self, app: App, cluster: dict[str, Any], strict: bool) -> int | None:
        """A local port relayed to the current primary's 5432, reused while the primary stays the same."""
        pod = str((cluster.get("status") or {}).get("currentPrimary") or "")
        if not pod:
            pods = self.api.list("v1", "Pod", app.namespace,
                                 selector({"cnpg.io/cluster": app.cluster_name, "cnpg.io/instanceRole": "primary"}))
            pod = str(pods[0]["metadata"]["name"]) if pods else ""
        if not pod:
            if not strict:
                return None
            raise StepFailed(f"{_cluster_ref(app)} has no primary pod to forward to",
                             hint=f"kubectl -n {app.namespace} get pods -l cnpg.io/cluster={app.cluster_name}")
        known = self._forwards.get(app.cluster_name)
        if known is not None and known[0] == pod:
            return known[1].local_port
        if known is not None:
            known[1].close()
        forward = self.api.port_forward(app.namespace, pod, 5432)
        self._forwards[app.cluster_name] = (pod, forward)
        return forward.local_port

    def close(self) -> None:
        """Stop every port-forward (the engine calls this when a run ends; harmless to call twice)."""
        for _, forward in self._forwards.values():
            forward.close()
        self._forwards.clear()

    def provision_standby(
        self, plan: Plan, app: App, source_dsn: str, *, progress: Callable[[int, int], None] | None = None
    ) -> TargetHandle:
        """A replica Cluster of the legacy server, after checking the source (see :mod:`.cnpg_physical`)."""
        from consolidator.engine.cnpg_physical import provision_standby

        return provision_standby(self, plan, app, source_dsn, progress=progress)

    # ----------------------------------------------------------------------------------- promote / teardown

    def promote(self, plan: Plan, app: App) -> None:
        """Leave replica mode (irreversible for a non-CNPG source, cnpg.md §3.3) and wait for the new primary.

        CNPG has no "replica mode" status field; promotion is observed as a timeline switch
        (``status.timelineID`` above the one before the patch) in the healthy phase with no
        replica-cluster switch in progress.
        """
        cluster = self._cluster(app)
        if cluster is None:
            raise PreconditionError(f"{_cluster_ref(app)} does not exist", hint="run consolidator execute first")
        before = int((cluster.get("status") or {}).get("timelineID") or 0)
        self.api.merge_patch(CNPG_API, "Cluster", app.cluster_name, app.namespace,
                             {"spec": {"replica": {"enabled": False}}})  # fmt: skip

        def promoted(live: dict[str, Any]) -> bool:
            status = live.get("status") or {}
            switching = bool((status.get("switchReplicaClusterStatus") or {}).get("inProgress"))
            return self._healthy(live) and not switching and int(status.get("timelineID") or 0) > before

        self._poll(app, self.ready_timeout, promoted, "promoted")

    def teardown(self, plan: Plan, app: App) -> bool:
        """Delete what we created for the app, found by our labels; shared objects (no app label) stay.

        PVCs, Services, Pods, Jobs and CNPG's own Secrets belong to the Cluster (owner references) and
        go with it.
        """
        forward = self._forwards.pop(app.cluster_name, None)
        if forward is not None:
            forward[1].close()
        labels = selector({MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: label_value(app.name)})
        removed = bool(self._remove_copy_job(plan, app))
        for api_version, kind in OWNED_KINDS:
            for obj in self.api.list(api_version, kind, app.namespace, labels):
                removed |= self.api.delete(api_version, kind, obj["metadata"]["name"], app.namespace)
        return removed

    def _remove_copy_job(self, plan: Plan, app: App) -> list[str]:
        """What ``execute --in-cluster`` created for the app: its Job, ConfigMaps, ServiceAccount and the
        Roles/RoleBindings (also those in the namespaces its switch hooks name)."""
        from consolidator.k8s.jobs import job_name, journal_configmap_name, plan_configmap_name, render_rbac

        objects = [(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"]["namespace"])
                   for o in render_rbac(plan, app)]  # fmt: skip
        objects += [("batch/v1", "Job", job_name(app), app.namespace),
                    ("v1", "ConfigMap", plan_configmap_name(app), app.namespace),
                    ("v1", "ConfigMap", journal_configmap_name(app), app.namespace)]  # fmt: skip
        return [f"deleted {kind} {namespace}/{name}" for api_version, kind, name, namespace in objects
                if self.api.delete(api_version, kind, name, namespace)]  # fmt: skip
