"""A real S3 endpoint for tests: moto's server mode on a free loopback port, plus plans that use it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from consolidator.plan.model import BackupTarget, Plan
from consolidator.plan.store import load_plan
from consolidator.plan.write import write_plan_dir

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "plans" / "example"
ATTEMPT = "a202611211005"
ADMIN_KEY = ("testing", "testing")  # moto accepts anything while authentication is off


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3's standard chain sees only these keys (no profile, no config files, no endpoint)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN_KEY[1])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def admin(endpoint: str, service: str = "s3", key: tuple[str, str] = ADMIN_KEY) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key[0],
                        aws_secret_access_key=key[1])  # fmt: skip


@pytest.fixture()
def bucket(moto_endpoint: str, aws_env: None) -> str:
    name = f"pg-backups-{uuid.uuid4().hex[:12]}"
    admin(moto_endpoint).create_bucket(Bucket=name)
    return name


def backup_plan(endpoint: str, bucket: str, attempt: str = ATTEMPT) -> Plan:
    """The example plan, made for CloudNativePG with Barman Cloud backups to ``s3://bucket/legacy/``."""
    plan = load_plan(EXAMPLE)
    plan.target.provider = "cnpg"
    plan.target.local_root = None
    plan.target.backup = BackupTarget(destination_path=f"s3://{bucket}/legacy/", endpoint_url=endpoint,
                                      attempt=attempt)  # fmt: skip
    return plan


@pytest.fixture()
def plan_dir(moto_endpoint: str, bucket: str, tmp_path: Path) -> Path:
    out = tmp_path / "plan"
    write_plan_dir(backup_plan(moto_endpoint, bucket), out)
    return out


def keys(endpoint: str, bucket: str) -> list[str]:
    return [o["Key"] for o in admin(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]


@dataclass
class AuthUsers:
    """IAM users of the moto server once it authenticates every request."""

    full: tuple[str, str]
    read_only: tuple[str, str]


def iam_user(endpoint: str, name: str, policy: dict[str, Any]) -> tuple[str, str]:
    iam = admin(endpoint, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def allow(actions: list[str], resources: list[str] | None = None) -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources or ["*"]}]}  # fmt: skip


@pytest.fixture()
def auth_users(moto_endpoint: str, bucket: str) -> Iterator[AuthUsers]:
    """Turn on moto's request authentication (``/moto-api/reset-auth``: every request from now on is
    checked against its IAM users and policies), restored to "no auth" afterwards."""
    suffix = uuid.uuid4().hex[:8]
    users = AuthUsers(
        full=iam_user(moto_endpoint, f"full-{suffix}", allow(["s3:*"])),
        read_only=iam_user(moto_endpoint, f"ro-{suffix}", allow(["s3:ListBucket", "s3:GetObject"])),
    )
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield users
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()
