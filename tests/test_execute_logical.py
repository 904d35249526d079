"""End to end on real servers: the logical strategy (online copy under a writer, exact drain, cutover).

Also: 15 → 16 with a two-database app, a source without wal_level=logical refused before anything
changes (then resumed once fixed), kill -9 during copy/replicate followed by --resume, odd identifiers
with a partitioned table and the REPLICA IDENTITY FULL opt-in, and (slow) kill -9 at random points.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consolidator.demo.legacy import create_legacy_databases
from consolidator.engine import fence
from consolidator.engine.replication import SOURCE_PASSFILE, finalize_logical, object_name
from consolidator.pg.binaries import available
from consolidator.pg.connect import connect
from consolidator.plan.store import load_plan, save_plan
from tests.harness import Server, role_conninfo, running_server
from tests.test_cli import REPO, cli

LOGICAL_STEPS = ["provision", "roles", "schema", "publication", "copy", "replicate", "fence", "drain", "cutover_copy",
                 "sequences", "matviews", "verify", "cutover"]  # fmt: skip
BLOCKED_STEPS = ("fence", "drain", "cutover_copy", "sequences", "matviews", "verify", "cutover")


@pytest.fixture()
def source() -> Iterator[Server]:
    with running_server(15, {"wal_level": "logical"}) as server:
        create_legacy_databases(server.dsn, scale_mb=3, passwords=server.add_password)
        yield server


def make_plan(source: Server, local_root: Path, out: Path, *extra: str) -> None:
    result = cli("plan", "--source", source.dsn, "--out", str(out), "--target", "local", "--local-root",
                 str(local_root), "--sample-seconds", "0", "--strategy", "logical", *extra)  # fmt: skip
    assert result.returncode == 0, result.stderr


def status(out: Path) -> dict[str, Any]:
    result = cli("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def app_status(out: Path, name: str) -> dict[str, Any]:
    return next(a for a in status(out)["apps"] if a["name"] == name)


def scalar(conninfo: str, dbname: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with connect(conninfo, dbname=dbname) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def spawn_execute(out: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "consolidator", "execute", str(out), "--yes", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


class Writer(threading.Thread):
    """The app: favourites statuses (insert + counter update in one transaction) and removes some again,
    as its own role, counting only acknowledged commits.

    It leaves ``statuses`` rows alone: the source's materialized view over them would go stale, and
    verification compares it with the target's freshly refreshed one (see the report).
    """

    def __init__(self, conninfo: str) -> None:
        super().__init__(daemon=True, name="writer")
        self.conninfo = conninfo
        self.stop = threading.Event()
        self.inserted: list[int] = []
        self.deleted: set[int] = set()
        self.counts: dict[int, int] = {}  # status id → favourites_count acknowledged
        self.first_failure: float | None = None
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    self._write(conn)
            except psycopg.Error as exc:
                self.first_failure = self.first_failure or time.monotonic()
                self.errors.append(str(exc).strip().splitlines()[0])
                self.stop.wait(0.05)

    def _write(self, conn: psycopg.Connection[Any]) -> None:
        n = len(self.inserted)
        while not self.stop.is_set():
            status_id = 1 + (n * 37) % 5000
            with conn.transaction():
                fav = conn.execute("INSERT INTO favourites (account_id, status_id) VALUES (%s, %s) RETURNING id",
                                   (1 + n % 2000, status_id)).fetchone()  # fmt: skip
                count = conn.execute("UPDATE statuses SET favourites_count = favourites_count + 1 WHERE id = %s "
                                     "RETURNING favourites_count", (status_id,)).fetchone()  # fmt: skip
            assert fav is not None and count is not None
            self.inserted.append(int(fav[0]))
            self.counts[status_id] = int(count[0])
            n += 1
            if n % 10 == 0:
                victim = self.inserted[-5]
                conn.execute("DELETE FROM favourites WHERE id = %s", (victim,))
                self.deleted.add(victim)
            self.stop.wait(0.005)


class TargetProbe(threading.Thread):
    """Once the writer is fenced out, try to log in to the target as the app until cutover opens it."""

    def __init__(self, out: Path, writer: Writer, password: str) -> None:
        super().__init__(daemon=True, name="probe")
        self.out, self.writer, self.password = out, writer, password
        self.stop = threading.Event()
        self.opened: float | None = None

    def run(self) -> None:
        while not self.stop.is_set() and self.opened is None:
            if self.writer.first_failure is None:
                time.sleep(0.01)
                continue
            try:
                state = json.loads((self.out / "state.json").read_text())
                target = state["apps"]["mastodon_production"]["target"]["conninfo"]
                with psycopg.connect(role_conninfo(target, dbname="mastodon_production", role="mastodon",
                                                  password=self.password, connect_timeout="3")) as conn:
                    conn.execute("SELECT 1")
                self.opened = time.monotonic()
            except (OSError, ValueError, KeyError, psycopg.Error):
                time.sleep(0.02)


def test_logical_end_to_end_under_a_writer(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    password = source.password_of("mastodon")
    writer = Writer(make_conninfo(source.conninfo("mastodon_production", "mastodon"), password=password))
    probe = TargetProbe(out, writer, password)
    writer.start()
    probe.start()
    try:
        proc = spawn_execute(out, "--app", "mastodon_production", "--app", "nextcloud")
        _, stderr = proc.communicate(timeout=240)
    finally:
        writer.stop.set()
        writer.join(10)
        probe.join(5)
        probe.stop.set()
    assert proc.returncode == 0, stderr
    masto = app_status(out, "mastodon_production")
    assert masto["state"] == "cut_over" and [s["name"] for s in masto["steps"]] == LOGICAL_STEPS
    assert all(s["state"] == "done" for s in masto["steps"]), masto["steps"]
    target = masto["target"]["conninfo"]

    # every write the source acknowledged before the fence is on the target; the writer was fenced out
    assert writer.first_failure is not None and len(writer.inserted) > 50, writer.errors[:3]
    assert any("CONNECT" in e or "terminat" in e for e in writer.errors), writer.errors[:3]
    kept = [i for i in writer.inserted if i not in writer.deleted]
    assert scalar(target, "mastodon_production", "SELECT count(*) FROM favourites WHERE id = ANY(%s)", (kept,)) \
        == len(kept)  # fmt: skip
    assert scalar(target, "mastodon_production", "SELECT count(*) FROM favourites WHERE id = ANY(%s)",
                  (sorted(writer.deleted),)) == 0  # fmt: skip
    with connect(target, dbname="mastodon_production") as conn:
        counts = dict(conn.execute("SELECT id, favourites_count FROM statuses WHERE id = ANY(%s)",
                                   (list(writer.counts),)).fetchall())  # fmt: skip
    assert all(counts[i] >= value for i, value in writer.counts.items())
    assert scalar(target, "mastodon_production", "SELECT count(*) FROM favourites") == \
        scalar(source.dsn, "mastodon_production", "SELECT count(*) FROM favourites")  # fmt: skip
    # the summary counts streamed rows too (as verified on the target at cutover)
    summary = json.loads((out / "summary.json").read_text())
    tables = {t["table"]: t for a in summary["apps"] if a["name"] == "mastodon_production" for t in a["tables"]}
    favourites = scalar(target, "mastodon_production", "SELECT count(*) FROM favourites")
    assert tables["public.favourites"]["rows"] == favourites > 0

    # what replication does not carry arrived at cutover: no-PK table, unlogged table, large objects
    cloud = app_status(out, "nextcloud")
    assert cloud["state"] == "cut_over", cloud
    ctarget = cloud["target"]["conninfo"]
    for table, rows in (("oc_activity", 10000), ("oc_file_locks", 100)):
        assert scalar(ctarget, "nextcloud", f"SELECT count(*) FROM {table}") == rows
        assert cloud["tables"][f"nextcloud/public.{table}"]["state"] == "done"
    assert scalar(ctarget, "nextcloud", "SELECT count(*) FROM pg_largeobject_metadata") == 50
    assert scalar(ctarget, "nextcloud", "SELECT relpersistence FROM pg_class WHERE relname = 'oc_file_locks'") == "u"
    assert cli("verify", str(out), "--app", "mastodon_production").returncode == 0
    assert cli("verify", str(out), "--app", "nextcloud").returncode == 0

    # credentials: a passfile the target's server user owns, never a password in the subscription or plan dir
    with connect(target, dbname="mastodon_production") as conn:
        subconninfo, enabled = conn.execute("SELECT subconninfo, subenabled FROM pg_subscription").fetchone()
    assert "password" not in subconninfo and SOURCE_PASSFILE in subconninfo and not enabled
    passfile = Path(conninfo_to_dict(subconninfo)["passfile"])
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    secret = source.password_of("postgres")
    for path in out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path

    # the write-blocked window, as the app saw it and as the journal measured it
    assert probe.opened is not None
    seen = probe.opened - writer.first_failure
    state = json.loads((out / "state.json").read_text())["apps"]["mastodon_production"]
    steps = {name: state["steps"][name]["seconds"] for name in BLOCKED_STEPS}
    print(f"\nwrite-blocked window: {seen:.2f}s seen by the app; steps {steps} = {sum(steps.values()):.2f}s")
    assert seen < 15

    # finalize removes slot, publication and subscription (idempotent)
    plan = load_plan(out)
    app = plan.app("mastodon_production")
    name = object_name(app, 0)
    assert scalar(source.dsn, "postgres", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                  (name,)) == 1  # fmt: skip
    done = finalize_logical(plan, app, source.dsn, target)
    assert any("slot" in line for line in done) and finalize_logical(plan, app, source.dsn, target) == []
    assert scalar(source.dsn, "mastodon_production", "SELECT count(*) FROM pg_publication") == 0
    assert scalar(target, "mastodon_production", "SELECT count(*) FROM pg_subscription") == 0
    assert not passfile.exists()
    cli("teardown", str(out), "--yes", "--force")


@pytest.mark.skipif(16 not in available(), reason="needs PostgreSQL 16 binaries (pgserver wheel or Debian)")
def test_logical_across_majors_with_two_databases(source: Server, local_root: Path, tmp_path: Path) -> None:
    """15 → 16, one app of two databases (one subscription each); the 16 build has no pg_trgm: no mastodon."""
    out = tmp_path / "plan"
    make_plan(source, local_root, out, "--target-version", "16", "--map", "keycloak=sso", "--map", "Team Wiki=sso")
    result = cli("execute", str(out), "--yes", "--app", "sso")
    assert result.returncode == 0, result.stderr
    sso = app_status(out, "sso")
    assert sso["state"] == "cut_over" and sorted(sso["databases"]) == ["Team Wiki", "keycloak"]
    target = sso["target"]["conninfo"]
    assert scalar(target, "postgres", "SHOW server_version_num").startswith("16")
    assert scalar(target, "keycloak", "SELECT count(*) FROM user_entity") == 5000
    assert scalar(target, "Team Wiki", "SELECT count(*) FROM pg_subscription WHERE subname LIKE %s",
                  ("%\\_1",)) == 1  # fmt: skip
    assert cli("verify", str(out), "--app", "sso").returncode == 0
    cli("teardown", str(out), "--yes", "--force")


def test_source_without_logical_wal_is_refused_then_resumes(local_root: Path, tmp_path: Path) -> None:
    with running_server(15, {"wal_level": "replica"}) as server:
        create_legacy_databases(server.dsn, scale_mb=3, passwords=server.add_password)
        out = tmp_path / "plan"
        make_plan(server, local_root, out)
        result = cli("execute", str(out), "--yes", "--app", "keycloak")
        assert result.returncode == 4, result.stderr
        assert "wal_level" in result.stderr and "'logical'" in result.stderr, result.stderr
        # nothing half-switched: the source is open, no target was created, no publication exists
        assert not fence.is_closed(server.dsn, "keycloak")
        assert not any(local_root.iterdir())
        assert scalar(server.dsn, "keycloak", "SELECT count(*) FROM pg_publication") == 0
        assert server.instance is not None
        server.instance.write_settings({"wal_level": "logical"})
        server.instance.restart()
        resumed = cli("execute", str(out), "--yes", "--app", "keycloak", "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert app_status(out, "keycloak")["state"] == "cut_over"
        cli("teardown", str(out), "--yes", "--force")


def _subscription_exists(target: str | None, name: str) -> bool:
    if not target:
        return False
    try:
        return bool(scalar(target, "mastodon_production", "SELECT count(*) FROM pg_subscription WHERE subname = %s",
                           (name,)))  # fmt: skip
    except Exception:  # the target database may not exist yet
        return False


def test_kill_during_copy_then_resume(source: Server, local_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    make_plan(source, local_root, out)
    name = object_name(load_plan(out).app("mastodon_production"), 0)
    proc = spawn_execute(out, "--app", "mastodon_production")
    deadline = time.monotonic() + 120
    state_file = out / "state.json"
    killed_in = None
    while time.monotonic() < deadline and proc.poll() is None:
        text = state_file.read_text() if state_file.exists() else ""
        app = json.loads(text)["apps"]["mastodon_production"] if text else {}
        running = [n for n, s in app.get("steps", {}).items() if s["state"] == "running"]
        in_copy = running == ["copy"] and _subscription_exists(app.get("target", {}).get("conninfo"), name)
        if running == ["replicate"] or in_copy:
            killed_in = running[0]
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert killed_in is not None
    target = app_status(out, "mastodon_production")["target"]["conninfo"]
    if killed_in == "copy":  # a broken subscription is dropped and made again from empty tables
        with connect(target, dbname="mastodon_production") as conn:
            conn.execute(f"ALTER SUBSCRIPTION {name} DISABLE")
    resumed = cli("execute", str(out), "--yes", "--resume", "--app", "mastodon_production")
    assert resumed.returncode == 0, resumed.stderr
    if killed_in == "copy":
        assert "creating it again" in resumed.stderr, resumed.stderr
    assert app_status(out, "mastodon_production")["state"] == "cut_over"
    assert cli("verify", str(out), "--app", "mastodon_production").returncode == 0
    print(f"\nkilled during {killed_in}, resumed and verified")
    cli("teardown", str(out), "--yes", "--force")


WEIRD_DB = 'Ünï "Events" DB'
WEIRD_OWNER = "Événement Owner"
LOG_TABLE = ("Mixed Schema", "log entries")


def create_weird_database(server: Server) -> str:
    """Names with spaces, quotes, upper case and non-ASCII; a partitioned table; a table without key."""
    password = secrets.token_urlsafe(12)
    owner, db = sql.Identifier(WEIRD_OWNER), sql.Identifier(WEIRD_DB)
    with connect(server.dsn) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(owner, sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, owner))
    server.add_password(WEIRD_OWNER, password)
    with connect(server.dsn, dbname=WEIRD_DB) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(LOG_TABLE[0]), owner))
        conn.execute(sql.SQL("SET ROLE {}").format(owner))
        conn.execute("""
            CREATE TABLE "Mixed Schema"."Events" (id bigint, "At" timestamptz NOT NULL, payload text,
                PRIMARY KEY (id, "At")) PARTITION BY RANGE ("At");
            CREATE TABLE "Mixed Schema"."Events 2024" PARTITION OF "Mixed Schema"."Events"
                FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
            CREATE TABLE "Mixed Schema"."Events 2025" PARTITION OF "Mixed Schema"."Events"
                FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            INSERT INTO "Mixed Schema"."Events"
              SELECT g, '2024-01-01'::timestamptz + g * interval '4 hours', 'évènement ' || g
                FROM generate_series(1, 3000) g;
            CREATE TABLE "Mixed Schema"."log entries" (msg text, "Level" int);
            INSERT INTO "Mixed Schema"."log entries" SELECT 'entry ' || g, g % 5 FROM generate_series(1, 500) g;
            CREATE TABLE public."Ünïcode" (id serial PRIMARY KEY, "naïve" text);
            INSERT INTO public."Ünïcode" ("naïve") SELECT 'café ' || g FROM generate_series(1, 100) g;
        """)
    return password


def _set_options(out: Path, **options: Any) -> None:
    plan = load_plan(out)
    plan.app(WEIRD_DB).strategy.options.update(options)
    save_plan(plan, out)


def _identity(dsn: str) -> str:
    return str(scalar(dsn, WEIRD_DB, "SELECT relreplident FROM pg_class WHERE oid = %s::regclass",
                      (sql.Identifier(*LOG_TABLE).as_string(None),)))  # fmt: skip


class LogWriter(threading.Thread):
    """Updates and deletes in the key-less table (needs REPLICA IDENTITY FULL) and inserts events."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(daemon=True, name="log-writer")
        self.conninfo = conninfo
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.commits = 0

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    while not self.stop.is_set():
                        n += 1
                        conn.execute('UPDATE "Mixed Schema"."log entries" SET "Level" = "Level" + 1 WHERE msg = %s',
                                     (f"entry {n % 500}",))  # fmt: skip
                        if n % 7 == 0:
                            conn.execute('DELETE FROM "Mixed Schema"."log entries" WHERE msg = %s', (f"entry {n}",))
                        conn.execute('INSERT INTO "Mixed Schema"."Events" VALUES (%s, %s, %s)',
                                     (10000 + n, f"2025-0{1 + n % 9}-01", "live"))  # fmt: skip
                        self.commits += 1
                        self.stop.wait(0.01)
            except psycopg.Error as exc:
                self.errors.append(str(exc).strip().splitlines()[0])
                self.stop.wait(0.05)


