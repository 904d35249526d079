"""The cnpg preflight runs the S3 checks before any backup manifest is applied, with the credentials the
clusters will use (the plan's Secret) — against moto's server mode."""

from __future__ import annotations

import base64

import pytest

from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.cnpg_preflight import PreflightFailed
from consolidator.manifests.render import server_name
from tests import s3_fixtures
from tests.kube_fake import FakeKube, fake_password_hash
from tests.s3_fixtures import ADMIN_KEY, admin, backup_plan

moto_endpoint = s3_fixtures.moto_endpoint
aws_env = s3_fixtures.aws_env
bucket = s3_fixtures.bucket


def kube_for(namespaces: set[str], credentials: tuple[str, str] | None) -> FakeKube:
    kube = FakeKube()
    kube.install_cnpg("1.30.0")
    for ns in namespaces:
        kube.add_namespace(ns)
        if credentials:
            kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-s3-credentials",
                      "namespace": ns}, "data": {"ACCESS_KEY_ID": base64.b64encode(credentials[0].encode()).decode(),
                      "ACCESS_SECRET_KEY": base64.b64encode(credentials[1].encode()).decode()}})  # fmt: skip
    return kube


def test_ready_store_is_reported_with_whose_credentials(moto_endpoint: str, bucket: str) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    kube = kube_for({a.namespace for a in plan.apps}, ADMIN_KEY)
    checks = CnpgProvider(None, kube, in_cluster=True, password_hash=fake_password_hash).checks(plan, plan.apps)
    assert any(c.severity == "info" and "S3 backup store" in c.message and "Secret backup-s3-credentials" in c.message
               for c in checks), [c.message for c in checks]  # fmt: skip


def test_non_empty_archive_prefix_stops_the_preflight(moto_endpoint: str, bucket: str) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    app = plan.apps[0]
    admin(moto_endpoint).put_object(Bucket=bucket, Key=f"legacy/{server_name(plan, app)}/wals/0000000100000000/x",
                                    Body=b"wal")  # fmt: skip
    kube = kube_for({a.namespace for a in plan.apps}, None)  # no Secret yet: this machine's credentials
    with pytest.raises(PreflightFailed) as err:
        CnpgProvider(None, kube, in_cluster=True, password_hash=fake_password_hash).checks(plan, plan.apps)
    assert "Expected empty archive" in err.value.message and app.name in err.value.message
    assert "this machine's credentials" in err.value.message
    assert "attempt" in (err.value.hint or "")


def test_missing_bucket_is_a_preflight_error(moto_endpoint: str, bucket: str) -> None:
    plan = backup_plan(moto_endpoint, f"{bucket}-missing")
    kube = kube_for({a.namespace for a in plan.apps}, None)
    with pytest.raises(PreflightFailed, match="S3 backup store"):
        CnpgProvider(None, kube, in_cluster=True, password_hash=fake_password_hash).checks(plan, plan.apps)
