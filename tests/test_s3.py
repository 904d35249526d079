"""The S3 backup destination against a real S3 endpoint (moto's server on loopback) and real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.errors import ConnectionFailure, PreconditionError, StepFailed
from consolidator.manifests.render import server_name
from consolidator.pg.binaries import find
from consolidator.pg.connect import connect
from consolidator.pg.instance import free_port
from consolidator.plan.write import write_plan_dir
from consolidator.s3 import safety
from consolidator.s3.check import check_plan, propose_attempt
from consolidator.s3.location import S3Location, archive_location, parse_s3_url
from consolidator.s3.policy import POLICY_DIR, bucket_policy
from tests import s3_fixtures
from tests.harness import Server
from tests.s3_fixtures import ATTEMPT, admin, backup_plan, iam_user, keys

# fixtures from tests/s3_fixtures.py
auth_users = s3_fixtures.auth_users
aws_env = s3_fixtures.aws_env
bucket = s3_fixtures.bucket
moto_endpoint = s3_fixtures.moto_endpoint

CHECKS = ["bucket", "wal-archive-empty", "write-delete"]


def test_location_is_destination_path_plus_server_name(moto_endpoint: str) -> None:
    plan = backup_plan(moto_endpoint, "pg-backups")
    loc = archive_location(plan, plan.app("keycloak"))
    assert loc == S3Location("pg-backups", f"legacy/keycloak-{ATTEMPT}")
    assert loc.url == f"s3://pg-backups/legacy/keycloak-{ATTEMPT}/"
    assert parse_s3_url("s3://b").url == "s3://b/"
    with pytest.raises(Exception, match="s3://bucket/prefix"):
        parse_s3_url("https://b/x")


def test_all_checks_pass_and_probe_is_gone(moto_endpoint: str, bucket: str) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    report = check_plan(plan)
    assert report.ok and report.error() is None, report.results
    by_app: dict[str, list[str]] = {}
    for r in report.results:
        by_app.setdefault(r.app, []).append(r.name)
    assert by_app == {a.name: CHECKS for a in plan.apps}
    assert f"s3://{bucket}" in report.results[0].message
    assert keys(moto_endpoint, bucket) == []  # every probe deleted


def test_non_empty_wal_prefix_is_refused_with_a_fresh_server_name(moto_endpoint: str, bucket: str) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    stale = f"legacy/keycloak-{ATTEMPT}/wals/0000000100000000/000000010000000000000001.gz"
    admin(moto_endpoint).put_object(Bucket=bucket, Key=stale, Body=b"wal")
    now = dt.datetime(2027, 1, 2, 3, 4, tzinfo=dt.UTC)
    report = check_plan(plan, now=now)
    failed = [r for r in report.results if not r.ok]
    assert [(r.app, r.name) for r in failed] == [("keycloak", "wal-archive-empty")]
    assert stale in failed[0].message and "Expected empty archive" in failed[0].message
    assert "a202701020304" in failed[0].fix and "keycloak-a202701020304" in failed[0].fix
    error = report.error()
    assert isinstance(error, PreconditionError) and error.exit_code == 4
    assert error.message.startswith("keycloak: ") and f"s3://{bucket}/legacy/keycloak-{ATTEMPT}/" in error.message
    # write+delete still ran and left only the stale object
    assert keys(moto_endpoint, bucket) == [stale]
    # the proposed fix works: a new attempt is a new, empty prefix
    attempt, fresh = propose_attempt(plan, plan.app("keycloak"), now)
    assert plan.target.backup is not None
    plan.target.backup.attempt = attempt
    assert server_name(plan, plan.app("keycloak")) == fresh
    assert check_plan(plan).ok


def test_propose_attempt_never_repeats_the_current_one(moto_endpoint: str) -> None:
    now = dt.datetime(2026, 11, 21, 10, 5, 30, tzinfo=dt.UTC)
    plan = backup_plan(moto_endpoint, "pg-backups", attempt="a202611211005")
    assert propose_attempt(plan, plan.app("nextcloud"), now) == ("a20261121100530", "nextcloud-a20261121100530")


def test_missing_bucket_fails_the_check(moto_endpoint: str, aws_env: None) -> None:
    report = check_plan(backup_plan(moto_endpoint, "no-such-bucket-here"))
    assert {(r.name, r.ok, r.connection) for r in report.results} == {("bucket", False, False)}
    error = report.error()
    assert isinstance(error, PreconditionError)
    assert "'no-such-bucket-here' does not exist" in error.message and "aws s3 mb" in (error.hint or "")


def test_unreachable_endpoint_is_a_connection_failure(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    report = check_plan(backup_plan(endpoint, "pg-backups"))
    assert all(r.connection and not r.ok and r.name == "endpoint" for r in report.results)
    error = report.error()
    assert isinstance(error, ConnectionFailure) and error.exit_code == 5
    assert endpoint in error.message and "s3://pg-backups/legacy/" in error.message


def test_rejected_credentials_and_missing_write_permission(
    moto_endpoint: str, bucket: str, auth_users: s3_fixtures.AuthUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    for key_id, secret, code in (("AKIAUNKNOWN000000000", "whatever", "InvalidAccessKeyId"),
                                 (auth_users.full[0], "not-the-secret", "SignatureDoesNotMatch")):  # fmt: skip
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        error = check_plan(plan).error()
        assert isinstance(error, ConnectionFailure), error
        assert code in error.message and "credentials rejected" in error.message
        assert secret not in str(error) + (error.hint or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_users.read_only[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_users.read_only[1])
    report = check_plan(plan)
    assert {(r.name, r.ok) for r in report.results} == {("bucket", True), ("wal-archive-empty", True),
                                                        ("write-delete", False)}  # fmt: skip
    error = report.error()
    assert isinstance(error, PreconditionError) and "cannot write under" in error.message
    assert "s3:PutObject" in (error.hint or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_users.full[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_users.full[1])
    assert check_plan(plan).ok  # authentication is on, and good keys pass
    assert admin(moto_endpoint, key=auth_users.full).list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_policy_files_scope_each_cluster_to_its_prefix(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    plan = backup_plan(moto_endpoint, bucket)
    out = tmp_path / "plan"
    written = write_plan_dir(plan, out)
    files = sorted(p.name for p in (out / POLICY_DIR).iterdir())
    assert files == sorted(f"{a.cluster_name}.json" for a in plan.apps)
    assert all(out / POLICY_DIR / f in written for f in files)
    doc = json.loads((out / POLICY_DIR / "keycloak.json").read_text())
    own = f"legacy/keycloak-{ATTEMPT}/"
    statements = {s["Sid"]: s for s in doc["Statement"]}
    assert statements["ListOwnArchive"]["Resource"] == [f"arn:aws:s3:::{bucket}"]
    assert statements["ListOwnArchive"]["Condition"] == {"StringLike": {"s3:prefix": [f"{own}*"]}}
    assert statements["ReadWriteOwnArchive"]["Resource"] == [f"arn:aws:s3:::{bucket}/{own}*"]
    assert {"s3:PutObject", "s3:DeleteObject", "s3:GetObject"} <= set(statements["ReadWriteOwnArchive"]["Action"])
    assert all(s["Principal"] == {"AWS": ["arn:aws:iam:::user/keycloak-backup"]} for s in doc["Statement"])
    assert "nextcloud" not in json.dumps(doc)
    # a plan without a backup target removes the policies an earlier one wrote
    plan.target.backup = None
    write_plan_dir(plan, out)
    assert not (out / POLICY_DIR).exists()


def test_policy_enforced_by_the_store(moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated statements, attached to a user, let keycloak's checks pass and nothing else."""
    plan = backup_plan(moto_endpoint, bucket)
    statements = [{k: v for k, v in s.items() if k != "Principal"}
                  for s in bucket_policy(plan, plan.app("keycloak"))["Statement"]]  # fmt: skip
    scoped = iam_user(moto_endpoint, f"keycloak-backup-{bucket[-6:]}", {"Version": "2012-10-17",
                                                                         "Statement": statements})  # fmt: skip
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", scoped[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", scoped[1])
        report = check_plan(plan, [plan.app("keycloak"), plan.app("nextcloud")])
        ok = {(r.app, r.name): r.ok for r in report.results}
        assert all(ok[("keycloak", name)] for name in CHECKS), report.results
        # outside its own prefix writing is denied (moto does not evaluate the ListBucket prefix
        # condition, which the JSON test above pins down)
        assert ok[("nextcloud", "write-delete")] is False
        client = admin(moto_endpoint, key=scoped)
        with pytest.raises(Exception, match="AccessDenied"):
            client.put_object(Bucket=bucket, Key=f"legacy/nextcloud-{ATTEMPT}/wals/x", Body=b"x")
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_no_backup_target_is_refused(moto_endpoint: str) -> None:
    plan = backup_plan(moto_endpoint, "pg-backups")
    plan.target.backup = None
    with pytest.raises(PreconditionError) as caught:
        check_plan(plan)
    assert "--backup-s3 s3://bucket/prefix" in (caught.value.hint or "")


