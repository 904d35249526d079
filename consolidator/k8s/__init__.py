"""Kubernetes access for the ``cnpg`` provider: a narrow interface, the real client, port-forwarding.

The engine only ever sees :class:`consolidator.k8s.api.KubeApi`; tests drive it with an in-memory
fake, production with :class:`consolidator.k8s.client.KubernetesApi` (imported lazily: the
``kubernetes`` package is slow to import and not needed by the local provider).
"""
