"""execute --safety-dump: a pg_dump -Fc of each source database lands in the plan's S3 store before the
fence, recorded (size, sha256) in the journal, the run summary and the report; never taken twice."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.pg.binaries import find_client
from consolidator.pg.connect import connect
from tests import s3_fixtures
from tests.harness import Server, running_server
from tests.s3_fixtures import admin
from tests.test_cli import assert_one_line_error, cli

moto_endpoint = s3_fixtures.moto_endpoint
aws_env = s3_fixtures.aws_env
bucket = s3_fixtures.bucket


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15) as server:
        with connect(server.dsn) as conn:
            conn.execute("CREATE ROLE shopper LOGIN PASSWORD 'shop-pw'")
            conn.execute('CREATE DATABASE "Shop Ünï" OWNER shopper')
        with connect(server.conninfo("Shop Ünï")) as conn:
            conn.execute("SET ROLE shopper")
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        yield server


def test_safety_dump_before_the_fence(source: Server, local_root: Path, tmp_path: Path, moto_endpoint: str,
                                      bucket: str) -> None:  # fmt: skip
    out = tmp_path / "plan"
    planned = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
                  str(local_root), "--sample-seconds", "0", "--strategy", "dump", "--backup-s3",
                  f"s3://{bucket}/legacy", "--backup-endpoint", moto_endpoint)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    done = cli("execute", str(out), "--yes", "--safety-dump")
    assert done.returncode == 0, done.stderr
    state = json.loads((out / "state.json").read_text())["apps"]
    (app,) = [a for a in state.values() if a["safety_dumps"]]
    record = app["safety_dumps"]["Shop Ünï"]
    s3 = admin(moto_endpoint)
    objects = s3.list_objects_v2(Bucket=bucket, Prefix="legacy/safety/")["Contents"]
    assert [o["Key"] for o in objects] == [record["key"]] and record["url"] == f"s3://{bucket}/{record['key']}"
    local = tmp_path / "shop.dump"
    s3.download_file(bucket, record["key"], str(local))
    assert hashlib.sha256(local.read_bytes()).hexdigest() == record["sha256"]
    assert local.stat().st_size == record["bytes"]
    listing = subprocess.run([find_client().tool("pg_restore"), "--list", str(local)], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert "TABLE DATA public orders" in listing
    assert record["sha256"] in (out / "summary.md").read_text()
    report = cli("report", str(out), "--format", "md", "--offline")
    assert report.returncode == 0 and record["sha256"] in (out / "report.md").read_text()
    # a resumed or repeated run does not dump again
    again = cli("execute", str(out), "--yes", "--resume", "--safety-dump")
    assert again.returncode == 0, again.stderr
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix="legacy/safety/")["Contents"]) == 1
    cli("teardown", str(out), "--yes", "--force")


def test_safety_dump_needs_a_backup_target(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    planned = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
                  str(local_root), "--sample-seconds", "0", "--strategy", "dump")  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    refused = cli("execute", str(out), "--yes", "--safety-dump")
    assert_one_line_error(refused, 3, "--safety-dump needs an S3 backup target", "--backup-s3")
    assert not (out / "state.json").exists()
