"""Edits a person makes to a plan before saving it: what the TUI's Apps pane calls (everyone else edits
``plan.yaml`` and re-runs ``plan``; both end in the same checks).

Every edit goes through the same rules as a loaded plan file: overrides are validated with their key
path and the sizing is derived again from the evidence, a cluster name must be a DNS-1035 label that no
other app in the namespace uses, a strategy change re-plans the app with the tool's reasons.
"""

from __future__ import annotations

from typing import Any

from consolidator.errors import ConfigError, PlanValidationError
from consolidator.inventory.model import Inventory
from consolidator.names import cluster_name_problem
from consolidator.plan.build import PlanOptions, build_plan
from consolidator.plan.model import App, Plan
from consolidator.sizing.model import SizingOptions, derive_sizing

# The overrides the Apps pane offers (the plan file accepts the same keys and ``parameters``).
EDITABLE = ("instances", "cpu", "memory", "storage", "wal_storage", "max_connections", "pooler")


def set_override(plan: Plan, app_name: str, key: str, value: Any) -> App:
    """Set (``value`` not None/"") or clear one override and derive the app's sizing again.

    Raises :class:`PlanValidationError` naming ``apps[i].overrides.<key>`` and leaves the app unchanged.
    """
    index, app = _find(plan, app_name)
    overrides = dict(app.overrides)
    if value is None or value == "":
        overrides.pop(key, None)
    else:
        overrides[key] = value
    sizing = derive_sizing(app.evidence, overrides=overrides, options=SizingOptions(instances=plan.target.instances),
                           path=f"apps[{index}].overrides")  # fmt: skip
    app.overrides, app.sizing = overrides, sizing
    return app


def rename_cluster(plan: Plan, app_name: str, name: str) -> App:
    """Give the app's cluster another name: a DNS-1035 label ≤ 50 characters, unique in its namespace."""
    index, app = _find(plan, app_name)
    problem = cluster_name_problem(name)
    if problem:
        raise PlanValidationError(f"apps[{index}].cluster_name", f"{name!r}: {problem}",
                                  hint="lowercase letters, digits and '-', starting with a letter")  # fmt: skip
    clash = next((a for a in plan.apps if a is not app and a.namespace == app.namespace and a.cluster_name == name),
                 None)  # fmt: skip
    if clash is not None:
        raise PlanValidationError(f"apps[{index}].cluster_name", f"{name!r} is already app {clash.name}'s cluster",
                                  hint="choose another name")  # fmt: skip
    app.cluster_name = name
    return app


def replan(inventory: Inventory, dsn: str, options: PlanOptions, previous: Plan) -> Plan:
    """The plan again from the same inventory with other options (grouping, strategies), keeping every
    app's overrides, hooks and cluster name — what re-running ``plan`` does, without a new inventory."""
    plan = build_plan(inventory, dsn, options, previous)
    renamed = {a.name: a.cluster_name for a in previous.apps}
    for app in plan.apps:
        if app.name in renamed and not cluster_name_problem(renamed[app.name]):
            app.cluster_name = renamed[app.name]
    return plan


def set_strategy(inventory: Inventory, dsn: str, options: PlanOptions, plan: Plan, app_name: str,
                 strategy: str) -> Plan:  # fmt: skip
    """Ask for another strategy for one app; refused (ConfigError, with the tool's reason) when it cannot
    work, e.g. physical across majors or import on local targets. A refused choice leaves ``options`` as
    they were, so the next plan does not trip over it."""
    _find(plan, app_name)
    previous, options.strategies = options.strategies, {**options.strategies, app_name: strategy}
    try:
        return replan(inventory, dsn, options, plan)
    except Exception:
        options.strategies = previous
        raise


def _find(plan: Plan, app_name: str) -> tuple[int, App]:
    for index, app in enumerate(plan.apps):
        if app.name == app_name:
            return index, app
    raise ConfigError(f"no app {app_name!r} in the plan", hint="apps: " + ", ".join(a.name for a in plan.apps))
