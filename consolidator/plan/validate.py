"""Validate plan data before trusting it, reporting the key path of the first problem.

Structural checks follow the dataclass type hints of ``plan/model.py`` (so new fields are
validated without extra code); semantic checks cover names, quantities and enumerations.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

from consolidator.errors import PlanValidationError
from consolidator.inventory.model import SEVERITIES
from consolidator.names import cluster_name_problem
from consolidator.plan.kube_hooks import check_app_hooks
from consolidator.plan.model import FORMAT_VERSION, PROVIDERS, STRATEGIES, Plan
from consolidator.sizing.quantity import parse_cpu, parse_memory

_SCALARS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
# [registry[:port]/]path[:tag][@digest], as container runtimes parse image references
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_HOST}(?:\.{_HOST})*(?::[0-9]+)?/)?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "…"


def check_structure(tp: Any, data: Any, path: str) -> None:
    """Raise PlanValidationError when ``data`` does not fit the type ``tp``."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if data is None:
            return
        if len(args) == 1:
            check_structure(args[0], data, path)
        return
    if tp is Any:
        return
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise PlanValidationError(path, f"{_describe(data)} is not a mapping")
        hints = get_type_hints(tp)
        for f in dataclasses.fields(tp):
            sub = f"{path}.{f.name}" if path else f.name
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.name not in data:
                if required:
                    raise PlanValidationError(sub, "is missing")
                continue
            check_structure(hints[f.name], data[f.name], sub)
        return
    if origin is list:
        if not isinstance(data, list):
            raise PlanValidationError(path, f"{_describe(data)} is not a list")
        (item,) = get_args(tp)[:1] or (Any,)
        for i, value in enumerate(data):
            check_structure(item, value, f"{path}[{i}]")
        return
    if origin is dict:
        if not isinstance(data, dict):
            raise PlanValidationError(path, f"{_describe(data)} is not a mapping")
        args = get_args(tp)
        for key, value in data.items():
            check_structure(args[1] if len(args) == 2 else Any, value, f"{path}.{key}")
        return
    if tp in _SCALARS:
        ok = isinstance(data, tp) and not (tp is int and isinstance(data, bool))
        if tp is float:
            ok = isinstance(data, int | float) and not isinstance(data, bool)
        if not ok:
            raise PlanValidationError(path, f"{_describe(data)} is not {_SCALARS[tp]}")


def check_semantics(data: dict[str, Any]) -> None:
    """Rules the types cannot express: versions, enumerations, names, quantities."""
    if data.get("format_version") != FORMAT_VERSION:
        raise PlanValidationError(
            "format_version",
            f"{_describe(data.get('format_version'))} is not supported (this consolidator reads {FORMAT_VERSION})",
            hint="create the plan again with this version of consolidator",
        )
    provider = data["target"].get("provider", "local")
    if provider not in PROVIDERS:
        raise PlanValidationError("target.provider", f"{_describe(provider)} is not one of {', '.join(PROVIDERS)}")
    image = data["target"].get("copy_image")
    if image is not None and not IMAGE_REFERENCE.match(image):
        raise PlanValidationError("target.copy_image", f"{_describe(image)} is not an image reference",
                                  hint="e.g. registry.example.com/consolidator:0.1.0 (what --image takes)")
    seen: set[tuple[str, str]] = set()
    for i, app in enumerate(data.get("apps", [])):
        base = f"apps[{i}]"
        problem = cluster_name_problem(app["cluster_name"])
        if problem:
            raise PlanValidationError(f"{base}.cluster_name", f"{_describe(app['cluster_name'])}: {problem}")
        key = (app.get("namespace", ""), app["cluster_name"])
        if key in seen:
            raise PlanValidationError(f"{base}.cluster_name", f"{_describe(app['cluster_name'])} is used twice")
        seen.add(key)
        if not app["databases"]:
            raise PlanValidationError(f"{base}.databases", "is empty: an app needs at least one database")
        if app["strategy"]["name"] not in STRATEGIES:
            raise PlanValidationError(
                f"{base}.strategy.name", f"{_describe(app['strategy']['name'])} is not one of {', '.join(STRATEGIES)}"
            )
        _check_sizing(app["sizing"], f"{base}.sizing")
        check_app_hooks(app, base, provider)
        for j, finding in enumerate(app.get("findings", [])):
            if finding.get("severity") not in SEVERITIES:
                raise PlanValidationError(f"{base}.findings[{j}].severity", f"{_describe(finding.get('severity'))} "
                                          f"is not one of {', '.join(SEVERITIES)}")  # fmt: skip


def _check_sizing(sizing: dict[str, Any], path: str) -> None:
    checks = {"cpu": parse_cpu, "memory": parse_memory, "storage": parse_memory, "wal_storage": parse_memory}
    for key, parse in checks.items():
        value = sizing[key].get("value")
        if key == "wal_storage" and value is None:
            continue
        try:
            parsed = parse(str(value))
        except (ValueError, TypeError):
            raise PlanValidationError(f"{path}.{key}", f"{_describe(value)} is not a quantity") from None
        if parsed <= 0:
            raise PlanValidationError(f"{path}.{key}", f"{_describe(value)} must be positive")
    instances = sizing["instances"].get("value")
    if not isinstance(instances, int) or isinstance(instances, bool) or not 1 <= instances <= 10:
        raise PlanValidationError(f"{path}.instances", f"{_describe(instances)} is not a whole number from 1 to 10")


def validate_plan_data(data: Any) -> None:
    if not isinstance(data, dict):
        raise PlanValidationError("", "the plan file does not hold a mapping", hint="create the plan again")
    check_structure(Plan, data, "")
    check_semantics(data)
