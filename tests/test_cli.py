"""The command line as a user meets it: exit codes, one-line errors, files written or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.pg.connect import connect
from consolidator.pg.instance import free_port
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
                 "--strategy", "mastodon_production=logical", "--target", "cnpg", "--namespace", "apps")
    assert result.returncode == 0, result.stderr
    assert (out / "plan.yaml").exists() and (out / "manifests" / "kustomization.yaml").exists()
    assert "mastodon-production" in result.stdout
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
