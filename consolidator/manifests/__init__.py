"""CloudNativePG 1.30 manifests for GitOps: one directory of plain Kubernetes objects per app.

``render`` turns a plan into objects and files (Cluster, Pooler, ObjectStore, ScheduledBackup,
password-less Secret templates, optional PodMonitor/NetworkPolicy/PriorityClass); ``admission``
re-checks the rules the CNPG webhook and CEL enforce, which JSON-schema validation cannot see.
"""
