"""Preflight of a Kubernetes target: everything the first apply of a plan would trip over, found first.

API reachable, CloudNativePG CRDs and operator version (≥ 1.25 for the fields and kinds the manifests
use, ≥ 1.26 and the Barman Cloud plugin CRD when backups are planned), namespaces, storage class,
RBAC (one SelfSubjectAccessReview per verb and resource) and ResourceQuotas against the proposed
sizes. Every problem is collected, then raised at once (exit 4), so one run lists them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consolidator.errors import PreconditionError
from consolidator.k8s.api import RESOURCES, KubeApi, KubeForbidden, Resource
from consolidator.manifests.admission import BARMAN_API, CNPG_API
from consolidator.manifests.render import render_app
from consolidator.plan.model import App, Plan
from consolidator.sizing.quantity import parse_cpu, parse_memory

CLUSTER_CRD = "clusters.postgresql.cnpg.io"
POOLER_CRD = "poolers.postgresql.cnpg.io"
SCHEDULED_BACKUP_CRD = "scheduledbackups.postgresql.cnpg.io"
PLUGIN_CRD = "objectstores.barmancloud.cnpg.io"
POD_MONITOR_CRD = "podmonitors.monitoring.coreos.com"
MIN_OPERATOR = (1, 25)  # plugins[], pgDump/RestoreExtraOptions, Publication/Subscription kinds
MIN_PLUGIN_OPERATOR = (1, 26)  # Barman Cloud plugin 0.14
BASELINE_OPERATOR = (1, 30)  # what the manifests are validated against
INSTALL_HINT = ("install CloudNativePG 1.30: kubectl apply --server-side -f https://raw.githubusercontent.com/"
                "cloudnative-pg/cloudnative-pg/release-1.30/releases/cnpg-1.30.0.yaml (or the cnpg/cloudnative-pg "
                "Helm chart)")  # fmt: skip
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass
class Check:
    """One preflight finding: ``error`` is fatal, ``warning`` and ``info`` are reported only."""

    severity: str
    message: str
    hint: str = ""

    @property
    def fatal(self) -> bool:
        return self.severity == "error"


class PreflightFailed(PreconditionError):
    """The Kubernetes target cannot take the plan; ``checks`` holds every finding."""

    def __init__(self, checks: list[Check]) -> None:
        errors = [c for c in checks if c.fatal]
        super().__init__(
            f"the Kubernetes target is not ready ({len(errors)} problem{'s' if len(errors) > 1 else ''}): "
            + "; ".join(c.message for c in errors),
            hint="; ".join(dict.fromkeys(c.hint for c in errors if c.hint)),
        )
        self.checks = checks


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0`` / ``v1.34.1`` → (1, 30, 0)."""
    match = _VERSION.search(text.rsplit(":", 1)[-1] if ":" in text else text)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