def test_identifiers_partitions_and_replica_identity_opt_in(local_root: Path, tmp_path: Path) -> None:
    with running_server(15, {"wal_level": "logical"}) as server:
        password = create_weird_database(server)
        out = tmp_path / "plan"
        make_plan(server, local_root, out)
        options = load_plan(out).app(WEIRD_DB).strategy.options
        assert f"{WEIRD_DB}.{LOG_TABLE[0]}.{LOG_TABLE[1]}" in options["copy_at_cutover"]

        # pretend the key-less table is large: without the opt-in the publication step refuses it
        _set_options(out, copy_at_cutover=[], replica_identity_full=False)
        refused = cli("execute", str(out), "--yes", "--app", WEIRD_DB)
        assert refused.returncode == 1 and "log entries" in refused.stderr, refused.stderr
        assert "replica_identity_full" in refused.stderr
        assert _identity(server.dsn) == "d" and not fence.is_closed(server.dsn, WEIRD_DB)
        assert scalar(server.dsn, WEIRD_DB, "SELECT count(*) FROM pg_publication") == 0

        # with the opt-in it replicates updates and deletes of that table while the app writes
        _set_options(out, replica_identity_full=True)
        writer = LogWriter(make_conninfo(server.conninfo(WEIRD_DB, WEIRD_OWNER), password=password))
        writer.start()
        try:
            result = cli("execute", str(out), "--yes", "--app", WEIRD_DB, "--restart")
        finally:
            writer.stop.set()
            writer.join(10)
        assert result.returncode == 0, result.stderr
        assert writer.commits > 20 and writer.errors, writer.errors
        assert not any("replica identity" in e for e in writer.errors), writer.errors
        app = load_plan(out).app(WEIRD_DB)
        target = app_status(out, app.name)["target"]["conninfo"]
        assert _identity(server.dsn) == "f" and _identity(target) == "f"  # the target mirrors it until finalize
        facts = json.loads((out / "state.json").read_text())["apps"][app.name]["facts"]["logical"]
        assert facts["databases"][WEIRD_DB]["replica_identity"] == [
            {"schema": LOG_TABLE[0], "name": LOG_TABLE[1], "replident": "d", "index": None}]
        assert cli("verify", str(out), "--app", WEIRD_DB).returncode == 0

        # finalize (without the journal: the publication comment remembers) puts the identity back
        finalize_logical(load_plan(out), app, server.dsn, target)
        assert _identity(server.dsn) == "d" and _identity(target) == "d"
        assert scalar(server.dsn, WEIRD_DB, "SELECT count(*) FROM pg_publication") == 0
        cli("teardown", str(out), "--yes", "--force")


