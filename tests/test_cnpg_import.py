"""The import strategy: registered, cnpg only, a failed import Job surfaces, a finished one hands over a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.executor import strategy_for
from consolidator.engine.imported import ImportStrategy, acl_list, align_owners
from consolidator.engine.journal import Journal
from consolidator.engine.local import LocalProvider
from consolidator.engine.provider import TargetHandle
from consolidator.engine.run import AppRun
from consolidator.errors import ConfigError, StepFailed
from consolidator.pg.connect import connect
from consolidator.plan.estimates import SizeFacts
from consolidator.plan.model import Plan
from consolidator.plan.steps import build_steps
from tests.harness import Server
from tests.kube_fake import Clock, FakeKube, cnpg_example_plan, fake_password_hash

NS = "apps"
CNPG = "postgresql.cnpg.io/v1"
APP = "keycloak"


def import_plan(tmp_path: Path) -> Plan:
    plan = cnpg_example_plan(NS)
    app = plan.app(APP)
    app.strategy.name = "import"
    app.steps = build_steps(APP, "import", SizeFacts(1, 0, 1, 1))
    (tmp_path / "plan.yaml").write_text("plan: for the journal digest\n")
    return plan


def make_run(plan: Plan, provider: object, tmp_path: Path) -> AppRun:
    journal = Journal.create(tmp_path, [a.name for a in plan.apps])
    return AppRun(plan=plan, app=plan.app(APP), plan_dir=tmp_path, source_dsn=plan.source.conninfo,
                  provider=provider, journal=journal)  # type: ignore[arg-type]  # fmt: skip


def test_import_is_registered_and_runs_exactly_the_planned_steps(tmp_path: Path) -> None:
    plan = import_plan(tmp_path)
    strategy = strategy_for(plan.app(APP))
    assert isinstance(strategy, ImportStrategy)
    names = [s.name for s in plan.app(APP).steps]
    assert names == ["fence", "provision", "roles", "privileges", "sequences", "verify", "cutover"]
    assert all(callable(getattr(strategy, f"step_{n}", None)) for n in names)


def test_import_refuses_a_local_target_before_touching_anything(tmp_path: Path) -> None:
    plan = import_plan(tmp_path)
    run = make_run(plan, LocalProvider(tmp_path / "targets"), tmp_path)
    with pytest.raises(ConfigError) as info:
        ImportStrategy().run_step(run, "fence")
    assert "needs a cnpg target, not local" in info.value.message
    assert "dump or logical" in (info.value.hint or "")
    assert not (tmp_path / "targets").exists()


def test_failed_import_job_surfaces_the_operators_message(tmp_path: Path) -> None:
    plan = import_plan(tmp_path)
    kube = FakeKube()
    kube.install_cnpg("1.30.0")
    kube.add_namespace(NS)
    kube.add_secret(plan.source.password_secret, NS, {"username": "postgres", "password": "pw"})

    def operator(fake: FakeKube, cluster: dict) -> None:  # type: ignore[type-arg]
        meta = cluster["metadata"]
        fake.script_status(CNPG, "Cluster", NS, meta["name"], [{"phase": "Setting up primary", "readyInstances": 0}])
        fake.put({"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": {"name": f"{meta['name']}-1-import", "namespace": NS,
                               "labels": {"cnpg.io/cluster": meta["name"]}},
                  "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                             "message": "pg_restore: error: could not execute query: ERROR: role "
                                             "\"keycloak_ro\" does not exist"}]}})  # fmt: skip

    kube.on_apply("Cluster", operator)
    clock = Clock()
    provider = CnpgProvider(tmp_path, kube, poll_interval=2.0, ready_timeout=60, sleep=clock.sleep,
                            password_hash=fake_password_hash,
                            clock=lambda: clock.now, in_cluster=True)  # fmt: skip
    run = make_run(plan, provider, tmp_path)
    with pytest.raises(StepFailed) as info:
        ImportStrategy().run_step(run, "provision")
    assert "job keycloak-1-import failed: pg_restore: error" in info.value.message
    assert 'role "keycloak_ro" does not exist' in info.value.message
    assert "kubectl -n apps logs job/keycloak-1-import" in (info.value.hint or "")
    applied = kube.get(CNPG, "Cluster", "keycloak", NS)
    assert applied is not None and applied["spec"]["bootstrap"]["initdb"]["import"]["databases"] == ["keycloak"]
    assert applied["spec"]["enableSuperuserAccess"] is True  # the fix-ups and verify log in as superuser


class ReadyCnpg(CnpgProvider):
    """A cnpg provider whose Cluster finished importing into a real server standing in for it."""

    def __init__(self, handle: TargetHandle) -> None:
        super().__init__(None, FakeKube())
        self.handle = handle

    def provision(self, plan: Plan, app: object) -> TargetHandle:  # type: ignore[override]
        return self.handle


def test_finished_import_is_journaled_and_checked(tmp_path: Path, scratch: Server) -> None:
    plan = import_plan(tmp_path)
    handle = TargetHandle(cluster="keycloak", conninfo=scratch.dsn, passfile=None, major=scratch.major)
    run = make_run(plan, ReadyCnpg(handle), tmp_path)
    with pytest.raises(StepFailed, match="database 'keycloak' was not imported"):
        ImportStrategy().run_step(run, "provision")
    with connect(scratch.dsn, dbname="postgres") as conn:
        conn.execute("CREATE DATABASE keycloak")
    ImportStrategy().run_step(run, "provision")
    assert run.journal.app(APP).target["conninfo"] == scratch.dsn


def test_privilege_helpers() -> None:
    toc = ("; Archive created at …\n"
           "215; 2615 2200 SCHEMA - public pg_database_owner\n"
           "3401; 0 0 ACL - SCHEMA public pg_database_owner\n"
           "3402; 0 0 ACL public TABLE orders app\n"
           "3403; 826 16420 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES app\n"
           "220; 1259 16390 TABLE public orders app\n")  # fmt: skip
    assert acl_list(toc).splitlines() == [
        "3401; 0 0 ACL - SCHEMA public pg_database_owner", "3402; 0 0 ACL public TABLE orders app",
        "3403; 826 16420 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES app"]  # fmt: skip
    source = {("TABLE", "public.orders"): "billing", ("ROUTINE", "public.f(integer)"): "postgres_admin",
              ("VIEW", "public.v"): "ghost", ("TABLE", "public.gone"): "billing"}  # fmt: skip
    target = {("TABLE", "public.orders"): "app", ("ROUTINE", "public.f(integer)"): "postgres",
              ("VIEW", "public.v"): "app"}  # fmt: skip
    statements, warnings = align_owners(source, target, {"postgres_admin": "postgres"}, {"app", "billing", "postgres"})
    assert [s.as_string(None) for s in statements] == ['ALTER TABLE public.orders OWNER TO "billing"']
    assert warnings == ["warning: view public.v: owner 'ghost' does not exist on the target (kept 'app'); add the "
                        "role to the app's roles"]  # fmt: skip


def test_privileges_step_restores_owners_and_grants_a_microservice_import_drops(tmp_path: Path,
                                                                                scratch: Server) -> None:  # fmt: skip
    """One real server stands in for both sides: ``src`` as on the legacy server, ``dst`` as imported."""
    from consolidator.plan.model import AppDatabase

    with connect(scratch.dsn, dbname="postgres") as conn:
        conn.execute("CREATE ROLE kc_owner NOLOGIN")
        conn.execute("CREATE ROLE kc_reader NOLOGIN")
        conn.execute("CREATE DATABASE src")
        conn.execute("CREATE DATABASE dst")
    with connect(scratch.dsn, dbname="src") as conn:
        conn.execute("CREATE SCHEMA kc AUTHORIZATION kc_owner")
        conn.execute("CREATE TABLE kc.realm (id serial PRIMARY KEY, name text)")
        conn.execute("CREATE FUNCTION kc.one() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("ALTER TABLE kc.realm OWNER TO kc_owner")
        conn.execute("ALTER FUNCTION kc.one() OWNER TO kc_owner")
        conn.execute("GRANT USAGE ON SCHEMA kc TO kc_reader")
        conn.execute("GRANT SELECT ON kc.realm TO kc_reader")
        conn.execute("ALTER DEFAULT PRIVILEGES FOR ROLE kc_owner IN SCHEMA kc GRANT SELECT ON TABLES TO kc_reader")
    with connect(scratch.dsn, dbname="dst") as conn:  # what --no-owner --no-privileges leaves
        conn.execute("CREATE SCHEMA kc")
        conn.execute("CREATE TABLE kc.realm (id serial PRIMARY KEY, name text)")
        conn.execute("CREATE FUNCTION kc.one() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    plan = import_plan(tmp_path)
    plan.app(APP).databases = [AppDatabase(source="src", target="dst", owner="kc_owner")]
    handle = TargetHandle(cluster="keycloak", conninfo=scratch.dsn, passfile=None, major=scratch.major)
    run = make_run(plan, ReadyCnpg(handle), tmp_path)
    run.source_dsn = scratch.dsn
    run.target = handle
    for _ in range(2):  # idempotent
        ImportStrategy().run_step(run, "privileges")
    with connect(scratch.dsn, dbname="dst") as conn:
        owners = conn.execute("""
            SELECT (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'kc'),
                   (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'kc.realm'::regclass),
                   (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'kc.realm_id_seq'::regclass),
                   (SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'kc.one()'::regprocedure)""").fetchone()
        assert owners == ("kc_owner",) * 4
        assert conn.execute("SELECT has_table_privilege('kc_reader', 'kc.realm', 'SELECT'), "
                            "has_schema_privilege('kc_reader', 'kc', 'USAGE')").fetchone() == (True, True)
        assert conn.execute("SELECT count(*) FROM pg_default_acl").fetchone() == (1,)
