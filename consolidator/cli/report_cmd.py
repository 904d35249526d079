"""``consolidator report DIR``: the dry-run report a reviewer approves (md, html or json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.engine.safety import recorded_safety_dumps
from consolidator.fsutil import write_atomic
from consolidator.plan.fingerprint import ensure_fresh
from consolidator.plan.store import load_plan
from consolidator.plan.write import manifest_files
from consolidator.report.render import render_report

EXTENSIONS = {"md": "md", "html": "html", "json": "json"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="write the dry-run report of a plan",
                       description="Render the dry-run report of a plan. Checks first that the source still "
                                   "matches the plan (refused with exit 4 when it does not).")  # fmt: skip
    p.add_argument("plan_dir", metavar="DIR")
    p.add_argument("--format", choices=sorted(EXTENSIONS), default="md")
    p.add_argument("--output", "-o", metavar="PATH", help="file to write (default DIR/report.<format>; - = stdout)")
    p.add_argument("--offline", action="store_true",
                   help="do not connect to the source to check that the plan is still current")  # fmt: skip
    p.add_argument("--source", metavar="DSN", help="source DSN with credentials (default: the plan's conninfo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.plan_dir)
    plan = load_plan(directory)
    if not args.offline:
        ensure_fresh(plan, args.source or plan.source.conninfo)
    text = render_report(plan, args.format, manifest_files(directory), recorded_safety_dumps(directory))
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.output) if args.output else directory / f"report.{EXTENSIONS[args.format]}"
    write_atomic(path, text)
    print(path)
    return 0
