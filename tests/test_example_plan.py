"""plans/example stays current: it loads with today's code, and its manifests and report match."""

from __future__ import annotations

from pathlib import Path

import yaml

from consolidator.demo.run import DEMO_STRATEGIES
from consolidator.inventory.model import Inventory
from consolidator.manifests.render import layout, to_yaml
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.store import load_plan
from consolidator.report.render import render_report
from tests.cnpg_schema import validate_object
from tests.harness import Server

EXAMPLE = Path(__file__).resolve().parents[1] / "plans" / "example"
REGENERATE = "regenerate it with: make example-plan"


def test_example_plan_loads() -> None:
    plan = load_plan(EXAMPLE)
    assert {a.cluster_name for a in plan.apps} == {"keycloak", "mastodon-production", "nextcloud", "team-wiki"}


def test_example_manifests_are_current() -> None:
    plan = load_plan(EXAMPLE)
    for directory, objects in layout(plan).items():
        for obj in objects:
            matches = [p for p in (EXAMPLE / "manifests" / directory).glob("*.yaml")
                       if p.name != "kustomization.yaml" and yaml.safe_load(p.read_text())["metadata"]["name"]
                       == obj["metadata"]["name"] and yaml.safe_load(p.read_text())["kind"] == obj["kind"]]
            assert len(matches) == 1, f"{obj['kind']} {obj['metadata']['name']} missing; {REGENERATE}"
            assert matches[0].read_text() == to_yaml(obj), f"{matches[0]} is out of date; {REGENERATE}"


def test_example_manifests_validate() -> None:
    for path in (EXAMPLE / "manifests").rglob("*.yaml"):
        validate_object(yaml.safe_load(path.read_text()))


def test_example_report_is_current() -> None:
    plan = load_plan(EXAMPLE)
    manifests = sorted(str(p.relative_to(EXAMPLE)) for p in (EXAMPLE / "manifests").rglob("*.yaml"))
    assert (EXAMPLE / "report.md").read_text() == render_report(plan, "md", manifests), REGENERATE


def test_example_matches_what_the_demo_plans_today(inventory: Inventory, legacy: Server) -> None:
    """Same apps, clusters, strategies and steps as a plan made now from the demo databases."""
    example = load_plan(EXAMPLE)
    fresh = build_plan(inventory, legacy.dsn, PlanOptions(strategies=DEMO_STRATEGIES))

    def shape(plan):  # type: ignore[no-untyped-def]
        return {a.name: (a.cluster_name, a.strategy.name, [s.name for s in a.steps], [r.name for r in a.roles])
                for a in plan.apps}  # fmt: skip

    assert shape(fresh) == shape(example), REGENERATE
