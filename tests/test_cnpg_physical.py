"""Physical on CloudNativePG: the source checks against a real server, the replica Cluster against the fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq
from psycopg.conninfo import make_conninfo

from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.cnpg_physical import check_source, is_local_address, required_roles
from consolidator.engine.physical import RoleRow, roles_to_drop
from consolidator.errors import PreconditionError, StepFailed
from consolidator.pg.connect import connect
from consolidator.plan.model import Plan
from tests.cnpg_schema import validate_object
from tests.harness import Server, running_server
from tests.kube_fake import Clock, FakeKube, cnpg_example_plan, fake_password_hash

NS = "apps"
CNPG = "postgresql.cnpg.io/v1"
APP = "Team Wiki"
LOGIN = "replicator"
LOGIN_PASSWORD = "repl-Secret:pw"
SUPERUSER_PASSWORD = "Sup3r-secret-pw"
SENDERS = 3


@pytest.fixture(scope="module")
def source() -> Iterator[Server]:
    """A legacy server with few WAL senders, a replication login and a pg_hba rule for the pod network."""
    with running_server(15, {"wal_level": "replica", "max_wal_senders": str(SENDERS)}) as server:
        with connect(server.dsn, dbname="postgres") as conn:
            conn.execute(f"CREATE ROLE {LOGIN} LOGIN REPLICATION PASSWORD '{LOGIN_PASSWORD}'")
            conn.execute("CREATE ROLE norepl LOGIN PASSWORD 'x'")
            conn.execute("CREATE ROLE hostonly LOGIN REPLICATION PASSWORD 'x'")
            # keep every line; add remote replication rules for two logins (hostonly gets loopback only)
            # COPY TO truncates the file before its query runs: read the lines first
            conn.execute("""CREATE TEMP TABLE hba AS
                            SELECT line, n FROM regexp_split_to_table(pg_read_file(current_setting('hba_file')),
                                                                      E'\\n') WITH ORDINALITY AS t(line, n)
                            UNION ALL SELECT 'host replication replicator 10.0.0.0/8 scram-sha-256', 1000000
                            UNION ALL SELECT 'host replication norepl all scram-sha-256', 1000001""")  # fmt: skip
            conn.execute(f"COPY (SELECT line FROM hba ORDER BY n) TO '{_hba_file(conn)}'")
            conn.execute("SELECT pg_reload_conf()")
            errors = conn.execute("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").fetchone()
            assert errors == (0,)
        server.add_password(LOGIN, LOGIN_PASSWORD)
        yield server


def _hba_file(conn: Any) -> str:
    row = conn.execute("SELECT current_setting('hba_file')").fetchone()
    return str(row[0]).replace("'", "''")


def make_plan(source: Server, *, user: str = LOGIN, instances: int = 1) -> Plan:
    plan = cnpg_example_plan(NS)
    plan.target.version = plan.server.major = source.major
    params = {k: v for k, v in _params(source.dsn).items() if k in ("host", "port")}
    plan.source.conninfo = make_conninfo(**params, user=user, dbname="postgres")
    plan.app(APP).sizing.instances.value = instances
    return plan


def _params(dsn: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(dsn)


@pytest.fixture()
def cnpg_roles(source: Server) -> Iterator[None]:
    with connect(source.dsn, dbname="postgres") as conn:
        conn.execute("CREATE ROLE streaming_replica WITH LOGIN REPLICATION")
        conn.execute("CREATE ROLE cnpg_metrics_exporter WITH LOGIN")
        conn.execute("GRANT pg_monitor TO cnpg_metrics_exporter")
    try:
        yield
    finally:
        with connect(source.dsn, dbname="postgres") as conn:
            conn.execute("DROP ROLE streaming_replica")
            conn.execute("DROP ROLE cnpg_metrics_exporter")


# --------------------------------------------------------------------------- source checks (real server)


def test_source_checks_happy_path(source: Server, cnpg_roles: None) -> None:
    plan = make_plan(source, instances=2)
    found = check_source(plan, plan.app(APP), source.dsn, (1, 30, 0))
    assert found.major == source.major and found.user == LOGIN
    assert found.free_senders == SENDERS
    assert found.hba_rule is not None and "replication replicator 10.0.0.0/255.0.0.0" in found.hba_rule
    assert found.notes == []


def test_source_check_refuses_login_without_replication(source: Server) -> None:
    plan = make_plan(source, user="norepl")
    with pytest.raises(PreconditionError) as info:
        check_source(plan, plan.app(APP), source.dsn)
    assert "replication role check failed" in info.value.message and "'norepl'" in info.value.message
    assert info.value.hint == 'ALTER ROLE "norepl" REPLICATION; on the source'


def test_source_check_refuses_loopback_only_hba(source: Server) -> None:
    plan = make_plan(source, user="hostonly")
    with pytest.raises(PreconditionError) as info:
        check_source(plan, plan.app(APP), source.dsn)
    assert "pg_hba check failed" in info.value.message
    assert "hostssl replication \"hostonly\" <the Kubernetes pod network CIDR>" in (info.value.hint or "")


def test_source_check_refuses_too_few_free_wal_senders(source: Server) -> None:
    plan = make_plan(source)
    conninfo = make_conninfo(source.dsn, replication="true", application_name="other-standby").encode()
    held = [pq.PGconn.connect(conninfo) for _ in range(SENDERS - 1)]  # leaves 1 free; the backup needs 2
    try:
        assert all(c.status == pq.ConnStatus.OK for c in held)
        with pytest.raises(PreconditionError) as info:
            check_source(plan, plan.app(APP), source.dsn)
    finally:
        for conn in held:
            conn.finish()
    assert "WAL senders check failed: 1 of max_wal_senders = 3 free" in info.value.message
    assert "ALTER SYSTEM SET max_wal_senders" in (info.value.hint or "")
    # more instances than senders: refused on the setting alone
    plan = make_plan(source, instances=4)
    with pytest.raises(PreconditionError, match="needs 4"):
        check_source(plan, plan.app(APP), source.dsn, (1, 28, 0))


def test_source_check_requires_cnpg_roles_for_several_instances(source: Server) -> None:
    plan = make_plan(source, instances=2)
    with pytest.raises(PreconditionError) as info:
        check_source(plan, plan.app(APP), source.dsn, (1, 30, 0))
    assert "CNPG roles check failed: streaming_replica, cnpg_metrics_exporter missing" in info.value.message
    assert "#11327" in info.value.message
    assert "CREATE ROLE streaming_replica WITH LOGIN REPLICATION;" in (info.value.hint or "")
    assert "GRANT pg_monitor TO cnpg_metrics_exporter;" in (info.value.hint or "")
    # before 1.29.1 the exporter role is not needed; a single instance needs none
    with pytest.raises(PreconditionError) as info:
        check_source(plan, plan.app(APP), source.dsn, (1, 28, 3))
    assert "cnpg_metrics_exporter" not in info.value.message
    single = make_plan(source, instances=1)
    assert check_source(single, single.app(APP), source.dsn).free_senders == SENDERS


def test_source_check_refuses_other_major(source: Server) -> None:
    plan = make_plan(source)
    plan.target.version = source.major + 1
    with pytest.raises(PreconditionError) as info:
        check_source(plan, plan.app(APP), source.dsn)
    assert "same-major check failed" in info.value.message
    assert f"runs PostgreSQL {source.major}, the plan's target {source.major + 1}" in info.value.message
    assert f"--target-version {source.major}" in (info.value.hint or "")


def test_helpers() -> None:
    assert is_local_address("127.0.0.1", "255.255.255.255") and is_local_address("::1", "ffff:" * 7 + "ffff")
    assert is_local_address("samehost", None) and is_local_address("localhost", None)
    assert not is_local_address("10.0.0.0", "255.0.0.0") and not is_local_address("all", None)
    assert not is_local_address("0.0.0.0", "0.0.0.0") and not is_local_address("pg-net.example", None)
    assert required_roles(1, None) == {}
    assert set(required_roles(3, None)) == {"streaming_replica", "cnpg_metrics_exporter"}
    assert set(required_roles(3, (1, 29, 0))) == {"streaming_replica"}
    # drop_foreign never drops CloudNativePG's roles that a clone carries
    drop, kept = roles_to_drop([RoleRow("streaming_replica"), RoleRow("cnpg_metrics_exporter"), RoleRow("old")],
                               set(), set(), "postgres")  # fmt: skip
    assert drop == ["old"] and set(kept) == {"streaming_replica", "cnpg_metrics_exporter"}


# --------------------------------------------------------------------------- provider flow (fake Kubernetes)


@pytest.fixture()
def kube() -> FakeKube:
    fake = FakeKube()
    fake.install_cnpg("1.30.0")
    fake.add_namespace(NS)
    return fake


def provider(kube: FakeKube, clock: Clock, plan_dir: Path) -> CnpgProvider:
    return CnpgProvider(plan_dir, kube, poll_interval=2.0, ready_timeout=60, sleep=clock.sleep,
                        password_hash=fake_password_hash,
                        clock=lambda: clock.now, in_cluster=False)  # fmt: skip


def play_operator(kube: FakeKube, statuses: list[dict[str, Any]]) -> None:
    def react(fake: FakeKube, cluster: dict[str, Any]) -> None:
        meta = cluster["metadata"]
        fake.add_secret(f"{meta['name']}-superuser", meta["namespace"],
                        {"username": "postgres", "password": SUPERUSER_PASSWORD})  # fmt: skip
        fake.script_status(CNPG, "Cluster", meta["namespace"], meta["name"], statuses)

    kube.on_apply("Cluster", react)


def test_provision_standby_applies_a_replica_cluster_then_promote_switches_login(
    source: Server, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", LOGIN_PASSWORD)  # how the tool finds the externalClusters password
    plan = make_plan(source)
    app = plan.app(APP)
    clock = Clock()
    booting = {"phase": "Setting up primary", "readyInstances": 0}
    play_operator(kube, [booting, booting, {"phase": "Cluster in healthy state", "readyInstances": 1,
                                            "currentPrimary": "team-wiki-1", "timelineID": 1}])  # fmt: skip
    prov = provider(kube, clock, tmp_path)
    handle = prov.provision_standby(plan, app, source.dsn)

    assert kube.applied and all(validate_object(obj) is None for obj in kube.applied)
    cluster = kube.get(CNPG, "Cluster", "team-wiki", NS)
    assert cluster is not None
    spec = cluster["spec"]
    assert spec["replica"] == {"enabled": True, "source": "legacy"}
    assert spec["bootstrap"] == {"pg_basebackup": {"source": "legacy"}}
    assert spec["externalClusters"][0]["connectionParameters"]["user"] == LOGIN
    assert kube.read_secret(plan.source.password_secret, NS) == {"username": LOGIN, "password": LOGIN_PASSWORD}
    assert clock.sleeps == 2  # waited through the base backup
    # in replica mode the clone only knows the source's roles: the handle logs in as the source login
    assert handle.superuser == LOGIN and handle.passfile == str(tmp_path / "work" / "team-wiki" / "source-login.pgpass")
    assert Path(handle.passfile).read_text() == f"*:*:*:{LOGIN}:repl-Secret\\:pw\n"
    assert "host=127.0.0.1" in handle.conninfo and "password=" not in handle.conninfo
    assert prov.describe(plan, app).superuser == LOGIN  # type: ignore[union-attr]

    kube.script_status(CNPG, "Cluster", NS, "team-wiki", [
        {"phase": "Cluster in healthy state", "readyInstances": 1, "currentPrimary": "team-wiki-1", "timelineID": 1},
        {"phase": "Promoting", "timelineID": 2},
        {"phase": "Cluster in healthy state", "readyInstances": 1, "currentPrimary": "team-wiki-1", "timelineID": 2},
    ])  # fmt: skip
    prov.promote(plan, app)
    assert ("merge_patch", "Cluster", NS, "team-wiki") in kube.calls
    live = kube.get(CNPG, "Cluster", "team-wiki", NS)
    assert live is not None and live["spec"]["replica"] == {"enabled": False, "source": "legacy"}
    after = prov.wait_ready(plan, app)  # what the physical strategy's promote step reads next
    assert after.superuser == "postgres" and after.passfile is not None and after.passfile.endswith("superuser.pgpass")


def test_provision_standby_checks_the_source_before_applying(source: Server, kube: FakeKube, tmp_path: Path) -> None:
    plan = make_plan(source, instances=2)
    with pytest.raises(PreconditionError, match="CNPG roles check failed"):
        provider(kube, Clock(), tmp_path).provision_standby(plan, plan.app(APP), source.dsn)
    assert kube.applied == []


def test_provision_standby_surfaces_a_failed_base_backup_job(
    source: Server, kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", LOGIN_PASSWORD)
    plan = make_plan(source)
    play_operator(kube, [{"phase": "Setting up primary", "readyInstances": 0}])
    kube.put({"apiVersion": "batch/v1", "kind": "Job",
              "metadata": {"name": "team-wiki-1-pgbasebackup", "namespace": NS,
                           "labels": {"cnpg.io/cluster": "team-wiki"}},
              "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}]}})  # fmt: skip
    with pytest.raises(StepFailed) as info:
        provider(kube, Clock(), tmp_path).provision_standby(plan, plan.app(APP), source.dsn)
    assert "job team-wiki-1-pgbasebackup failed" in info.value.message
    assert "logs job/team-wiki-1-pgbasebackup" in (info.value.hint or "")
