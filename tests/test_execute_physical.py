"""Physical strategy on real servers: standby → fence → exact drain → promote → drop foreign → verify → cutover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consolidator.demo.legacy import create_legacy_databases
from consolidator.engine.physical import RoleRow, _names_standby, lsn_int, lsn_text, roles_to_drop
from consolidator.engine.provider import Provider
from consolidator.errors import ConfigError
from consolidator.pg.connect import connect
from consolidator.pg.instance import BUILD_MARKER
from tests.harness import Server, role_conninfo, running_server
from tests.test_cli import REPO, cli

APP = "Team Wiki"
STEPS = ["provision", "copy", "replicate", "fence", "drain", "promote", "drop_foreign", "verify", "cutover"]
OTHER_APP_ROLES = {"keycloak", "keycloak_ro", "grafana_reader", "mastodon", "nextcloud"}


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15, {"wal_level": "replica"}) as server:
        create_legacy_databases(server.dsn, scale_mb=3, passwords=server.add_password)
        _add_extras(server)
        yield server


def _add_extras(server: Server) -> None:
    """A role of no app that owns a table in ``postgres`` (must stay) and a subscription of another app."""
    with connect(server.dsn, dbname="postgres") as conn:
        conn.execute("CREATE ROLE reporting NOLOGIN")
        conn.execute("CREATE TABLE public.report_cache (id int)")
        conn.execute("ALTER TABLE public.report_cache OWNER TO reporting")
    with connect(server.dsn, dbname="nextcloud") as conn:
        conn.execute("CREATE SUBSCRIPTION legacy_feed CONNECTION 'host=127.0.0.1 port=1 dbname=feed' "
                     "PUBLICATION feed WITH (connect = false)")  # fmt: skip


class Writer(threading.Thread):
    """Inserts rows as the app's role until stopped; remembers every id the source acknowledged."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.acked: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with connect(self.conninfo) as conn:
                    while not self.stopping.is_set():
                        row = conn.execute("INSERT INTO wiki.pages (path, title, content) VALUES (%s, 'w', 'w') "
                                           "RETURNING id", (f"/w/{uuid.uuid4()}",)).fetchone()  # fmt: skip
                        self.acked.append(int(row[0]))
                        time.sleep(0.005)
            except Exception:  # fenced: the session ends and new ones are refused
                time.sleep(0.05)

    def stop(self) -> list[int]:
        self.stopping.set()
        self.join(timeout=30)
        return self.acked


def make_plan(source: Server, local_root: Path, out: Path, *physical: str) -> None:
    strategies = [arg for name in (APP, *physical) for arg in ("--strategy", f"{name}=physical")]
    result = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
                 str(local_root), "--sample-seconds", "0", "--strategy", "dump", *strategies)
    assert result.returncode == 0, result.stderr


