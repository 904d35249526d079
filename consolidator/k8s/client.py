"""``KubernetesApi``: the :class:`~consolidator.k8s.api.KubeApi` over the official ``kubernetes`` client.

Why the dynamic client: CloudNativePG and Barman Cloud kinds have no generated Python classes, and
server-side apply (``application/apply-patch+yaml``) is what CNPG recommends for its large CRDs
(cnpg.md §5). Typed APIs are used only where they are simpler (version, Secrets, access reviews,
quotas, storage classes, port-forward). Every API error is translated once, in :func:`_translate`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from consolidator.errors import ConsolidatorError, StepFailed
from consolidator.k8s.api import (
    CRD_API,
    FIELD_MANAGER,
    KubeConflict,
    KubeForbidden,
    KubeUnreachable,
    PortForward,
    Resource,
    resource_for,
)
from consolidator.k8s.portforward import TcpRelay

T = TypeVar("T")
_NOT_FOUND = object()


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    try:
        return str(json.loads(body).get("message") or "") if body else ""
    except (ValueError, AttributeError, TypeError):
        return str(body)[:200] if body else ""


def _translate(exc: BaseException, verb: str, resource: str, namespace: str | None) -> ConsolidatorError:
    """API errors → our exception tree (401/unreachable → exit 5, 403 → exit 4 naming verb+resource)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        status, detail = int(exc.status or 0), _message(exc)
        if status == 401:
            return KubeUnreachable("the Kubernetes API rejected our credentials (401 Unauthorized)",
                                   hint="refresh the kubeconfig context's token or certificate (kubectl get ns)")
        if status == 403:
            return KubeForbidden(verb, resource, namespace, detail)
        if status == 409:
            return KubeConflict(f"{resource} in {namespace or 'the cluster'}: {detail or 'already exists'}",
                                hint="it was created concurrently; run again")  # fmt: skip
        if status in (0, 502, 503, 504):
            return KubeUnreachable(f"the Kubernetes API did not answer {verb} {resource} ({status} {detail})".strip(),
                                   hint="check the API server and network, then run again")  # fmt: skip
        return StepFailed(f"Kubernetes {verb} {resource} failed: {status} {detail or exc.reason}",
                          hint="the message above is the API server's; fix the object or the cluster")  # fmt: skip
    if isinstance(exc, HTTPError | OSError | TimeoutError):
        return KubeUnreachable(f"cannot reach the Kubernetes API ({type(exc).__name__}: {exc})",
                               hint="check KUBECONFIG / the current context and that the API server answers")
    raise exc


