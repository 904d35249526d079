"""Plan edits as the TUI makes them: same validation and derivation as a plan file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from consolidator.errors import ConfigError, PlanValidationError
from consolidator.plan.edit import rename_cluster, set_override
from consolidator.plan.model import Plan
from consolidator.plan.store import load_plan

EXAMPLE = Path(__file__).resolve().parents[2] / "plans" / "example"


@pytest.fixture
def plan() -> Plan:
    return copy.deepcopy(load_plan(EXAMPLE))


def test_override_derives_the_sizing_again_and_clears(plan: Plan) -> None:
    app = plan.apps[1]
    before = app.sizing.parameters["shared_buffers"].value
    set_override(plan, app.name, "memory", "8Gi")
    assert app.sizing.memory.value == "8Gi" and app.overrides == {"memory": "8Gi"}
    assert app.sizing.parameters["shared_buffers"].value != before  # derived values follow
    assert "override" in app.sizing.memory.reason
    set_override(plan, app.name, "memory", "")
    assert app.overrides == {} and app.sizing.parameters["shared_buffers"].value == before


def test_bad_override_names_the_key_path_and_changes_nothing(plan: Plan) -> None:
    app = plan.apps[1]
    sizing = copy.deepcopy(app.sizing)
    with pytest.raises(PlanValidationError, match=r"apps\[1\]\.overrides\.memory"):
        set_override(plan, app.name, "memory", "12 potatoes")
    assert app.overrides == {} and app.sizing == sizing


def test_rename_validates_and_keeps_names_unique(plan: Plan) -> None:
    first, second = plan.apps[0], plan.apps[1]
    rename_cluster(plan, first.name, "sso-prod")
    assert first.cluster_name == "sso-prod"
    with pytest.raises(PlanValidationError, match="DNS-1035"):
        rename_cluster(plan, first.name, "SSO_prod")
    with pytest.raises(PlanValidationError, match="already app"):
        rename_cluster(plan, second.name, "sso-prod")
    with pytest.raises(ConfigError, match="no app"):
        rename_cluster(plan, "nope", "x")