def app_status(out: Path, name: str = APP) -> dict[str, Any]:
    result = cli("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return next(a for a in json.loads(result.stdout)["apps"] if a["name"] == name)


def page_ids(conninfo: str) -> set[int]:
    with connect(conninfo, dbname=APP) as conn:
        return {int(r[0]) for r in conn.execute("SELECT id FROM wiki.pages")}


def assert_no_secret(root: Path, secret: str, *, allowed: set[str]) -> None:
    """The password appears in no file below ``root`` except the named passfiles."""
    for path in root.rglob("*"):
        if path.is_file() and path.name not in allowed and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path


def assert_cut_over(source: Server, out: Path, acked: list[int]) -> dict[str, Any]:
    app = app_status(out)
    assert app["state"] == "cut_over", app
    assert [s["name"] for s in app["steps"]] == STEPS
    assert all(s["state"] == "done" for s in app["steps"]), app["steps"]
    target = app["target"]["conninfo"]
    assert target and "password" not in target
    with connect(target, dbname="postgres") as conn:
        dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert conn.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0
    assert dbs == {APP, "postgres", "template0", "template1"}
    assert not roles & OTHER_APP_ROLES
    assert {"wiki-js", "reporting"} <= roles
    # every write the source acknowledged before the fence is on the target; nothing else is
    target_ids = page_ids(target)
    assert acked and set(acked) <= target_ids
    assert target_ids == page_ids(source.dsn)
    # the source is intact and still fenced
    with connect(source.dsn, dbname="postgres") as conn:
        assert {"keycloak", "mastodon_production", "nextcloud", APP} <= {
            r[0] for r in conn.execute("SELECT datname FROM pg_database")}  # fmt: skip
    with pytest.raises(Exception, match="CONNECT"):
        connect(source.conninfo(APP, "wiki-js")).close()
    # the target is open to the app role, with its source password (same SCRAM hash)
    login = role_conninfo(target, dbname=APP, role="wiki-js", password=source.password_of("wiki-js"))
    with psycopg.connect(login) as conn:
        assert conn.execute("SELECT count(*) FROM wiki.pages").fetchone()[0] == len(target_ids)
    state = json.loads((out / "state.json").read_text())["apps"][APP]
    assert lsn_int(state["facts"]["drained_lsn"]) >= lsn_int(state["facts"]["fence_lsn"])
    assert "nextcloud" in state["facts"]["dropped_databases"]
    assert "reporting" in state["facts"]["kept_roles"]
    return app


def assert_nextcloud(source: Server, out: Path) -> None:
    """Unlogged table and sequence restored after promotion; the app's own subscription kept but detached."""
    app = app_status(out, "nextcloud")
    assert app["state"] == "cut_over", app
    target = app["target"]["conninfo"]
    with connect(target, dbname="nextcloud") as conn:
        assert {r[0] for r in conn.execute("SELECT datname FROM pg_database")} == {
            "nextcloud", "postgres", "template0", "template1"}  # fmt: skip
        assert conn.execute("SELECT count(*) FROM oc_file_locks").fetchone()[0] == 100
        assert conn.execute("SELECT nextval('oc_file_locks_id_seq')").fetchone()[0] > 100
        assert conn.execute("SELECT subenabled, subslotname FROM pg_subscription").fetchall() == [(False, None)]


def test_physical_end_to_end(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out, "nextcloud")
    writer = Writer(source.conninfo(APP, "wiki-js"))
    writer.start()
    try:
        result = cli("execute", str(out), "--yes", "--app", APP, "--app", "nextcloud")
    finally:
        acked = writer.stop()
    assert result.returncode == 0, result.stderr
    app = assert_cut_over(source, out, acked)
    assert_nextcloud(source, out)
    assert "subscription 'legacy_feed' in 'nextcloud' is disabled and detached" in result.stderr
    assert cli("verify", str(out), "--app", APP, "--app", "nextcloud").returncode == 0
    # credentials: one 0600 passfile for the tool; the walreceiver's went away at promotion
    passfile = Path(app["target"]["passfile"])
    assert oct(passfile.stat().st_mode & 0o777) == "0o600" and passfile.stat().st_uid == os.geteuid()
    assert not (passfile.parent / "primary.pgpass").exists()
    secret = source.password_of("postgres")
    assert secret not in result.stdout + result.stderr
    assert_no_secret(passfile.parent, secret, allowed={"pgpass"})
    assert_no_secret(out, secret, allowed=set())
    td = cli("teardown", str(out), "--yes", "--force")
    assert td.returncode == 0, td.stderr
    assert not any(local_root.iterdir())


def _step_state(out: Path, step: str) -> str | None:
    try:
        state = json.loads((out / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state["apps"].get(APP, {}).get("steps", {}).get(step, {}).get("state")


@pytest.mark.parametrize(("step", "delay"), [("copy", 0.3), ("replicate", 0.0)])
def test_kill_then_resume(source: Server, local_root: Path, tmp_path: Path, step: str, delay: float) -> None:
    """kill -9 in the middle of the base backup or while streaming; --resume finishes without loss."""
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    writer = Writer(source.conninfo(APP, "wiki-js"))
    writer.start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "consolidator", "execute", str(out), "--yes", "--app", APP],
                                cwd=REPO, env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _step_state(out, step) != "running":
            assert proc.poll() is None, f"execute ended before {step}"
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # on a fast machine the base backup may already be done: the kill then lands just after it
        assert _step_state(out, step) in ("running", "done")
        assert _step_state(out, "fence") is None  # killed before the fence: the app kept writing
        time.sleep(0.5)
        resumed = cli("execute", str(out), "--yes", "--app", APP, "--resume")
    finally:
        acked = writer.stop()
    assert resumed.returncode == 0, resumed.stderr
    assert_cut_over(source, out, acked)
    assert not (local_root / "team-wiki" / BUILD_MARKER).exists()
    cli("teardown", str(out), "--yes", "--force")


def test_replication_refused_by_hba_then_resume(source: Server, local_root: Path, tmp_path: Path) -> None:
    if source.instance is None:
        pytest.skip("needs a local source whose pg_hba.conf the test can edit")
    hba = source.instance.data_dir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("".join(line + "\n" for line in original.splitlines()
                           if not line.startswith(("host    replication", "local   replication"))))  # fmt: skip
    _reload(source)
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    failed = cli("execute", str(out), "--yes", "--app", APP)
    assert failed.returncode != 0
    assert "refuses replication connections" in failed.stderr and "host replication" in failed.stderr
    assert "Traceback" not in failed.stderr
    connect(source.conninfo(APP, "wiki-js")).close()  # nothing was fenced
    hba.write_text(original)
    _reload(source)
    resumed = cli("execute", str(out), "--yes", "--app", APP, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert app_status(out)["state"] == "cut_over"
    cli("teardown", str(out), "--yes", "--force")


def _reload(server: Server) -> None:
    with connect(server.dsn, dbname="postgres") as conn:
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)


# -- pure parts -----------------------------------------------------------------------------------


def test_roles_to_drop_keeps_whatever_something_refers_to() -> None:
    roles = [
        RoleRow("wiki-js"),
        RoleRow("dba", superuser=True),
        RoleRow("reporting", used_in=["postgres"]),
        RoleRow("auditor", related=["wiki-js"]),
        RoleRow("auditor_group", related=["auditor"]),
        RoleRow("granted", used_in=[]),
        RoleRow("mastodon"),
        RoleRow("admin", superuser=False),
    ]
    drop, kept = roles_to_drop(roles, {"wiki-js"}, {"granted"}, "admin")
    assert drop == ["mastodon"]
    assert kept["reporting"].endswith("in postgres")
    assert kept["auditor_group"] == "membership link with kept role auditor"
    assert set(kept) == {"wiki-js", "dba", "reporting", "auditor", "auditor_group", "granted", "admin"}


def test_lsn_round_trip_and_order() -> None:
    assert lsn_int("0/16B3748") < lsn_int("1/0") < lsn_int("16/B374D848")
    assert lsn_text(lsn_int("16/B374D848")) == "16/B374D848"


def test_a_wildcard_synchronous_standby_setting_would_catch_the_clone() -> None:
    assert _names_standby("*", "consolidator-team-wiki")
    assert _names_standby('ANY 2 ("s1", *)', "consolidator-team-wiki")
    assert _names_standby("FIRST 1 (consolidator-team-wiki, s1)", "consolidator-team-wiki")
    assert not _names_standby("FIRST 1 (s1, s2)", "consolidator-team-wiki")
    assert not _names_standby("", "consolidator-team-wiki")


def test_providers_without_standbys_say_so() -> None:
    class Bare(Provider):
        name = "bare"

        def provision(self, plan: Any, app: Any) -> Any: ...
        def describe(self, plan: Any, app: Any) -> Any: ...
        def wait_ready(self, plan: Any, app: Any, timeout: float = 120) -> Any: ...
        def promote(self, plan: Any, app: Any) -> None: ...
        def teardown(self, plan: Any, app: Any) -> bool: return False

    with pytest.raises(ConfigError, match="provider bare cannot build standbys"):
        Bare().provision_standby(None, None, "")  # type: ignore[arg-type]
