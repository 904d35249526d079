"""``consolidator s3 check``: is every cluster's backup destination ready before anything is applied?"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from consolidator.cli.output import print_json, stdout_console
from consolidator.cli.render import emit_table
from consolidator.engine.executor import selected_apps
from consolidator.plan.store import load_plan
from consolidator.s3.check import check_plan
from consolidator.serde import to_data


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("s3", help="check the S3 backup destination of a plan",
                       description="S3 backup destination (Barman Cloud plugin) of a plan made with --backup-s3.")
    s3 = p.add_subparsers(dest="s3_command", metavar="COMMAND")
    s3.required = True
    c = s3.add_parser("check", help="bucket, credentials, empty WAL archive prefix, write+delete per app",
                      description="For every app: the bucket is reachable with the endpoint and credentials "
                                  "(boto3's standard chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE…), "
                                  "<destinationPath>/<serverName>/ is empty, and a probe object can be written and "
                                  "deleted there. Exit 0 when all hold, 4 when a check fails, 5 when the endpoint "
                                  "is unreachable or the credentials are rejected.")  # fmt: skip
    c.add_argument("plan_dir", metavar="PLANDIR")
    c.add_argument("--app", action="append", default=[], metavar="APP", help="only this app (repeatable)")
    c.add_argument("--json", action="store_true", help="the results as JSON")
    c.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    plan = load_plan(Path(args.plan_dir))
    apps = selected_apps(plan, args.app)
    report = check_plan(plan, apps)
    if args.json:
        print_json({"ok": report.ok, "endpoint": report.endpoint, "results": to_data(report.results)})
    else:
        rows = [[escape(r.app), r.name, "[green]ok[/]" if r.ok else "[bold red]FAILED[/]", escape(r.message),
                 escape(r.fix)] for r in report.results]  # fmt: skip
        emit_table(stdout_console(), f"S3 backup destination: {'ready' if report.ok else 'NOT READY'}",
                   ["app", "check", "status", "message", "fix"], rows)  # fmt: skip
    error = report.error()
    if error is not None:
        raise error
    return 0
