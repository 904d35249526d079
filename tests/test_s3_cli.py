"""``consolidator s3 check`` as a user meets it: table or JSON on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from consolidator.pg.instance import free_port
from consolidator.plan.write import write_plan_dir
from tests import s3_fixtures
from tests.s3_fixtures import ATTEMPT, REPO, admin, backup_plan, keys
from tests.test_cli import assert_one_line_error, cli

# fixtures from tests/s3_fixtures.py
auth_users = s3_fixtures.auth_users
aws_env = s3_fixtures.aws_env
bucket = s3_fixtures.bucket
moto_endpoint = s3_fixtures.moto_endpoint
plan_dir = s3_fixtures.plan_dir


def test_all_hold_exit_0_with_a_table(plan_dir: Path, moto_endpoint: str, bucket: str) -> None:
    result = cli("s3", "check", str(plan_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "S3 backup destination: ready"
    assert lines[1].split() == ["app", "check", "status", "message", "fix"]
    rows = [ln for ln in lines[2:] if ln.strip()]
    assert len(rows) == 12 and all(" ok " in row for row in rows) and "FAILED" not in result.stdout
    assert any(row.split()[:3] == ["keycloak", "wal-archive-empty", "ok"] for row in rows)
    assert keys(moto_endpoint, bucket) == []


def test_json_and_app_selection(plan_dir: Path) -> None:
    result = cli("s3", "check", str(plan_dir), "--app", "nextcloud", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["endpoint"].startswith("http://127.0.0.1:")
    assert [(r["app"], r["name"], r["ok"]) for r in doc["results"]] == [
        ("nextcloud", "bucket", True), ("nextcloud", "wal-archive-empty", True), ("nextcloud", "write-delete", True)]
    assert set(doc["results"][0]) == {"app", "name", "ok", "message", "fix", "connection"}
    assert_one_line_error(cli("s3", "check", str(plan_dir), "--app", "nope"), 3, "--app nope")


def test_non_empty_wal_prefix_exit_4_names_the_fix(plan_dir: Path, moto_endpoint: str, bucket: str) -> None:
    stale = f"legacy/mastodon-production-{ATTEMPT}/wals/0000000100000000/000000010000000000000003.gz"
    admin(moto_endpoint).put_object(Bucket=bucket, Key=stale, Body=b"wal")
    result = cli("s3", "check", str(plan_dir), "--json")
    assert_one_line_error(result, 4, "mastodon_production: ", f"s3://{bucket}/legacy/mastodon-production-{ATTEMPT}/",
                          "Expected empty archive", "target.backup.attempt", "serverName becomes mastodon-production-a")
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert [r["name"] for r in doc["results"] if not r["ok"]] == ["wal-archive-empty"]


def test_missing_bucket_exit_4(moto_endpoint: str, aws_env: None, tmp_path: Path) -> None:
    write_plan_dir(backup_plan(moto_endpoint, "absent-bucket"), tmp_path)
    result = cli("s3", "check", str(tmp_path))
    assert_one_line_error(result, 4, "bucket 'absent-bucket' does not exist", "aws s3 mb s3://absent-bucket")
    assert "NOT READY" in result.stdout


def test_rejected_credentials_exit_5_without_echoing_them(plan_dir: Path, auth_users: s3_fixtures.AuthUsers) -> None:
    secret = "wrong-secret-value-123"
    result = cli("s3", "check", str(plan_dir), env={"AWS_ACCESS_KEY_ID": auth_users.full[0],
                                                    "AWS_SECRET_ACCESS_KEY": secret})  # fmt: skip
    assert_one_line_error(result, 5, "credentials rejected", "SignatureDoesNotMatch", "AWS_ACCESS_KEY_ID")
    assert secret not in result.stdout + result.stderr
    result = cli("s3", "check", str(plan_dir), env={"AWS_ACCESS_KEY_ID": auth_users.read_only[0],
                                                    "AWS_SECRET_ACCESS_KEY": auth_users.read_only[1]})  # fmt: skip
    assert_one_line_error(result, 4, "cannot write under", "s3:PutObject")
    assert auth_users.read_only[1] not in result.stdout + result.stderr


def test_unreachable_endpoint_exit_5(aws_env: None, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    write_plan_dir(backup_plan(endpoint, "pg-backups"), tmp_path)
    assert_one_line_error(cli("s3", "check", str(tmp_path)), 5, f"cannot reach {endpoint}", "--backup-endpoint")


def test_plan_without_backup_target_is_refused() -> None:
    result = cli("s3", "check", str(REPO / "plans" / "example"))
    assert_one_line_error(result, 4, "no backup target", "--backup-s3 s3://bucket/prefix")
