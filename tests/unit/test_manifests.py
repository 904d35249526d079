"""CNPG manifests: every rendered object passes the strict CRD schema and the admission rules."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from consolidator.errors import ConfigError
from consolidator.manifests.admission import check_objects, image_tag, is_fixed_parameter, pg_memory_bytes
from consolidator.manifests.render import (
    check_plan,
    dns_slug,
    kustomization_for,
    label_value,
    layout,
    parse_conninfo,
    render_app,
    server_name,
    source_connection_parameters,
    write_manifests,
)
from consolidator.plan.model import (
    App,
    AppDatabase,
    BackupTarget,
    Fingerprint,
    Plan,
    PoolerSizing,
    RoleSpec,
    ServerSummary,
    Sizing,
    SizingEvidence,
    SourceRef,
    Strategy,
    Target,
    Value,
)
from tests.cnpg_schema import SchemaError, validate_kustomization, validate_object

SOURCE_PASSWORD = "hunter2-should-never-leak"
QUOTED_ROLE = 'o\'brien "quoted"'
UNICODE_ROLE = "ünïcode role"
SPACED_ROLE = "crm owner"


def _sizing(
    instances: int, cpu: str, memory: str, *, wal: str | None = "2Gi", pooler: PoolerSizing | None = None
) -> Sizing:
    return Sizing(
        instances=Value(instances, "test"),
        cpu=Value(cpu, "test"),
        memory=Value(memory, "test"),
        storage=Value("20Gi", "test"),
        wal_storage=Value(wal, "test"),
        max_connections=Value(120, "test"),
        pooler=pooler or PoolerSizing(),
        parameters={
            "shared_buffers": Value("256MB", "25% of memory"),
            "work_mem": Value("8MB", "test"),
            "random_page_cost": Value(1.1, "ssd"),
            "jit": Value(False, "oltp"),
            "effective_io_concurrency": Value(200, "ssd"),
        },
    )


def _billing() -> App:
    """Import (microservice), pooler, ICU locale, two instances."""
    return App(
        name="billing",
        cluster_name="billing",
        namespace="db",
        databases=[
            AppDatabase(
                source="billing_prod",
                target="billing",
                owner="billing_owner",
                collate="en_US.UTF-8",
                ctype="en_US.UTF-8",
                locale_provider="icu",
                icu_locale="en-US",
            )
        ],
        evidence=SizingEvidence(),
        sizing=_sizing(
            2,
            "1",
            "1Gi",
            pooler=PoolerSizing(
                enabled=True, instances=2, pool_mode="transaction", default_pool_size=20, max_client_conn=500
            ),
        ),
        strategy=Strategy(name="import", options={"jobs": 4}),
        roles=[RoleSpec(name="billing_owner", login=True, password_type="scram-sha-256")],
        extensions=["pg_stat_statements", "pgcrypto"],
    )


def _wiki() -> App:
    """Single-instance dump app with a read-only role."""
    return App(
        name="wiki",
        cluster_name="wiki",
        namespace="wiki",
        databases=[AppDatabase(source="wiki", target="wiki", owner="wiki_owner")],
        evidence=SizingEvidence(),
        sizing=_sizing(1, "500m", "512Mi", wal=None),
        strategy=Strategy(name="dump"),
        roles=[
            RoleSpec(name="wiki_owner", login=True, password_secret="wiki-owner-credentials"),
            RoleSpec(
                name="wiki_ro",
                login=True,
                connection_limit=10,
                valid_until="2030-01-01 00:00:00+00",
                member_of=["pg_read_all_data", "wiki_owner", "gone_role"],
            ),
            RoleSpec(name="postgres", login=True, superuser=True),
        ],
    )


def _crm() -> App:
    """Monolith import, two databases, role names with spaces, quotes and non-ASCII."""
    return App(
        name="crm",
        cluster_name="crm",
        namespace="db",
        databases=[
            AppDatabase(source="crm_main", target="crm_main", owner=SPACED_ROLE),
            AppDatabase(source="crm_archive", target="crm_archive", owner=SPACED_ROLE),
        ],
        evidence=SizingEvidence(),
        sizing=_sizing(3, "2", "4Gi"),
        strategy=Strategy(name="import"),
        roles=[
            RoleSpec(name=SPACED_ROLE, login=False, createdb=True),
            RoleSpec(name=QUOTED_ROLE, login=True, password_type="md5", member_of=[SPACED_ROLE]),
            RoleSpec(name=UNICODE_ROLE, login=True, password_type="scram-sha-256", superuser=True),
            RoleSpec(name="ÜNÏCODE ROLE", login=True, password_type="unknown"),
        ],
    )


def _plan(*apps: App, attempt: str = "a1") -> Plan:
    return Plan(
        tool_version="0.1.0",
        created_at="2026-08-21T10:12:00Z",
        source=SourceRef(
            conninfo=f"host=pg-legacy.example port=5433 user=migrator dbname=postgres sslmode=require "
            f"password='{SOURCE_PASSWORD}'",
        ),
        fingerprint=Fingerprint(system_identifier="7400000000000000001", version="15.8", version_num=150008),
        server=ServerSummary(
            host="pg-legacy.example",
            port=5433,
            version="15.8",
            major=15,
            system_identifier="7400000000000000001",
            database_count=4,
            total_bytes=10 * 1024**3,
            is_superuser=True,
            sample_seconds=60.0,
        ),
        target=Target(
            provider="cnpg",
            namespace="db",
            version=17,
            storage_class="fast-ssd",
            image_type="standard",
            backup=BackupTarget(
                destination_path="s3://pg-backups/consolidator",
                endpoint_url="https://minio.example:9000",
                attempt=attempt,
            ),
            pod_monitor=True,
            network_policy=True,
            app_namespaces=["shop", "web"],
            priority_class="pg-critical",
        ),
        apps=list(apps) or [_billing(), _wiki(), _crm()],
    )


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _cluster(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cluster,) = _by_kind(objects, "Cluster")
    return cluster


@pytest.fixture
def plan() -> Plan:
    return _plan()


@pytest.fixture
def rendered(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    return {app.name: render_app(plan, app) for app in plan.apps}


# --------------------------------------------------------------------------- schema + admission


def test_every_rendered_object_validates_and_passes_admission(
    plan: Plan, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    everything = [obj for objects in layout(plan).values() for obj in objects]
    for obj in everything:
        validate_object(obj)
    assert check_objects(everything, major=17) == []
    kinds = {o["kind"] for o in rendered["billing"]}
    assert kinds == {
        "PriorityClass",
        "Secret",
        "ObjectStore",
        "Cluster",
        "Pooler",
        "ScheduledBackup",
        "PodMonitor",
        "NetworkPolicy",
    }


def test_every_strategy_renders_valid_objects() -> None:
    for name in ("dump", "logical", "physical", "import"):
        app = _wiki()
        app.strategy = Strategy(name=name)
        plan = _plan(app)
        plan.target.version = 15 if name == "physical" else 17  # a clone keeps the source major
        objects = render_app(plan, app)
        for obj in objects:
            validate_object(obj)
        assert check_objects(objects, major=plan.target.version) == [], name


def test_validator_rejects_unknown_fields_and_bad_enums(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cluster = copy.deepcopy(_cluster(rendered["billing"]))
    cluster["spec"]["instancez"] = 3
    with pytest.raises(SchemaError, match="instancez"):
        validate_object(cluster)

    nested = copy.deepcopy(_cluster(rendered["wiki"]))
    nested["spec"]["managed"]["roles"][0]["superUser"] = False
    with pytest.raises(SchemaError, match="superUser"):
        validate_object(nested)

    (pooler,) = _by_kind(copy.deepcopy(rendered["billing"]), "Pooler")
    pooler["spec"]["type"] = "rx"
    with pytest.raises(SchemaError, match="rx"):
        validate_object(pooler)

    (backup,) = _by_kind(copy.deepcopy(rendered["billing"]), "ScheduledBackup")
    backup["spec"]["method"] = "snapshot"
    with pytest.raises(SchemaError):
        validate_object(backup)

    secret = copy.deepcopy(_by_kind(rendered["wiki"], "Secret")[0])
    secret["spec"] = {}
    with pytest.raises(SchemaError, match="spec"):
        validate_object(secret)

    with pytest.raises(SchemaError):
        validate_kustomization({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"})


def test_admission_catches_webhook_rules(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = copy.deepcopy(rendered["billing"])
    cluster = _cluster(objects)
    (pooler,) = _by_kind(objects, "Pooler")

    long_name = "a" * 51
    renamed = copy.deepcopy(cluster)
    renamed["metadata"]["name"] = long_name
    assert any(long_name in m and "50" in m for m in check_objects([renamed]))

    pooler["metadata"]["name"] = cluster["metadata"]["name"]
    assert any(m.startswith("Pooler db/billing:") and "collides" in m for m in check_objects(objects))
    pooler["metadata"]["name"] = "billing-rw"  # the Cluster's own Service
    assert any("collides" in m for m in check_objects(objects))

    small = copy.deepcopy(cluster)
    small["spec"]["postgresql"]["parameters"]["shared_buffers"] = "1GB"
    small["spec"]["resources"] = {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert any("shared_buffers 1GB exceeds" in m for m in check_objects([small]))

    greedy = copy.deepcopy(cluster)
    greedy["spec"]["resources"]["requests"]["cpu"] = "2"
    assert any("requests.cpu 2 exceeds limits.cpu 1" in m for m in check_objects([greedy]))

    fixed = copy.deepcopy(cluster)
    fixed["spec"]["postgresql"]["parameters"]["port"] = "5433"
    assert any("parameters.port is a fixed parameter" in m for m in check_objects([fixed]))


def test_admission_catches_image_import_backup_rules(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cluster = copy.deepcopy(_cluster(rendered["billing"]))
    cluster["spec"]["imageName"] = "ghcr.io/cloudnative-pg/postgresql:latest"
    cluster["spec"]["bootstrap"]["initdb"]["import"]["roles"] = ["billing_owner"]
    cluster["spec"]["bootstrap"]["initdb"]["import"]["databases"].append("other")
    messages = check_objects([cluster])
    assert any("latest" in m for m in messages)
    assert any("exactly one database" in m for m in messages)
    assert any("cannot list roles" in m for m in messages)
    assert any("PostgreSQL 16, the plan targets 17" in m for m in check_objects([_with_image(16)], major=17))

    store = copy.deepcopy(_by_kind(rendered["billing"], "ObjectStore")[0])
    store["spec"]["configuration"]["serverName"] = "billing"
    assert any("serverName is forbidden" in m for m in check_objects([store]))

    backup = copy.deepcopy(_by_kind(rendered["billing"], "ScheduledBackup")[0])
    backup["spec"]["schedule"] = "0 2 * * *"
    assert any("6 fields" in m for m in check_objects([backup]))

    secret = copy.deepcopy(_by_kind(rendered["wiki"], "Secret")[0])
    secret["stringData"]["password"] = "x"
    assert any("carries a password" in m for m in check_objects([secret]))


def _with_image(major: int) -> dict[str, Any]:
    cluster = _cluster(render_app(_plan(_wiki()), _wiki()))
    cluster["spec"]["imageName"] = f"ghcr.io/cloudnative-pg/postgresql:{major}.1-standard-trixie"
    return cluster


def test_admission_parsers() -> None:
    assert pg_memory_bytes("1GB") == 1024**3
    assert pg_memory_bytes("16384") == 16384 * 8192  # bare shared_buffers counts 8kB pages
    assert image_tag("registry:5000/pg/postgresql:17.11-standard-trixie@sha256:abc") == "17.11-standard-trixie"
    assert image_tag("registry:5000/pg/postgresql") == ""
    assert is_fixed_parameter("recovery_target_time") and is_fixed_parameter("syslog_facility")
    assert not is_fixed_parameter("shared_buffers")


# --------------------------------------------------------------------------- Cluster content


def test_cluster_for_import_microservice(rendered: dict[str, list[dict[str, Any]]]) -> None:
    spec = _cluster(rendered["billing"])["spec"]
    assert spec["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie"
    assert spec["instances"] == 2 and "enablePDB" not in spec
    assert spec["enableSuperuserAccess"] is True  # roles/privileges fix-ups and verify log in as superuser
    assert spec["priorityClassName"] == "pg-critical"
    assert spec["resources"]["requests"] == spec["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert spec["storage"] == {"size": "20Gi", "storageClass": "fast-ssd"}
    assert spec["walStorage"] == {"size": "2Gi", "storageClass": "fast-ssd"}
    params = spec["postgresql"]["parameters"]
    assert all(isinstance(v, str) for v in params.values())
    assert params["jit"] == "off" and params["random_page_cost"] == "1.1" and params["max_connections"] == "120"
    assert spec["postgresql"]["shared_preload_libraries"] == ["pg_stat_statements"]
    initdb = spec["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("billing", "billing_owner")
    assert initdb["localeProvider"] == "icu" and initdb["icuLocale"] == "en-US"
    assert initdb["import"] == {
        "type": "microservice",
        "databases": ["billing_prod"],
        "source": {"externalCluster": "legacy"},
        "pgDumpExtraOptions": ["--jobs=4"],
        "pgRestoreExtraOptions": ["--jobs=4"],
    }
    assert "managed" not in spec  # the owner belongs to initdb
    (external,) = spec["externalClusters"]
    assert external["connectionParameters"] == {
        "host": "pg-legacy.example",
        "port": "5433",
        "user": "migrator",
        "dbname": "postgres",
        "sslmode": "require",
    }
    assert external["password"] == {"name": "legacy-source-credentials", "key": "password"}
    assert spec["inheritedMetadata"]["labels"]["consolidator.io/app"] == "billing"
    assert spec["monitoring"]["enablePodMonitor"] is False
    (plugin,) = spec["plugins"]
    assert plugin["parameters"] == {"barmanObjectName": "billing-store", "serverName": "billing-a1"}


def test_cluster_for_single_instance_dump(rendered: dict[str, list[dict[str, Any]]]) -> None:
    spec = _cluster(rendered["wiki"])["spec"]
    assert spec["enablePDB"] is False and "affinity" not in spec
    assert spec["enableSuperuserAccess"] is True
    assert "walStorage" not in spec and "externalClusters" not in spec
    assert spec["bootstrap"]["initdb"]["secret"] == {"name": "wiki-owner-credentials"}
    assert "import" not in spec["bootstrap"]["initdb"]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == {"wiki_ro"}  # owner via initdb, postgres reserved
    ro = roles["wiki_ro"]
    assert ro["superuser"] is False and ro["connectionLimit"] == 10
    assert ro["validUntil"] == "2030-01-01T00:00:00Z"
    assert ro["inRoles"] == ["pg_read_all_data", "wiki_owner"]  # unknown roles dropped
    assert ro["passwordSecret"]["name"].startswith("wiki-role-wiki-ro-")  # '_' → '-' is lossy: hashed


def test_monolith_with_hostile_role_names(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["crm"]
    spec = _cluster(objects)["spec"]
    initdb = spec["bootstrap"]["initdb"]
    assert "database" not in initdb and "owner" not in initdb
    imp = initdb["import"]
    assert imp["type"] == "monolith" and imp["databases"] == ["crm_main", "crm_archive"]
    assert imp["roles"] == [SPACED_ROLE, QUOTED_ROLE, UNICODE_ROLE, "ÜNÏCODE ROLE"]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert all(r["superuser"] is False for r in roles.values())
    assert "passwordSecret" not in roles[UNICODE_ROLE]  # SCRAM hash carried by the import
    assert "passwordSecret" not in roles[SPACED_ROLE]  # NOLOGIN
    assert roles[QUOTED_ROLE]["inRoles"] == [SPACED_ROLE]
    secrets = {s["stringData"]["username"]: s["metadata"]["name"] for s in _by_kind(objects, "Secret")}
    assert set(secrets) == {"migrator", QUOTED_ROLE, "ÜNÏCODE ROLE"}
    assert len(set(secrets.values())) == len(secrets)
    assert roles[QUOTED_ROLE]["passwordSecret"] == {"name": secrets[QUOTED_ROLE]}


def test_no_secret_carries_a_password(plan: Plan, rendered: dict[str, list[dict[str, Any]]]) -> None:
    for objects in rendered.values():
        for secret in _by_kind(objects, "Secret"):
            assert secret["type"] == "kubernetes.io/basic-auth"
            assert set(secret["stringData"]) == {"username"} and "data" not in secret
            assert secret["metadata"]["labels"]["cnpg.io/reload"] == "true"
            assert "out of band" in secret["metadata"]["annotations"]["consolidator.io/fill-out-of-band"]
        text = yaml.safe_dump_all(objects, allow_unicode=True)
        assert SOURCE_PASSWORD not in text and "password=" not in text


def test_server_name_is_unique_per_attempt() -> None:
    first, second = _plan(attempt="a1"), _plan(attempt="a2")
    app = first.apps[0]
    assert server_name(first, app) != server_name(second, app)
    names = {
        _cluster(render_app(p, p.apps[0]))["spec"]["plugins"][0]["parameters"]["serverName"] for p in (first, second)
    }
    assert names == {"billing-a1", "billing-a2"}
    replanned = _plan(attempt="")
    assert server_name(replanned, replanned.apps[0]) == "billing-20260821t101200z"


def test_pooler_backup_and_network_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["billing"]
    (pooler,) = _by_kind(objects, "Pooler")
    assert pooler["metadata"]["name"] == "billing-pooler-rw"
    assert pooler["spec"]["pgbouncer"] == {
        "poolMode": "transaction",
        "parameters": {"default_pool_size": "20", "max_client_conn": "500"},
    }
    (container,) = pooler["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    (store,) = _by_kind(objects, "ObjectStore")
    assert store["metadata"]["name"] == "billing-store"
    assert store["spec"]["configuration"]["s3Credentials"]["accessKeyId"] == {
        "name": "backup-s3-credentials",
        "key": "ACCESS_KEY_ID",
    }
    sidecar = store["spec"]["instanceSidecarConfiguration"]["resources"]
    assert sidecar["requests"] == sidecar["limits"]
    (backup,) = _by_kind(objects, "ScheduledBackup")
    assert backup["spec"]["method"] == "plugin" and backup["spec"]["backupOwnerReference"] == "self"
    assert len(backup["spec"]["schedule"].split()) == 6
    (policy,) = _by_kind(objects, "NetworkPolicy")
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {5432, 8000, 9187}
    namespaces = [
        e["values"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        for e in peer.get("namespaceSelector", {}).get("matchExpressions", [])
    ]
    assert ["cnpg-system"] in namespaces and ["shop", "web"] in namespaces


def test_physical_and_logical_sources() -> None:
    physical = _wiki()
    physical.strategy = Strategy(name="physical")
    with pytest.raises(ConfigError, match="source major 15"):
        render_app(_plan(physical), physical)
    same_major = _plan(physical)
    same_major.target.version = 15
    spec = _cluster(render_app(same_major, physical))["spec"]
    assert spec["imageName"].endswith(":15.19-standard-trixie")
    assert spec["bootstrap"] == {"pg_basebackup": {"source": "legacy"}}
    assert spec["replica"] == {"enabled": True, "source": "legacy"}
    logical = _wiki()
    logical.strategy = Strategy(name="logical", options={"schema_only_import": True})
    spec = _cluster(render_app(_plan(logical), logical))["spec"]
    assert spec["externalClusters"][0]["connectionParameters"]["dbname"] == "wiki"
    assert spec["bootstrap"]["initdb"]["import"]["schemaOnly"] is True


def test_image_choice() -> None:
    app = _wiki()
    app.databases[0] = dataclasses.replace(app.databases[0], collate="de_DE.UTF-8", ctype="de_DE.UTF-8")
    plan = _plan(app)
    plan.target.image_type = "minimal"
    assert _cluster(render_app(plan, app))["spec"]["imageName"].endswith(":17.11-standard-trixie")
    app.image = "registry.example/pg:17.11-custom"
    assert _cluster(render_app(plan, app))["spec"]["imageName"] == "registry.example/pg:17.11-custom"
    app.image = ""
    plan.target.version = 13
    with pytest.raises(ConfigError):
        render_app(plan, app)


def test_plan_errors_are_loud() -> None:
    app = _wiki()
    app.sizing.parameters["port"] = Value(5433, "hand edit")
    with pytest.raises(ConfigError, match="port"):
        render_app(_plan(app), app)
    app = _wiki()
    app.sizing.parameters["shared_preload_libraries"] = Value("auto_explain", "hand edit")
    spec = _cluster(render_app(_plan(app), app))["spec"]
    assert spec["postgresql"]["shared_preload_libraries"] == ["auto_explain"]
    crm = _crm()
    crm.databases[0].target = "crm"
    with pytest.raises(ConfigError, match="monolith"):
        render_app(_plan(crm), crm)


def test_conninfo_parsing() -> None:
    assert parse_conninfo("postgresql://mig%40r:s3cret@[::1]:5433,db2/app?sslmode=verify-full") == {
        "user": "mig@r",
        "password": "s3cret",
        "host": "::1,db2",
        "port": "5433,5432",
        "dbname": "app",
        "sslmode": "verify-full",
    }
    assert parse_conninfo(r"host=h user='o\'b' application_name = 'a b'") == {
        "host": "h",
        "user": "o'b",
        "application_name": "a b",
    }
    plan = _plan(_wiki())
    plan.source.conninfo = "postgresql://u:pw@legacy/db?sslrootcert=/tmp/ca.pem"
    assert source_connection_parameters(plan) == {"host": "legacy", "user": "u", "dbname": "db"}
    plan.source.conninfo = "host=/var/run/postgresql"
    with pytest.raises(ConfigError, match="TCP host"):
        source_connection_parameters(plan)


def test_source_as_the_cluster_sees_it() -> None:
    """--source-from-cluster: the pods reach the legacy server under another address than this machine."""
    plan = _plan(_wiki())
    plan.source.conninfo = "host=127.0.0.1 port=15432 user=mig hostaddr=127.0.0.1 dbname=postgres sslmode=require"
    plan.source.cluster_address = "legacy-pg.db.svc:5432"
    assert source_connection_parameters(plan) == {"host": "legacy-pg.db.svc", "port": "5432", "user": "mig",
                                                  "dbname": "postgres", "sslmode": "require"}  # fmt: skip
    plan.source.cluster_address = "[fd00::7]"
    params = source_connection_parameters(plan)
    assert (params["host"], params["port"]) == ("fd00::7", "15432")


def test_check_plan_reports_bad_names() -> None:
    assert check_plan(_plan()) == []
    app = _wiki()
    app.cluster_name = "Wiki_Prod"
    app.name = "wiki prod ünï"
    problems = check_plan(_plan(app))
    assert any("Cluster wiki/Wiki_Prod" in m and "DNS-1035" in m for m in problems)
    assert any("cannot be a manifests directory" in m for m in problems)
    with pytest.raises(ConfigError, match="manifests directory"):
        layout(_plan(app))  # the app name cannot be a directory either


def test_label_values_are_always_valid() -> None:
    for text in ("billing", "wiki prod ünï", "x" * 80, "ü", "-a-"):
        value = label_value(text)
        assert len(value) <= 63 and (value == text or value[-8:].isalnum())
        validate_object(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n", "labels": {"k": value}}}
        )


def test_dns_slug_never_collides() -> None:
    names = [UNICODE_ROLE, "ÜNÏCODE ROLE", QUOTED_ROLE, SPACED_ROLE, "crm-owner", "a", "A"]
    slugs = [dns_slug(n, 40) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert dns_slug("crm-owner") == "crm-owner"


# --------------------------------------------------------------------------- files


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_write_manifests_tree(tmp_path: Path, plan: Plan) -> None:
    written = write_manifests(plan, tmp_path)
    root = tmp_path / "manifests"
    assert all(p.is_file() and root in p.parents for p in written)
    top = _load(root / "kustomization.yaml")
    validate_kustomization(top)
    assert top["resources"] == ["_shared", "billing", "wiki", "crm"]
    for directory in top["resources"]:
        kustomization = _load(root / directory / "kustomization.yaml")
        validate_kustomization(kustomization)
        files = sorted(p.name for p in (root / directory).iterdir() if p.name != "kustomization.yaml")
        assert sorted(kustomization["resources"]) == files
        for name in files:
            obj = _load(root / directory / name)
            validate_object(obj)
            assert name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
    shared = {p.name for p in (root / "_shared").iterdir()}
    assert "priorityclass-pg-critical.yaml" in shared
    assert "secret-legacy-source-credentials.yaml" in shared  # billing and crm share namespace db
    assert (root / "wiki" / "secret-legacy-source-credentials.yaml").exists() is False
    assert kustomization_for([]) == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [],
    }
    assert not list(root.rglob("*.tmp"))
    assert not any("&id" in p.read_text(encoding="utf-8") for p in written)  # no YAML anchors


def test_write_manifests_prunes_stale_apps(tmp_path: Path, plan: Plan) -> None:
    write_manifests(plan, tmp_path)
    root = tmp_path / "manifests"
    (root / "notes").mkdir()
    (root / "notes" / "README.md").write_text("kept: not written by the tool\n")
    smaller = _plan(_billing(), _wiki())
    smaller.apps[0].sizing.pooler.enabled = False
    write_manifests(smaller, tmp_path)
    assert not (root / "crm").exists()
    assert (root / "notes" / "README.md").exists()
    assert not (root / "billing" / "pooler-billing-pooler-rw.yaml").exists()
    assert _load(root / "kustomization.yaml")["resources"] == ["_shared", "billing", "wiki"]
    again = write_manifests(smaller, tmp_path)
    assert {p.read_text(encoding="utf-8") for p in again}  # idempotent rewrite still works


def test_written_yaml_round_trips_unicode(tmp_path: Path, plan: Plan) -> None:
    write_manifests(plan, tmp_path)
    cluster = _load(tmp_path / "manifests" / "crm" / "cluster-crm.yaml")
    assert cluster == _cluster(render_app(plan, plan.apps[2]))
    assert UNICODE_ROLE in (tmp_path / "manifests" / "crm" / "cluster-crm.yaml").read_text(encoding="utf-8")


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl (with built-in kustomize) not installed")
def test_kustomize_builds_the_tree(tmp_path: Path, plan: Plan) -> None:
    written = write_manifests(plan, tmp_path)
    result = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "manifests")], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert len(docs) == sum(1 for p in written if p.name != "kustomization.yaml")
