"""``consolidator demo``: run the whole job on a throwaway local legacy server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.cli.output import stderr_console
from consolidator.cli.progress import make_sink
from consolidator.cli.render import emit_table, render_plan
from consolidator.demo.run import DemoOptions, run_demo
from consolidator.report.format import human_duration


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="migrate a throwaway legacy server with four apps, end to end",
                       description="Create a local legacy PostgreSQL server with four realistic app databases, "
                                   "inventory it under a live workload, plan one cluster per app, write the "
                                   "dry-run reports, then migrate every app (one per strategy) while the workload "
                                   "keeps running, verify and cut over. Everything is removed afterwards unless "
                                   "--keep; the plan, reports and run summary stay in --out.")
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="plan directory: plan.yaml, manifests/, reports, run state")
    p.add_argument("--scale-mb", type=int, default=110, metavar="N", help="size of the social network database")
    p.add_argument("--sample-seconds", type=float, default=5.0, metavar="N", help="activity sampling window")
    p.add_argument("--plan-only", action="store_true", help="stop after the plan and the reports")
    p.add_argument("--keep", action="store_true", help="keep the legacy server and the targets running")
    p.add_argument("--jobs", type=int, default=2, metavar="N", help="parallel copy workers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_demo(
        DemoOptions(out=Path(args.out), scale_mb=args.scale_mb, sample_seconds=args.sample_seconds,
                    keep=args.keep, plan_only=args.plan_only, jobs=args.jobs),
        sink=make_sink(False, args.quiet),
    )  # fmt: skip
    render_plan(result.plan, str(result.plan_dir))
    code = 0
    if result.executed is not None:
        rows = []
        for app in result.executed.apps:
            stats = result.workload.get(app.name)
            outage = human_duration(stats.longest_outage_s) if stats and stats.committed else "—"
            rows.append([app.name, result.plan.app(app.name).strategy.name, app.state,
                         human_duration(app.seconds), str(stats.committed) if stats else "—", outage])
        emit_table(stderr_console(), "Demo migration", ["app", "strategy", "state", "took", "app statements",
                                                        "longest app outage"], rows)
        code = result.executed.exit_code
    for path in result.reports:
        print(f"report: {path}", file=sys.stderr)
    if result.executed is not None:
        print(f"run summary: {result.plan_dir / 'summary.md'}", file=sys.stderr)
    if result.legacy_dsn:
        print(f"legacy server kept: {result.legacy_dsn}", file=sys.stderr)
    return code
