"""End to end on real servers: plan → execute (dump) → verify → status → rollback → teardown, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.demo.legacy import create_legacy_databases
from consolidator.pg.connect import connect
from tests.harness import Server, role_conninfo, running_server
from tests.test_cli import REPO, cli

TRICKY_DB = 'Ünï "quoted" db'


def add_tricky_database(server: Server) -> None:
    """Identifiers with spaces, quotes, upper case and non-ASCII, in names of roles, databases and columns."""
    with connect(server.dsn) as conn:
        conn.execute("CREATE ROLE \"o'brien\" LOGIN PASSWORD 'ob-secret'")
        conn.execute('CREATE ROLE "Wiki Admin" NOLOGIN')
        conn.execute('CREATE DATABASE "Ünï ""quoted"" db" OWNER "o\'brien"')
    server.add_password("o'brien", "ob-secret")
    with connect(server.dsn, dbname=TRICKY_DB) as conn:
        conn.execute("SET ROLE \"o'brien\"")
        conn.execute('CREATE SCHEMA "Sales Ünï"')
        conn.execute('CREATE TABLE "Sales Ünï"."Mixed Case" (id int PRIMARY KEY, "quoted ""name""" text, '
                     '"Ärger" numeric(10,2))')
        conn.execute('INSERT INTO "Sales Ünï"."Mixed Case" '
                     "SELECT g, 'n' || g, g / 7.0 FROM generate_series(1, 500) g")
        conn.execute('GRANT USAGE ON SCHEMA "Sales Ünï" TO "Wiki Admin"')
        conn.execute('GRANT SELECT ("quoted ""name""") ON "Sales Ünï"."Mixed Case" TO "Wiki Admin"')


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15, {"wal_level": "logical"}) as server:
        create_legacy_databases(server.dsn, scale_mb=3, passwords=server.add_password)
        add_tricky_database(server)
        yield server


def make_plan(source: Server, local_root: Path, out: Path, *dbs: str) -> None:
    args = ["plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
            str(local_root), "--sample-seconds", "0", "--strategy", "dump"]  # fmt: skip
    result = cli(*args)
    assert result.returncode == 0, result.stderr


def status(out: Path) -> dict:  # type: ignore[type-arg]
    result = cli("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def count(conninfo: str, dbname: str, table: str) -> int:
    with connect(conninfo, dbname=dbname) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_dump_end_to_end(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    result = cli("execute", str(out), "--yes")
    assert result.returncode == 0, result.stderr
    doc = status(out)
    for app in doc["apps"]:
        assert app["state"] == "cut_over", app
        names = [s["name"] for s in app["steps"]]
        assert {"schema", "copy", "indexes", "cutover", "verify"} <= set(names)
        assert all(s["state"] == "done" for s in app["steps"])
        assert app["target"]["conninfo"] and "password" not in app["target"]["conninfo"]
        assert app["target"]["passfile"] and oct(os.stat(app["target"]["passfile"]).st_mode & 0o777) == "0o600"
    masto = next(a for a in doc["apps"] if a["name"] == "mastodon_production")
    target = masto["target"]["conninfo"]
    assert count(target, "mastodon_production", "statuses") == count(source.dsn, "mastodon_production", "statuses")
    # the source is fenced: the app role cannot connect any more
    with pytest.raises(Exception, match="CONNECT"):
        connect(source.conninfo("mastodon_production", "mastodon")).close()
    # the target is open to the app role with its original password (same SCRAM hash)
    password = source.password_of("mastodon")
    login = role_conninfo(target, dbname="mastodon_production", role="mastodon", password=password)
    with connect(login) as conn:
        assert conn.execute("SELECT count(*) FROM statuses").fetchone()[0] > 0
    assert cli("verify", str(out)).returncode == 0
    rb = cli("rollback", str(out), "--app", "mastodon_production")
    assert rb.returncode == 0, rb.stderr
    connect(source.conninfo("mastodon_production", "mastodon")).close()  # open again
    td = cli("teardown", str(out), "--yes", "--force")
    assert td.returncode == 0, td.stderr
    assert not any(local_root.iterdir())


def test_refuses_half_finished_run_and_resumes_after_kill(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "consolidator", "execute", str(out), "--yes", "--app",
                             "mastodon_production"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    state = out / "state.json"
    while time.monotonic() < deadline:
        if state.exists() and '"copy"' in state.read_text() and '"running"' in state.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = cli("execute", str(out), "--yes")
    assert again.returncode == 4 and "--resume" in again.stderr
    resumed = cli("execute", str(out), "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert all(a["state"] == "cut_over" for a in status(out)["apps"])
    assert cli("verify", str(out)).returncode == 0
    cli("teardown", str(out), "--yes", "--force")


def test_refusals_leave_everything_untouched(source: Server, local_root: Path, tmp_path: Path) -> None:
    """A non-superuser source and a non-empty target are refused (exit 4); nothing gets fenced."""
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    with connect(source.dsn) as conn:
        conn.execute("CREATE ROLE auditor LOGIN PASSWORD 'a-secret' IN ROLE pg_monitor")
    from psycopg.conninfo import make_conninfo

    weak = make_conninfo(source.dsn, user="auditor")
    source.add_password("auditor", "a-secret")
    refused = cli("execute", str(out), "--yes", "--source", weak)
    assert refused.returncode == 4 and "not a superuser" in refused.stderr
    assert not (out / "state.json").exists()
    # a target database that already holds tables is refused without --force
    from consolidator.engine.executor import make_provider
    from consolidator.plan.store import load_plan

    plan = load_plan(out)
    app = plan.app("keycloak")
    handle = make_provider(plan, out).provision(plan, app)
    with connect(handle.conninfo) as conn:
        conn.execute("CREATE DATABASE keycloak")
    with connect(handle.conninfo, dbname="keycloak") as conn:
        conn.execute("CREATE TABLE leftover (id int)")
    result = cli("execute", str(out), "--yes", "--app", "keycloak")
    assert result.returncode == 4 and "--force" in result.stderr, result.stderr
    connect(source.conninfo("keycloak", "grafana_reader")).close()  # the source was not left fenced
    cli("teardown", str(out), "--yes", "--force")
