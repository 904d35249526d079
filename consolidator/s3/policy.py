"""Per-cluster bucket policies: each cluster's backup user may touch only its own archive prefix.

One shared backup key for every cluster would let a compromised or misconfigured cluster overwrite
another's WAL archive. The policy is IAM-style JSON as Ceph RGW, MinIO and AWS S3 accept it; the
principal is a placeholder user per cluster (RGW form ``arn:aws:iam:::user/<cluster>-backup``) to
adapt to the store's user naming (an AWS account id, or drop ``Principal`` for a MinIO user policy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consolidator.fsutil import write_atomic
from consolidator.plan.model import App, Plan
from consolidator.s3.location import archive_location

POLICY_DIR = "backup-policies"
OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                  "s3:ListMultipartUploadParts"]  # fmt: skip


def backup_user(app: App) -> str:
    """The suggested per-cluster backup user (store the keys in the cluster's credentials Secret)."""
    return f"{app.cluster_name}-backup"


def bucket_policy(plan: Plan, app: App, principal: str | None = None) -> dict[str, Any]:
    """Objects under ``<prefix>/<serverName>/`` plus listing restricted to that prefix."""
    loc = archive_location(plan, app)
    principal = principal or f"arn:aws:iam:::user/{backup_user(app)}"
    who = {"AWS": [principal]}
    bucket_arn = f"arn:aws:s3:::{loc.bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListOwnArchive", "Effect": "Allow", "Principal": who, "Action": ["s3:ListBucket"],
             "Resource": [bucket_arn], "Condition": {"StringLike": {"s3:prefix": [f"{loc.key_prefix}*"]}}},
            {"Sid": "LocateBucket", "Effect": "Allow", "Principal": who, "Action": ["s3:GetBucketLocation"],
             "Resource": [bucket_arn]},
            {"Sid": "ReadWriteOwnArchive", "Effect": "Allow", "Principal": who, "Action": OBJECT_ACTIONS,
             "Resource": [f"{bucket_arn}/{loc.key_prefix}*"]},
        ],
    }  # fmt: skip


def policy_json(plan: Plan, app: App) -> str:
    return json.dumps(bucket_policy(plan, app), indent=2) + "\n"


def write_policies(plan: Plan, out_dir: Path) -> list[Path]:
    """``DIR/backup-policies/<cluster>.json`` per app; stale ones from an earlier plan are removed."""
    root = Path(out_dir) / POLICY_DIR
    written: list[Path] = []
    if plan.target.backup is not None:
        for app in plan.apps:
            path = root / f"{app.cluster_name}.json"
            write_atomic(path, policy_json(plan, app))
            written.append(path)
    if root.is_dir():
        keep = {p.name for p in written}
        for path in root.glob("*.json"):
            if path.name not in keep:
                path.unlink()
        if not any(root.iterdir()):
            root.rmdir()
    return written
