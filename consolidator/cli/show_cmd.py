"""``consolidator show DIR``: validate and render a saved plan."""

from __future__ import annotations

import argparse
from pathlib import Path

from consolidator.cli.output import print_json
from consolidator.cli.render import render_plan
from consolidator.plan.store import load_plan
from consolidator.serde import to_data


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("show", help="render a saved plan (validates it)",
                       description="Load, validate and render a plan directory.")  # fmt: skip
    p.add_argument("plan_dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan = load_plan(Path(args.plan_dir))
    if args.json:
        print_json(to_data(plan))
    else:
        render_plan(plan, args.plan_dir)
    return 0