class Preflight:
    """The checks, against one API; ``in_cluster``: the tool runs in a pod (no port-forward needed)."""

    def __init__(self, api: KubeApi, *, in_cluster: bool) -> None:
        self.api = api
        self.in_cluster = in_cluster


    def run(self, plan: Plan, apps: list[App]) -> list[Check]:
        """Every check; raises :class:`PreflightFailed` listing every fatal problem.

        An unreachable API or rejected credentials raise at once (ConnectionFailure, exit 5).
        """
        checks: list[Check] = []
        version = self.api.server_version()
        checks.append(Check("info", f"Kubernetes API {version}"))
        kube = parse_version(version)
        if kube and not (1, 34) <= kube[:2] <= (1, 36):
            checks.append(Check("warning", f"Kubernetes {version} is outside CloudNativePG 1.30's support (1.34–1.36)"))
        for probe in (self._check_operator, self._check_namespaces, self._check_storage_class, self._check_rbac,
                      self._check_quotas, self._check_switch, self._check_backup_store):  # fmt: skip
            try:
                checks += probe(plan, apps)
            except KubeForbidden as exc:
                checks.append(Check("error", exc.message, exc.hint or ""))
        if any(c.fatal for c in checks):
            raise PreflightFailed(checks)
        return checks

    def _check_backup_store(self, plan: Plan, apps: list[App]) -> list[Check]:
        """``s3 check`` before any backup manifest is applied: bucket, write/delete rights and an empty
        WAL archive prefix per cluster ("Expected empty archive" otherwise), with the credentials the
        clusters will use — the plan's Secret when it already exists, else this machine's."""
        backup = plan.target.backup
        if backup is None:
            return []
        from consolidator.errors import ConsolidatorError
        from consolidator.s3.check import check_plan
        from consolidator.s3.client import endpoint_url, s3_client

        keys = None
        for namespace in sorted({a.namespace for a in apps}):
            found = self.api.read_secret(backup.credentials_secret, namespace) or {}
            if found.get("ACCESS_KEY_ID") and found.get("ACCESS_SECRET_KEY"):
                keys = (found["ACCESS_KEY_ID"], found["ACCESS_SECRET_KEY"])
                break
        whose = f"Secret {backup.credentials_secret}" if keys else "this machine's credentials"
        try:
            report = check_plan(plan, apps, client=s3_client(endpoint_url(backup.endpoint_url), keys))
        except ConsolidatorError as exc:
            return [Check("error", f"S3 backup store ({whose}): {exc.message}", exc.hint or "")]
        failed = [Check("error", f"S3 backup store, app {r.app} ({whose}): {r.message}", r.fix)
                  for r in report.results if not r.ok]  # fmt: skip
        return failed or [Check("info", f"S3 backup store {backup.destination_path} ready ({whose})")]

    def _check_operator(self, plan: Plan, apps: list[App]) -> list[Check]:
        if self.api.get_crd(CLUSTER_CRD) is None:
            return [Check("error", f"CloudNativePG operator not installed (CRD {CLUSTER_CRD} missing)", INSTALL_HINT)]
        out: list[Check] = []
        needed = [POOLER_CRD] if any(a.sizing.pooler.enabled for a in apps) else []
        if plan.target.backup is not None:
            needed.append(SCHEDULED_BACKUP_CRD)
        missing = [name for name in needed if self.api.get_crd(name) is None]
        if missing:
            out.append(Check("error", f"CloudNativePG CRDs missing: {', '.join(missing)}",
                             "reinstall or upgrade the operator: " + INSTALL_HINT))  # fmt: skip
        version = self._operator_version(plan)
        backups = plan.target.backup is not None
        if version is None:
            out.append(Check("warning", "CloudNativePG operator version unknown (no operator Deployment found in "
                             f"{plan.target.operator_namespace})",
                             "set the plan's target.operator_namespace to where the operator runs"))  # fmt: skip
        elif version[:2] < MIN_OPERATOR:
            out.append(Check("error", f"CloudNativePG {_dotted(version)} is too old: the manifests need "
                             f"≥ {_dotted(MIN_OPERATOR)} (plugins, Publication/Subscription, pg_dump options)",
                             "upgrade the operator: " + INSTALL_HINT))  # fmt: skip
        elif backups and version[:2] < MIN_PLUGIN_OPERATOR:
            out.append(Check("error", f"CloudNativePG {_dotted(version)} cannot run the Barman Cloud plugin "
                             f"(needs ≥ {_dotted(MIN_PLUGIN_OPERATOR)})",
                             "upgrade the operator, or plan again without --backup-s3"))  # fmt: skip
        elif version[:2] < BASELINE_OPERATOR:
            out.append(Check("warning", f"CloudNativePG {_dotted(version)}: the manifests are validated against "
                             f"{_dotted(BASELINE_OPERATOR)}", "upgrade the operator when convenient"))  # fmt: skip
        else:
            out.append(Check("info", f"CloudNativePG {_dotted(version)}"))
        if backups and self.api.get_crd(PLUGIN_CRD) is None:
            out.append(Check("error", f"Barman Cloud plugin not installed (CRD {PLUGIN_CRD} missing) but backups "
                             "are planned", "install plugin-barman-cloud 0.14 (needs cert-manager) in the "
                             "operator's namespace, or plan again without --backup-s3"))  # fmt: skip
        if plan.target.pod_monitor and self.api.get_crd(POD_MONITOR_CRD) is None:
            out.append(Check("error", f"PodMonitor kind not served (CRD {POD_MONITOR_CRD} missing)",
                             "install the Prometheus operator CRDs, or plan again without PodMonitors"))  # fmt: skip
        return out

    def _operator_version(self, plan: Plan) -> tuple[int, int, int] | None:
        """From the operator Deployment's image tag; else the CRD's ``app.kubernetes.io/version`` label."""
        for deployment in self.api.list("apps/v1", "Deployment", plan.target.operator_namespace):
            for container in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
                image = str(container.get("image") or "")
                if "cloudnative-pg" in image.rsplit("/", 1)[-1] and "plugin" not in image:
                    found = parse_version(image)
                    if found:
                        return found
        crd = self.api.get_crd(CLUSTER_CRD) or {}
        label = ((crd.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version")
        return parse_version(str(label)) if label else None

    def _check_namespaces(self, plan: Plan, apps: list[App]) -> list[Check]:
        out: list[Check] = []
        for namespace in sorted({a.namespace for a in apps}):
            if self.api.get("v1", "Namespace", namespace) is not None:
                continue
            if self.api.can_i("create", RESOURCES[("v1", "Namespace")], None):
                out.append(Check("info", f"namespace {namespace} will be created"))
            else:
                out.append(Check("error", f"namespace {namespace} does not exist and we may not create namespaces",
                                 f"create it (kubectl create namespace {namespace}) or grant create on namespaces"))
        return out

    def _check_storage_class(self, plan: Plan, apps: list[App]) -> list[Check]:
        wanted = plan.target.storage_class
        if not wanted:
            return []
        names = sorted(str(sc["metadata"]["name"]) for sc in self.api.storage_classes())
        if wanted in names:
            return []
        return [Check("error", f"storage class {wanted} does not exist",
                      f"available: {', '.join(names) or 'none'}; plan again with one of them")]  # fmt: skip

    def _permissions(self, plan: Plan, apps: list[App]) -> list[tuple[Resource, str, str, tuple[str, ...]]]:
        """(resource, subresource, namespace, verbs) the provider uses."""
        cnpg = {kind: RESOURCES[(CNPG_API, kind)] for kind in ("Cluster", "Pooler", "ScheduledBackup")}
        crud = ("create", "patch", "get", "list", "delete")
        out: list[tuple[Resource, str, str, tuple[str, ...]]] = []
        for namespace in sorted({a.namespace for a in apps}):
            out += [(cnpg["Cluster"], "", namespace, crud), (RESOURCES[("v1", "Secret")], "", namespace, crud),
                    (RESOURCES[("v1", "ConfigMap")], "", namespace, ("create", "patch", "get", "delete"))]  # fmt: skip
            if any(a.sizing.pooler.enabled for a in apps if a.namespace == namespace):
                out.append((cnpg["Pooler"], "", namespace, crud))
            if plan.target.backup is not None:
                out += [(cnpg["ScheduledBackup"], "", namespace, crud),
                        (RESOURCES[(BARMAN_API, "ObjectStore")], "", namespace, crud)]  # fmt: skip
            if any(a.strategy.name in ("logical", "physical", "import") for a in apps if a.namespace == namespace):
                # the in-cluster check that the pods reach the legacy server (k8s/reachability.py)
                out.append((RESOURCES[("v1", "Pod")], "", namespace, ("create", "get", "delete")))
            if not self.in_cluster:
                out += [(RESOURCES[("v1", "Pod")], "", namespace, ("get", "list")),
                        (RESOURCES[("v1", "Pod")], "portforward", namespace, ("create",))]  # fmt: skip
        out.append((RESOURCES[("apps/v1", "Deployment")], "", plan.target.operator_namespace, ("list",)))
        from consolidator.k8s.switch import switch_permissions

        merged: dict[tuple[Resource, str, str], tuple[str, ...]] = {}
        for resource, sub, namespace, verbs in out + switch_permissions(apps):  # the cutover's hooks
            known = merged.get((resource, sub, namespace), ())
            merged[(resource, sub, namespace)] = known + tuple(v for v in verbs if v not in known)
        return [(resource, sub, namespace, verbs) for (resource, sub, namespace), verbs in merged.items()]

    def _check_rbac(self, plan: Plan, apps: list[App]) -> list[Check]:
        out: list[Check] = []
        for resource, sub, namespace, verbs in self._permissions(plan, apps):
            denied = [verb for verb in verbs if not self.api.can_i(verb, resource, namespace, sub)]
            if not denied:
                continue
            name = f"{resource.qualified}/{sub}" if sub else resource.qualified
            optional = resource.plural == "deployments" and verbs == ("list",)  # only reads the operator version
            out.append(Check(
                "warning" if optional else "error",
                f"missing permission: cannot {', '.join(denied)} {name} in namespace {namespace}",
                f"grant it with a Role/RoleBinding (check: kubectl auth can-i {denied[0]} {name} -n {namespace})",
            ))  # fmt: skip
        return out

    def _check_switch(self, plan: Plan, apps: list[App]) -> list[Check]:
        """The cutover's Kubernetes hooks: placeholders the app can fill, named objects that exist."""
        from consolidator.k8s.switch import switch_problems

        return [Check(severity, message, hint) for severity, message, hint in switch_problems(self.api, apps)]

    def _demand(self, plan: Plan, apps: list[App]) -> dict[str, float]:
        """What the apps' new Clusters (and Poolers) ask for: cores, bytes, PVCs, pods."""
        total = {"cpu": 0.0, "memory": 0.0, "storage": 0.0, "pvcs": 0.0, "pods": 0.0}
        for app in apps:
            for obj in render_app(plan, app):
                spec = obj.get("spec") or {}
                if obj["kind"] == "Cluster":
                    instances = int(spec.get("instances", 1))
                    requests = spec["resources"]["requests"]
                    volumes = [v for v in (spec.get("storage"), spec.get("walStorage")) if v]
                    total["cpu"] += instances * parse_cpu(requests["cpu"])
                    total["memory"] += instances * parse_memory(requests["memory"])
                    total["storage"] += instances * sum(parse_memory(v["size"]) for v in volumes)
                    total["pvcs"] += instances * len(volumes)
                    total["pods"] += instances
                elif obj["kind"] == "Pooler":
                    instances = int(spec.get("instances", 1))
                    for container in spec["template"]["spec"]["containers"]:
                        requests = (container.get("resources") or {}).get("requests") or {}
                        total["cpu"] += instances * parse_cpu(requests.get("cpu", 0))
                        total["memory"] += instances * parse_memory(requests.get("memory", 0))
                    total["pods"] += instances
        return total

    def _check_quotas(self, plan: Plan, apps: list[App]) -> list[Check]:
        out: list[Check] = []
        storage_class = plan.target.storage_class
        for namespace in sorted({a.namespace for a in apps}):
            quotas = self.api.resource_quotas(namespace)
            if not quotas:
                continue
            # Clusters that already exist are counted in the quota's ``used`` already.
            new = [a for a in apps if a.namespace == namespace
                   and self.api.get(CNPG_API, "Cluster", a.cluster_name, namespace) is None]  # fmt: skip
            demand = self._demand(plan, new)
            keys = {"requests.cpu": "cpu", "cpu": "cpu", "limits.cpu": "cpu", "requests.memory": "memory",
                    "memory": "memory", "limits.memory": "memory", "requests.storage": "storage",
                    "persistentvolumeclaims": "pvcs", "pods": "pods"}  # fmt: skip
            if storage_class:
                keys[f"{storage_class}.storageclass.storage.k8s.io/requests.storage"] = "storage"
            for quota in quotas:
                status = quota.get("status") or {}
                hard = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}
                used = status.get("used") or {}
                for key, what in keys.items():
                    if key not in hard:
                        continue
                    parse = parse_cpu if what == "cpu" else parse_memory
                    left = parse(hard[key]) - parse(used.get(key, 0))
                    if demand[what] > left:
                        out.append(Check(
                            "error",
                            f"ResourceQuota {namespace}/{quota['metadata']['name']}: {key} needs "
                            f"{_amount(what, demand[what])}, only {_amount(what, left)} left "
                            f"(hard {hard[key]}, used {used.get(key, 0)})",
                            "raise the quota, or lower the apps' instances/cpu/memory/storage overrides in the "
                            "plan and plan again",
                        ))  # fmt: skip
        return out


def _amount(what: str, value: float) -> str:
    if what == "cpu":
        return f"{value:g} cores"
    if what in ("memory", "storage"):
        return f"{value / 2**30:.2f}Gi"
    return f"{value:g}"
