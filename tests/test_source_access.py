"""How a target server reaches the source (a subscription's connection), per provider: never a password
in the conninfo; on CloudNativePG the externalClusters address and the pgpass the operator writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from consolidator.engine.cnpg import CnpgProvider
from consolidator.engine.journal import Journal
from consolidator.engine.local import LocalProvider
from consolidator.engine.replication import SOURCE_PASSFILE, subscription_conninfo
from consolidator.engine.run import AppRun
from consolidator.plan.store import load_plan
from tests.harness import Server
from tests.kube_fake import EXAMPLE_PLAN, FakeKube, cnpg_example_plan


def test_local_target_gets_a_private_passfile(tmp_path: Path) -> None:
    plan = load_plan(EXAMPLE_PLAN)
    app = plan.apps[0]
    provider = LocalProvider(tmp_path)
    (tmp_path / app.cluster_name).mkdir()
    access = provider.source_access(plan, app, host="db.example", port="5433", user="mig:r", password="p:w\\x")
    passfile = Path(access["passfile"])
    assert set(access) == {"passfile"} and passfile == tmp_path / app.cluster_name / SOURCE_PASSFILE
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    assert passfile.read_text() == "db.example:5433:*:mig\\:r:p\\:w\\\\x\n"
    assert provider.source_access(plan, app, host="h", port="1", user="u", password=None) == {}


def test_cnpg_subscription_uses_the_cluster_address_and_the_operator_pgpass(scratch: Server, tmp_path: Path) -> None:
    plan = cnpg_example_plan("default")  # the example's own namespace
    plan.source.conninfo = "host=legacy.example port=5432 user=migrator dbname=postgres sslmode=prefer"
    plan.source.cluster_address = "legacy-pg.db.svc:6432"
    app = plan.apps[0]
    shutil.copy(EXAMPLE_PLAN / "plan.yaml", tmp_path / "plan.yaml")  # the journal records the plan's digest
    run = AppRun(plan=plan, app=app, plan_dir=tmp_path, source_dsn=scratch.dsn,
                 provider=CnpgProvider(tmp_path, FakeKube()), journal=Journal.create(tmp_path, [app.name]))
    conninfo = subscription_conninfo(run, "postgres")
    params = conninfo_to_dict(conninfo)
    assert (params["host"], params["port"], params["user"]) == ("legacy-pg.db.svc", "6432", "migrator")
    assert params["passfile"] == "/controller/external/legacy/pgpass" and params["dbname"] == "postgres"
    assert params["sslmode"] == "prefer" and "password" not in params
    password = scratch.password_of(conninfo_to_dict(scratch.dsn)["user"])
    assert password not in conninfo
    assert not any(password in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert os.environ.get("PGPASSWORD") is None or os.environ["PGPASSWORD"] not in conninfo


def test_role_secrets_carry_the_source_hash(scratch: Server, tmp_path: Path) -> None:
    """CloudNativePG reconciles managed roles from their Secrets: they must hold the source's verifier, or the
    operator would replace the password the roles step copied."""
    from psycopg import sql

    from consolidator.engine.cnpg import GENERATED_ANNOTATION, source_password_hash
    from consolidator.pg.connect import connect

    with connect(scratch.dsn) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'kc-secret'").format(sql.Identifier("kéy cloak")))
        conn.execute("CREATE ROLE nopass LOGIN")
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'kéy cloak'").fetchone()[0]
    plan = cnpg_example_plan("default")
    plan.source.conninfo = scratch.dsn
    assert verifier.startswith("SCRAM-SHA-256$") and source_password_hash(plan, "kéy cloak") == verifier
    assert source_password_hash(plan, "nopass") is None
    provider = CnpgProvider(tmp_path, FakeKube())  # the real lookup
    template = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                "metadata": {"name": "kc", "namespace": "default", "annotations": {}}}  # fmt: skip
    filled = provider._fill_secret(plan, {**template, "stringData": {"username": "kéy cloak"}})
    assert filled["stringData"]["password"] == verifier
    generated = provider._fill_secret(plan, {**template, "stringData": {"username": "nopass"}})
    assert len(generated["stringData"]["password"]) >= 24
    assert generated["metadata"]["annotations"][GENERATED_ANNOTATION] == "true"
