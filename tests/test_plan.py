"""Plans built from a real inventory: grouping, sizing with evidence, strategies, steps, files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from consolidator.errors import ConfigError, PlanValidationError
from consolidator.inventory.model import Inventory
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.store import load_plan, save_plan
from consolidator.plan.write import write_plan_dir
from tests.harness import Server


def test_one_app_per_database_with_valid_names(inventory: Inventory, legacy: Server) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions())
    names = {a.name: a.cluster_name for a in plan.apps}
    assert names == {
        "keycloak": "keycloak",
        "mastodon_production": "mastodon-production",
        "nextcloud": "nextcloud",
        "Team Wiki": "team-wiki",
    }
    assert "postgres" not in names  # the empty maintenance database is no app


def test_sizing_carries_evidence(inventory: Inventory, legacy: Server) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions())
    masto = plan.app("mastodon_production")
    z = masto.sizing
    assert z.instances.value == 3  # active: commits measured
    assert "commits" in z.instances.reason
    wiki = plan.app("Team Wiki")
    assert wiki.sizing.instances.value == 1  # idle
    for value in (z.cpu, z.memory, z.storage, z.max_connections):
        assert value.reason and any(ch.isdigit() for ch in value.reason)
    assert "shared_buffers" in z.parameters and z.parameters["shared_buffers"].reason
    assert masto.evidence.commits_per_s > 5
    assert masto.evidence.size_bytes == inventory.database("mastodon_production").size_bytes


def test_strategy_auto_and_explicit(inventory: Inventory, legacy: Server) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions(strategies={"mastodon_production": "logical",
                                                                      "team-wiki": "physical"}))
    assert plan.app("keycloak").strategy.name == "dump"  # small: offline copy within budget
    assert plan.app("keycloak").strategy.requested == "auto"
    masto = plan.app("mastodon-production")
    assert masto.strategy.name == "logical"
    assert [s.name for s in masto.steps][:3] == ["provision", "roles", "schema"]
    assert "cutover" in [s.name for s in masto.steps] and "verify" in [s.name for s in masto.steps]
    wiki = plan.app("Team Wiki")
    assert wiki.strategy.options.get("copies_whole_instance") is True
    assert "whole instance" in wiki.strategy.reason or "every database" in wiki.strategy.reason
    nc = build_plan(inventory, legacy.dsn, PlanOptions(strategies={"nextcloud": "logical"})).app("nextcloud")
    assert "nextcloud.public.oc_activity" in nc.strategy.options["copy_at_cutover"]
    assert "nextcloud.public.oc_file_locks" in nc.strategy.options["copy_at_cutover"]
    for app in plan.apps:
        assert app.estimated_downtime_seconds > 0
        assert all(s.estimated_seconds >= 0 for s in app.steps)


def test_cross_major_plan(inventory: Inventory, legacy: Server) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions(target_version=16))
    assert plan.target.version == 16
    assert any(f.code == "CN902" for f in plan.findings)
    assert all(a.strategy.name != "physical" for a in plan.apps)


def test_impossible_strategy_refused(inventory: Inventory, legacy: Server) -> None:
    with pytest.raises(ConfigError, match="same major"):
        build_plan(inventory, legacy.dsn, PlanOptions(target_version=16, strategies={"keycloak": "physical"}))
    with pytest.raises(ConfigError, match="no app or database named 'nope'"):
        build_plan(inventory, legacy.dsn, PlanOptions(strategies={"nope": "dump"}))
    with pytest.raises(ConfigError, match="operator"):
        build_plan(inventory, legacy.dsn, PlanOptions(strategies={"keycloak": "import"}))


def test_map_and_group_by_owner(inventory: Inventory, legacy: Server) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions(mapping={"keycloak": "identity", "Team Wiki": "identity"}))
    identity = plan.app("identity")
    assert sorted(d.source for d in identity.databases) == ["Team Wiki", "keycloak"]
    assert {r.name for r in identity.roles} == {"grafana_reader", "keycloak", "keycloak_ro", "wiki-js"}
    by_owner = build_plan(inventory, legacy.dsn, PlanOptions(group_by_owner=True))
    assert {a.name for a in by_owner.apps} == {"keycloak", "mastodon", "nextcloud", "wiki-js"}
    with pytest.raises(ConfigError, match="not on the source"):
        build_plan(inventory, legacy.dsn, PlanOptions(mapping={"ghost": "x"}))


def test_roles_in_plan(inventory: Inventory, legacy: Server) -> None:
    kc = build_plan(inventory, legacy.dsn, PlanOptions()).app("keycloak")
    roles = {r.name: r for r in kc.roles}
    assert roles["grafana_reader"].member_of == ["keycloak_ro"]
    assert roles["keycloak"].password_type == "md5" and roles["keycloak"].password_secret
    assert roles["keycloak_ro"].password_secret is None  # NOLOGIN: nothing to log in with
    assert all(not r.superuser for r in kc.roles)


def test_plan_file_roundtrip_has_no_secret(inventory: Inventory, legacy: Server, tmp_path: Path) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions())
    written = write_plan_dir(plan, tmp_path)
    text = (tmp_path / "plan.yaml").read_text()
    assert written[0] == tmp_path / "plan.yaml"
    assert "password=" not in text and "passfile" in text  # conninfo by reference only
    assert not list(tmp_path.glob(".plan.yaml.*"))  # no temp leftovers
    loaded = load_plan(tmp_path)
    assert [a.name for a in loaded.apps] == [a.name for a in plan.apps]
    assert loaded.fingerprint.databases["keycloak"].digest == plan.fingerprint.databases["keycloak"].digest
    assert loaded.app("keycloak").sizing.memory.value == plan.app("keycloak").sizing.memory.value


def _edit(path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def test_hand_broken_plan_names_the_key(inventory: Inventory, legacy: Server, tmp_path: Path) -> None:
    save_plan(build_plan(inventory, legacy.dsn, PlanOptions()), tmp_path)
    path = tmp_path / "plan.yaml"
    _edit(path, lambda d: d["apps"][2]["sizing"]["memory"].update(value="12 potatoes"))
    with pytest.raises(PlanValidationError) as err:
        load_plan(tmp_path)
    assert str(err.value.message) == 'apps[2].sizing.memory: "12 potatoes" is not a quantity'


def test_overrides_flow_and_survive_replanning(inventory: Inventory, legacy: Server, tmp_path: Path) -> None:
    plan = build_plan(inventory, legacy.dsn, PlanOptions())
    save_plan(plan, tmp_path)
    index = next(i for i, a in enumerate(plan.apps) if a.name == "keycloak")
    _edit(tmp_path / "plan.yaml", lambda d: d["apps"][index].update(overrides={"memory": "4Gi", "instances": 2}))
    loaded = load_plan(tmp_path).app("keycloak")
    assert loaded.sizing.memory.value == "4Gi" and loaded.sizing.instances.value == 2
    assert loaded.sizing.parameters["shared_buffers"].value == "1GB"  # recomputed from the override
    again = build_plan(inventory, legacy.dsn, PlanOptions(), previous=load_plan(tmp_path))
    assert again.app("keycloak").overrides == {"memory": "4Gi", "instances": 2}
    assert again.app("keycloak").sizing.memory.value == "4Gi"


def test_impossible_override_refused(inventory: Inventory, legacy: Server, tmp_path: Path) -> None:
    save_plan(build_plan(inventory, legacy.dsn, PlanOptions()), tmp_path)
    _edit(tmp_path / "plan.yaml",
          lambda d: d["apps"][0].update(overrides={"memory": "512Mi", "parameters": {"shared_buffers": "1GB"}}))
    with pytest.raises(PlanValidationError, match=r"apps\[0\]\.overrides\.parameters\.shared_buffers"):
        load_plan(tmp_path)
