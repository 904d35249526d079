"""Write a plan directory: render and check every manifest first, then files, plan.yaml last."""

from __future__ import annotations

from pathlib import Path

from consolidator.errors import ConfigError
from consolidator.manifests.render import check_plan, write_manifests
from consolidator.plan.model import Plan
from consolidator.plan.store import save_plan
from consolidator.s3.policy import write_policies


def check_manifests(plan: Plan) -> None:
    """Refuse a plan whose manifests CloudNativePG's webhook would reject (nothing written yet)."""
    problems = check_plan(plan)
    if problems:
        raise ConfigError(
            f"the plan's manifests would be rejected: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="fix the override in the plan file or the command-line option that caused it",
        )


def write_plan_dir(plan: Plan, out: Path) -> list[Path]:
    """Returns plan.yaml's path first, then every manifest (and backup bucket policy) written."""
    check_manifests(plan)
    out.mkdir(parents=True, exist_ok=True)
    manifests = write_manifests(plan, out)
    policies = write_policies(plan, out)
    return [save_plan(plan, out), *manifests, *policies]


def manifest_files(directory: Path) -> list[str]:
    """The manifest files of a plan directory, relative to it (what the report lists)."""
    root = directory / "manifests"
    return sorted(str(p.relative_to(directory)) for p in root.rglob("*.yaml")) if root.exists() else []
