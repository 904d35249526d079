"""``consolidator demo``: run the whole job on a throwaway local legacy server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.cli.output import ProgressPrinter
from consolidator.cli.render import render_plan
from consolidator.demo.run import DemoOptions, run_demo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="inventory, plan and report a throwaway legacy server with four apps",
                       description="Create a local legacy PostgreSQL server with four realistic app databases, "
                                   "inventory it under a live workload, plan one cluster per app and write the "
                                   "dry-run reports. The server is removed afterwards unless --keep.")
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="plan directory: plan.yaml, manifests/ and reports")
    p.add_argument("--scale-mb", type=int, default=20, metavar="N", help="size of the social network database")
    p.add_argument("--sample-seconds", type=float, default=5.0, metavar="N", help="activity sampling window")
    p.add_argument("--keep", action="store_true", help="keep the legacy server running and print its DSN")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_demo(
        DemoOptions(out=Path(args.out), scale_mb=args.scale_mb, sample_seconds=args.sample_seconds, keep=args.keep),
        sink=ProgressPrinter(quiet=args.quiet),
    )
    render_plan(result.plan, str(result.plan_dir))
    for path in result.reports:
        print(f"report: {path}", file=sys.stderr)
    if result.legacy_dsn:
        print(f"legacy server kept: {result.legacy_dsn}", file=sys.stderr)
    return 0
