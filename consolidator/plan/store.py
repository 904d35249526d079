"""Read and write ``DIR/plan.yaml``: atomic writes, validated loads with key-path errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from consolidator.errors import ConfigError, PlanValidationError, PreconditionError
from consolidator.fsutil import write_atomic
from consolidator.plan.model import Plan
from consolidator.plan.validate import validate_plan_data
from consolidator.serde import from_data, to_data
from consolidator.sizing.model import SizingOptions, derive_sizing

PLAN_FILE = "plan.yaml"
HEADER = (
    "# consolidator plan: review it, edit `overrides:` per app to change sizing, then re-run\n"
    "# `consolidator plan` (overrides are kept) or `consolidator show` to check it.\n"
    "# No secrets are stored here: credentials are referenced (pgpass, environment, Secrets).\n"
)


# libyaml's safe loader when PyYAML has it: the same documents, ten times faster than the pure-Python one
# (the TUI re-reads plans while a copy runs in the same process).
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, no aliases: diff-friendly YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def plan_path(directory: Path) -> Path:
    return directory / PLAN_FILE


def save_plan(plan: Plan, directory: Path) -> Path:
    """Write the plan atomically; a reader never sees a half-written plan."""
    path = plan_path(directory)
    data = to_data(plan)
    ordered = {"format_version": data.pop("format_version"), **data}  # the version first, for readers
    write_atomic(path, HEADER + dump_yaml(ordered))
    return path


def load_plan(directory: Path) -> Plan:
    """Load, validate (key paths in errors) and apply per-app overrides."""
    path = plan_path(directory) if directory.is_dir() or not directory.suffix else directory
    if not path.exists():
        raise PreconditionError(f"no plan at {path}", hint="create one with: consolidator plan --source DSN --out DIR")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}", hint="fix the file or create the plan again") \
            from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the plan: {exc}") from None
    try:
        validate_plan_data(data)
    except PlanValidationError as exc:
        raise PlanValidationError(exc.path, f"{exc.message.split(': ', 1)[-1]}",
                                  hint=exc.hint or f"fix {path} or create the plan again") from None  # fmt: skip
    plan = from_data(Plan, data)
    options = SizingOptions(instances=plan.target.instances)
    for index, app in enumerate(plan.apps):
        if app.overrides:
            app.sizing = derive_sizing(app.evidence, overrides=app.overrides, options=options,
                                       path=f"apps[{index}].overrides")  # fmt: skip
    return plan


def load_previous(directory: Path) -> Plan | None:
    """The plan already in ``directory`` (to keep its overrides), or None; a broken one is an error."""
    return load_plan(directory) if plan_path(directory).exists() else None