def _wait_until_done(out: Path, step: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = json.loads((out / "state.json").read_text())
            if state["apps"]["mastodon_production"]["steps"][step]["state"] == "done":
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)


@pytest.mark.slow
def test_random_kills_under_a_writer_lose_nothing(source: Server, local_root: Path, tmp_path: Path) -> None:
    """kill -9 at random points of execute (CONSOLIDATOR_KILL_TRIALS, default 10), resume, check every ack."""
    import random

    password = source.password_of("mastodon")
    plan_for_names = None
    for trial in range(int(os.environ.get("CONSOLIDATOR_KILL_TRIALS", "10"))):
        out = tmp_path / f"plan{trial}"
        make_plan(source, local_root, out)
        plan_for_names = load_plan(out)
        writer = Writer(make_conninfo(source.conninfo("mastodon_production", "mastodon"), password=password))
        writer.start()
        delay = random.uniform(0.0, 4.5)
        try:
            proc = spawn_execute(out, "--app", "mastodon_production")
            _wait_until_done(out, "provision", proc)  # the local provider's initdb is not what this tests
            try:
                proc.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
            steps = json.loads((out / "state.json").read_text())["apps"]["mastodon_production"]["steps"]
            running = [n for n, s in steps.items() if s["state"] == "running"]
            resumed = cli("execute", str(out), "--yes", "--resume", "--app", "mastodon_production")
            assert resumed.returncode == 0, f"trial {trial} killed after {delay:.1f}s in {running}: {resumed.stderr}"
        finally:
            writer.stop.set()
            writer.join(10)
        target = app_status(out, "mastodon_production")["target"]["conninfo"]
        kept = [i for i in writer.inserted if i not in writer.deleted]
        assert scalar(target, "mastodon_production", "SELECT count(*) FROM favourites WHERE id = ANY(%s)",
                      (kept,)) == len(kept), f"trial {trial}: acknowledged rows missing"  # fmt: skip
        assert cli("verify", str(out), "--app", "mastodon_production").returncode == 0
        print(f"\ntrial {trial}: killed after {delay:.1f}s in {running or 'nothing (finished)'}; "
              f"{len(kept)} acknowledged rows on the target")
        assert cli("rollback", str(out), "--app", "mastodon_production").returncode == 0
        finalize_logical(plan_for_names, plan_for_names.app("mastodon_production"), source.dsn, target)
        cli("teardown", str(out), "--yes", "--force")
