"""Targets that fail under the engine: a disk that fills up mid-copy and a target that cannot be reached.

Each must give a clear error naming the target and the fix, leave nothing half-switched (the target
stays closed to the app, the source intact), and let ``execute --resume`` finish once the cause is gone.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.pg.connect import connect
from consolidator.pg.instance import LocalInstance
from tests.harness import Server, role_conninfo, running_server
from tests.test_cli import cli

ROWS = 400_000  # ≈ 90 MB of heap: more than the small disk holds after initdb


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15) as server:
        with connect(server.dsn) as conn:
            conn.execute("CREATE ROLE \"bulk app\" LOGIN PASSWORD 'bulk-secret'")
            conn.execute('CREATE DATABASE "bulk data" OWNER "bulk app"')
        server.add_password("bulk app", "bulk-secret")
        with connect(server.conninfo("bulk data")) as conn:
            conn.execute('SET ROLE "bulk app"')
            conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, body text)")
            conn.execute(f"INSERT INTO items SELECT g, repeat(md5(g::text), 5) FROM generate_series(1, {ROWS}) g")
        yield server


@pytest.fixture()
def small_disk() -> Iterator[Path]:
    """A 120 MB tmpfs: room for an instance, not for the data."""
    mount = Path(tempfile.mkdtemp(prefix="consolidator-disk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        for meta in mount.glob("*/*/instance.json"):
            LocalInstance.open(meta.parent).stop("immediate")
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def plan(source: Server, root: Path, out: Path) -> None:
    result = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root", str(root),
                 "--sample-seconds", "0", "--strategy", "dump")  # fmt: skip
    assert result.returncode == 0, result.stderr


def app_state(out: Path) -> dict:  # type: ignore[type-arg]
    result = cli("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["apps"][0]


def rows_on(conninfo: str) -> int:
    with connect(conninfo, dbname="bulk data") as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def test_full_target_disk_fails_clearly_then_resumes(source: Server, small_disk: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    plan(source, small_disk / "targets", out)
    failed = cli("execute", str(out), "--yes")
    assert failed.returncode == 1, failed.stderr
    assert "disk full" in failed.stderr and "items" in failed.stderr and "--resume" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    app = app_state(out)
    assert app["state"] == "failed"
    steps = {s["name"]: s["state"] for s in app["steps"]}
    assert steps["copy"] != "done" and steps["cutover"] != "done"
    # nothing switched: the app role cannot reach its database on the target, the source kept every row
    login = role_conninfo(app["target"]["conninfo"], dbname="bulk data", role="bulk app", password="bulk-secret")
    with pytest.raises(Exception):  # noqa: B017 - closed (no CONNECT) or not even created yet
        connect(login).close()
    assert rows_on(source.dsn) == ROWS

    subprocess.run(["mount", "-o", "remount,size=1g", str(small_disk)], check=True)
    resumed = cli("execute", str(out), "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert app_state(out)["state"] == "cut_over"
    assert rows_on(app_state(out)["target"]["conninfo"]) == ROWS
    assert cli("verify", str(out)).returncode == 0
    assert cli("teardown", str(out), "--yes", "--force").returncode == 0


def test_unreachable_target_is_refused_then_resumes(source: Server, local_root: Path, tmp_path: Path) -> None:
    """The target server cannot start (its port is taken): a step error before the source is touched."""
    out = tmp_path / "plan"
    plan(source, local_root, out)
    from consolidator.engine.executor import make_provider
    from consolidator.plan.store import load_plan

    loaded = load_plan(out)
    app = loaded.apps[0]
    make_provider(loaded, out).provision(loaded, app)
    inst = LocalInstance.open(local_root / app.cluster_name)
    inst.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", inst.port))
        squatter.listen()
        failed = cli("execute", str(out), "--yes")
    assert failed.returncode == 1, failed.stderr
    assert f"{app.cluster_name}" in failed.stderr and "does not start" in failed.stderr, failed.stderr
    assert "could not bind" in failed.stderr and "Traceback" not in failed.stderr
    state = app_state(out)
    assert state["state"] == "failed" and {s["name"]: s["state"] for s in state["steps"]}["fence"] != "done"
    # the source was not fenced: the app still logs in there
    connect(source.conninfo("bulk data", "bulk app")).close()

    resumed = cli("execute", str(out), "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert rows_on(app_state(out)["target"]["conninfo"]) == ROWS
    assert cli("teardown", str(out), "--yes", "--force").returncode == 0