class KubernetesApi:
    """The real cluster, through the current kubeconfig context or the in-cluster service account."""

    def __init__(self, context: str | None = None, *, config_file: str | None = None,
                 request_timeout: float = 30.0) -> None:  # fmt: skip
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None and config_file is None:
                config.load_incluster_config()
            else:  # the kubernetes package reads KUBECONFIG at import time: pass it again explicitly
                config.load_kube_config(config_file=config_file or os.environ.get("KUBECONFIG") or None,
                                        context=context)  # fmt: skip
        except (ConfigException, OSError) as exc:
            raise KubeUnreachable(f"no usable Kubernetes configuration: {exc}",
                                  hint="set KUBECONFIG or select a context (kubectl config use-context …)") from None
        self._client = client.ApiClient(client.Configuration.get_default_copy())
        self._timeout = request_timeout
        self._dynamic: Any = None

    # -- plumbing

    def _call(self, verb: str, resource: str, namespace: str | None, fn: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as exc:
            if exc.status == 404:
                return _NOT_FOUND  # type: ignore[return-value]
            raise _translate(exc, verb, resource, namespace) from None
        except ConsolidatorError:
            raise
        except Exception as exc:
            raise _translate(exc, verb, resource, namespace) from None

    def _dyn(self) -> Any:
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            self._dynamic = self._call("discover", "API resources", None, lambda: DynamicClient(self._client))
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any | None:
        """The discovered resource, or None when the kind is not served (its CRD is missing)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dyn().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None

    def _plain(self, value: Any) -> Any:
        if value is None or value is _NOT_FOUND:
            return None
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return self._client.sanitize_for_serialization(value)

    # -- KubeApi

    def server_version(self) -> str:
        from kubernetes import client

        info = self._call("get", "version", None, lambda: client.VersionApi(self._client).get_code())
        return str(getattr(info, "git_version", "") or "")

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        res = self._resource(api_version, kind)
        if res is None:
            return None
        found = self._call("get", resource_for(api_version, kind).qualified, namespace,
                           lambda: res.get(name=name, namespace=namespace, _request_timeout=self._timeout))  # fmt: skip
        return self._plain(found)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        res = self._resource(api_version, kind)
        if res is None:
            return []
        found = self._call("list", resource_for(api_version, kind).qualified, namespace,
                           lambda: res.get(namespace=namespace, label_selector=label_selector,
                                           _request_timeout=self._timeout))  # fmt: skip
        plain = self._plain(found) or {}
        return list(plain.get("items") or [])

    def _served(self, obj: dict[str, Any]) -> Any:
        res = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        if res is None:
            from consolidator.errors import PreconditionError

            raise PreconditionError(f"the cluster does not serve {obj.get('apiVersion')} {obj.get('kind')}",
                                    hint="install the operator or plugin that defines it (its CRD)")  # fmt: skip
        return res

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = self._served(obj)
        meta = obj.get("metadata") or {}
        qualified = resource_for(str(obj["apiVersion"]), str(obj["kind"])).qualified
        applied = self._call("patch", qualified, meta.get("namespace"),
                             lambda: res.server_side_apply(body=obj, name=meta.get("name"),
                                                           namespace=meta.get("namespace"),
                                                           field_manager=FIELD_MANAGER, force_conflicts=True,
                                                           _request_timeout=self._timeout))  # fmt: skip
        return self._plain(applied) or {}

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        res = self._served({"apiVersion": api_version, "kind": kind})
        patched = self._call("patch", resource_for(api_version, kind).qualified, namespace,
                             lambda: res.patch(body=patch, name=name, namespace=namespace,
                                               content_type="application/merge-patch+json",
                                               field_manager=FIELD_MANAGER, _request_timeout=self._timeout))
        if patched is _NOT_FOUND:
            raise StepFailed(f"{kind} {namespace}/{name} vanished before it could be patched", hint="run again")
        return self._plain(patched) or {}

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = self._served(obj)
        meta = obj.get("metadata") or {}
        created = self._call("create", resource_for(str(obj["apiVersion"]), str(obj["kind"])).qualified,
                             meta.get("namespace"),
                             lambda: res.create(body=obj, namespace=meta.get("namespace"),
                                                field_manager=FIELD_MANAGER, _request_timeout=self._timeout))
        return self._plain(created) or {}

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        res = self._resource(api_version, kind)
        if res is None:
            return False
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        done = self._call("delete", resource_for(api_version, kind).qualified, namespace,
                          lambda: res.delete(name=name, namespace=namespace, body=body,
                                             _request_timeout=self._timeout))  # fmt: skip
        return done is not _NOT_FOUND

    def get_crd(self, name: str) -> dict[str, Any] | None:
        return self.get(CRD_API, "CustomResourceDefinition", name)

    def read_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        from kubernetes import client

        secret = self._call("get", "secrets", namespace,
                            lambda: client.CoreV1Api(self._client).read_namespaced_secret(
                                name, namespace, _request_timeout=self._timeout))  # fmt: skip
        if secret is _NOT_FOUND or secret is None:
            return None
        return {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.data or {}).items()}

    def can_i(self, verb: str, resource: Resource, namespace: str | None, subresource: str = "") -> bool:
        from kubernetes import client

        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=resource.group, resource=resource.plural, subresource=subresource or None,
                namespace=namespace if resource.namespaced else None)))  # fmt: skip
        answer = self._call("create", "selfsubjectaccessreviews.authorization.k8s.io", None,
                            lambda: client.AuthorizationV1Api(self._client).create_self_subject_access_review(
                                review, _request_timeout=self._timeout))  # fmt: skip
        return bool(answer and answer.status and answer.status.allowed)

    def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("v1", "ResourceQuota", namespace)

    def storage_classes(self) -> list[dict[str, Any]]:
        return self.list("storage.k8s.io/v1", "StorageClass")

    def port_forward(self, namespace: str, pod: str, port: int) -> PortForward:
        from kubernetes import client
        from kubernetes.stream import portforward

        core = client.CoreV1Api(self._client)

        def opener() -> tuple[Any, Callable[[], None]]:
            forward = self._call("create", "pods/portforward", namespace,
                                 lambda: portforward(core.connect_get_namespaced_pod_portforward, pod, namespace,
                                                     ports=str(port)))  # fmt: skip
            return forward.socket(port), forward.close

        return TcpRelay(opener, name=f"port-forward {namespace}/{pod}:{port}")
