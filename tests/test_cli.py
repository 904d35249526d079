"""The command line as a user meets it: exit codes, one-line errors, files written or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.pg.connect import connect
from consolidator.pg.instance import free_port
from tests.cnpg_schema import validate_object
from tests.harness import Server

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("CONSOLIDATOR_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "consolidator", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=300)  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("consolidator: error: ") and lines[-1].startswith("  hint: "), result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_unreachable_host_writes_nothing(tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=someone dbname=postgres connect_timeout=3"
    out = tmp_path / "plan"
    result = cli("plan", "--source", dsn, "--out", str(out), "--sample-seconds", "0")
    assert_one_line_error(result, 5, "cannot connect to someone@127.0.0.1")
    assert not out.exists()


def test_wrong_password_is_auth_error_and_never_echoed(legacy: Server) -> None:
    params = conninfo_to_dict(legacy.dsn)
    params.pop("passfile")
    dsn = make_conninfo(**params, password="hunter2-wrong")
    result = cli("inventory", "--source", dsn, "--sample-seconds", "0")
    assert_one_line_error(result, 5, "authentication failed")
    assert "hunter2-wrong" not in result.stderr + result.stdout


def test_usage_error_is_exit_3() -> None:
    result = cli("plan", "--out", "x")
    assert_one_line_error(result, 3, "--source")


def test_inventory_json_shape(legacy: Server) -> None:
    result = cli("inventory", "--source", legacy.dsn, "--sample-seconds", "0", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"server", "databases", "findings"} <= set(doc)
    db = next(d for d in doc["databases"] if d["name"] == "nextcloud")
    assert db["size_bytes"] > 0 and isinstance(db["findings"], list) and db["findings"]
    assert {f["code"] for f in doc["findings"]} >= {"CN101", "CN401"}


def test_plan_show_report(legacy: Server, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = cli("plan", "--source", legacy.dsn, "--out", str(out), "--sample-seconds", "1",
                 "--strategy", "mastodon_production=logical", "--target", "cnpg", "--namespace", "apps",
                 "--backup-s3", "s3://pg-backups/legacy", "--backup-endpoint", "https://rgw.example:7480",
                 "--pod-monitor", "--network-policy", "--app-namespace", "web", "--priority-class", "databases",
                 "--storage-class", "fast-ssd", "--source-from-cluster", "legacy-pg.db.svc:5432")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "plan.yaml").exists() and (out / "manifests" / "kustomization.yaml").exists()
    kinds = set()
    for path in (out / "manifests").rglob("*.yaml"):
        obj = yaml.safe_load(path.read_text())
        validate_object(obj)
        kinds.add(obj["kind"])
    assert {"Cluster", "Secret", "ObjectStore", "ScheduledBackup", "PodMonitor", "NetworkPolicy",
            "PriorityClass", "Kustomization"} <= kinds
    cluster = yaml.safe_load((out / "manifests" / "keycloak" / "cluster-keycloak.yaml").read_text())
    assert cluster["metadata"]["namespace"] == "apps"
    assert cluster["spec"]["storage"]["storageClass"] == "fast-ssd"
    assert cluster["spec"]["plugins"][0]["parameters"]["serverName"].startswith("keycloak-")
    assert "mastodon-production" in result.stdout
    masto = yaml.safe_load((out / "manifests" / "mastodon-production" / "cluster-mastodon-production.yaml").read_text())
    legacy_params = masto["spec"]["externalClusters"][0]["connectionParameters"]
    assert (legacy_params["host"], legacy_params["port"]) == ("legacy-pg.db.svc", "5432")
    show = cli("show", str(out))
    assert show.returncode == 0 and "team-wiki" in show.stdout
    for fmt in ("md", "html", "json"):
        rep = cli("report", str(out), "--format", fmt)
        assert rep.returncode == 0, rep.stderr
        assert (out / f"report.{fmt}").exists()
    html = (out / "report.html").read_text()
    assert "Team Wiki" in html and "<script" not in html


def test_malformed_plan_yaml(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("format_version: 1\napps: [\n  - name: x\n")
    result = cli("show", str(tmp_path))
    assert_one_line_error(result, 3, "not valid YAML at line")


def test_stale_plan_is_refused_with_what_changed(scratch: Server, tmp_path: Path) -> None:
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE DATABASE shop")
    with connect(scratch.dsn, dbname="shop") as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)")
    out = tmp_path / "plan"
    assert cli("plan", "--source", scratch.dsn, "--out", str(out), "--sample-seconds", "0").returncode == 0
    assert cli("report", str(out)).returncode == 0
    with connect(scratch.dsn, dbname="shop") as conn:
        conn.execute("CREATE TABLE refunds (id bigint PRIMARY KEY)")
    result = cli("report", str(out))
    assert_one_line_error(result, 4, "stale", "'shop'", "relations changed (1 → 2)")
    assert cli("report", str(out), "--offline").returncode == 0


def test_hand_broken_plan_and_impossible_override(legacy: Server, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    assert cli("plan", "--source", legacy.dsn, "--out", str(out), "--sample-seconds", "0").returncode == 0
    original = (out / "plan.yaml").read_text()
    data = yaml.safe_load(original)
    data["apps"][2]["sizing"]["memory"]["value"] = "12 potatoes"
    (out / "plan.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    assert_one_line_error(cli("show", str(out)), 3, 'apps[2].sizing.memory: "12 potatoes" is not a quantity')
    data = yaml.safe_load(original)
    data["apps"][0]["overrides"] = {"memory": "256Mi", "parameters": {"shared_buffers": "2GB"}}
    (out / "plan.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    result = cli("report", str(out), "--offline")
    assert_one_line_error(result, 3, "apps[0].overrides.parameters.shared_buffers")
    assert not (out / "report.md").exists()
    before = sorted(p.name for p in out.iterdir())
    replan = cli("plan", "--source", legacy.dsn, "--out", str(out), "--sample-seconds", "0")
    assert replan.returncode == 3  # the broken override is kept and refused again: nothing rewritten
    assert sorted(p.name for p in out.iterdir()) == before


def test_role_without_privileges_exit_4(scratch: Server) -> None:
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE ROLE plain LOGIN PASSWORD 'p-secret'")
    scratch.add_password("plain", "p-secret")
    result = cli("inventory", "--source", scratch.conninfo(user="plain"), "--sample-seconds", "0")
    assert_one_line_error(result, 4, "GRANT pg_monitor TO plain")


def test_password_from_environment_is_never_printed(scratch: Server, tmp_path: Path) -> None:
    with connect(scratch.dsn) as conn:
        conn.execute("CREATE ROLE auditor LOGIN PASSWORD 'env-only-s3cret' IN ROLE pg_monitor")
        conn.execute("CREATE DATABASE inventory_app")
    params = conninfo_to_dict(scratch.dsn)
    params.pop("passfile")
    dsn = make_conninfo(**{**params, "user": "auditor"})
    out = tmp_path / "plan"
    result = cli("plan", "--source", dsn, "--out", str(out), "--sample-seconds", "0",
                 env={"PGPASSWORD": "env-only-s3cret", "PGPASSFILE": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "env-only-s3cret" not in result.stdout + result.stderr + written
    assert "credentials: env:PGPASSWORD" in (out / "plan.yaml").read_text()