# --------------------------------------------------------------------------- safety dump


@pytest.fixture()
def dump_source(scratch: Server) -> str:
    """A database whose custom-format dump is over 5 MiB (two multipart parts), reached with a
    password in the DSN itself rather than a passfile."""
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE DATABASE shop")
    with connect(scratch.dsn, dbname="shop") as conn:
        conn.execute("CREATE TABLE orders AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS note "
                     "FROM generate_series(1, 200000) g")  # fmt: skip
    params = conninfo_to_dict(scratch.dsn)
    user = params["user"]
    password = scratch.password_of(user)
    params.pop("passfile")
    return make_conninfo(**params, password=password)


def test_safety_dump_streams_a_restorable_dump(moto_endpoint: str, bucket: str, dump_source: str,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    password = conninfo_to_dict(dump_source)["password"]
    monkeypatch.setenv("PGPASSWORD", "wrong-password")  # the passfile must win over it
    argvs: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording_popen(argv: list[str], *args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        argvs.append(list(argv))
        return real_popen(argv, *args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(safety.subprocess, "Popen", recording_popen)
    loc = S3Location(bucket, "legacy")
    key = safety.safety_key(loc, "shop", "shop", dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC))
    assert key == "legacy/safety/shop/shop-20261121T120000Z.dump"
    record = safety.dump_to_s3(dump_source, "shop", loc, key, endpoint=moto_endpoint, part_bytes=5 * 1024 * 1024)
    monkeypatch.undo()
    assert argvs and all(password not in " ".join(a) for a in argvs)
    dump_argv = next(a for a in argvs if "-Fc" in a)  # (tool probes may have run too)
    assert any("passfile=" in part for part in dump_argv)

    s3 = admin(moto_endpoint)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == record.bytes > 5 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-2")  # a two-part multipart upload
    local = tmp_path / "shop.dump"
    s3.download_file(bucket, key, str(local))
    assert hashlib.sha256(local.read_bytes()).hexdigest() == record.sha256
    assert record.seconds > 0 and record.url == f"s3://{bucket}/{key}"
    listing = subprocess.run([find().tool("pg_restore"), "--list", str(local)], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert "TABLE public orders" in listing and "TABLE DATA public orders" in listing


def test_failed_safety_dump_leaves_no_object(moto_endpoint: str, bucket: str, scratch: Server) -> None:
    loc = S3Location(bucket, "legacy")
    with pytest.raises(StepFailed) as caught:
        safety.dump_to_s3(scratch.dsn, "no_such_db", loc, "legacy/safety/x.dump", endpoint=moto_endpoint)
    assert "'no_such_db'" in caught.value.message and "does not exist" in caught.value.message
    assert keys(moto_endpoint, bucket) == []


def test_passfile_conninfo_keeps_the_password_off_the_command_line() -> None:
    dsn = make_conninfo(host="db.example", port=5432, user="app", dbname="shop", password="s3cr:et\\x")
    with safety.passfile_conninfo(dsn) as conninfo:
        params = conninfo_to_dict(conninfo)
        assert "password" not in params and "s3cr" not in conninfo
        passfile = Path(params["passfile"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert passfile.read_text() == "*:*:*:*:s3cr\\:et\\\\x\n"
    assert not passfile.exists() and not passfile.parent.exists()
    plain = "host=db.example user=app dbname=shop"
    with safety.passfile_conninfo(plain) as conninfo:
        assert conninfo == plain
    assert os.environ.get("PGPASSWORD") != "s3cr:et\\x"
