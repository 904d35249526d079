"""``consolidator execute`` and ``consolidator cutover``: run a plan's steps, journaled and resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.cli.output import stderr_console
from consolidator.cli.progress import make_sink
from consolidator.cli.render import emit_table
from consolidator.engine.executor import ExecuteOptions, ExecuteResult, execute
from consolidator.errors import ConfigError
from consolidator.report.format import human_bytes, human_duration


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("execute", help="migrate every app of a plan: copy, cutover, verification",
                       description="Run the plan: provision targets, copy, fence, verify and cut over each app. "
                                   "Every step is journaled in DIR/state.json; --resume continues after a crash.")
    p.add_argument("plan_dir", metavar="DIR")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (required without a TTY)")
    p.add_argument("--app", action="append", default=[], metavar="APP", help="only this app (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue a half-finished run")
    group.add_argument("--restart", action="store_true", help="undo a half-finished run and start over")
    p.add_argument("--force", action="store_true", help="accept target databases that already hold tables")
    p.add_argument("--jobs", type=int, default=4, metavar="N", help="parallel copy/index workers (default 4)")
    p.add_argument("--json", action="store_true", help="NDJSON events on stdout")
    p.add_argument("--source", metavar="DSN", help="source DSN with credentials (default: the plan's conninfo)")
    p.add_argument("--safety-dump", action="store_true",
                   help="first stream a pg_dump -Fc of each source database to the plan's S3 backup store")
    p.add_argument("--in-cluster", action="store_true",
                   help="cnpg plans: copy inside Kubernetes, one Job per app in its namespace")  # fmt: skip
    p.add_argument("--image", metavar="IMAGE", help="image of the copy Jobs (default: the plan's target.copy_image)")
    p.add_argument("--parallel", type=int, metavar="N", help="apps whose Jobs run at once (default 4)")
    p.set_defaults(func=run)
    c = sub.add_parser("cutover", help="finish one app: fence, drain, verify, switch (resumes its run)")
    c.add_argument("plan_dir", metavar="DIR")
    c.add_argument("--app", required=True, metavar="APP")
    c.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    c.add_argument("--json", action="store_true", help="NDJSON events on stdout")
    c.add_argument("--jobs", type=int, default=4, metavar="N")
    c.add_argument("--source", metavar="DSN")
    c.set_defaults(func=run_cutover)


def _confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{what} changes servers and needs confirmation", hint="add --yes when not on a terminal")
    answer = input(f"{what}? Only 'yes' will be accepted: ")
    if answer.strip() != "yes":
        raise ConfigError("cancelled", hint="answer 'yes' to proceed")


def _report(result: ExecuteResult, json_mode: bool) -> int:
    """Summary tables at the end (steps and tables per app) on stderr, then one line per app."""
    if not json_mode:
        con = stderr_console()
        for app in result.summary.get("apps", []):  # type: ignore[union-attr]
            steps = [[s["name"], s["state"], human_duration(s["seconds"]), human_duration(s["estimated_seconds"])]
                     for s in app["steps"]]  # fmt: skip
            emit_table(con, f"{app['name']} ({app['strategy']}): {app['state']}",
                       ["step", "state", "took", "estimate"], steps)  # fmt: skip
            tables = [[t["database"], t["table"], str(t["rows"]), human_bytes(t["bytes"]), human_duration(t["seconds"])]
                      for t in app["tables"][:20]]  # fmt: skip
            if tables:
                emit_table(con, None, ["database", "table", "rows", "bytes", "took"], tables)
        for app in result.apps:
            line = f"{app.name}: {app.state} ({human_duration(app.seconds)})"
            print(line + (f" — {app.error}" if app.error else ""), file=sys.stderr)
    return result.exit_code


def run(args: argparse.Namespace) -> int:
    _confirm(args, f"Execute the plan in {args.plan_dir}")
    opts = ExecuteOptions(jobs=args.jobs, force=args.force, apps=args.app, resume=args.resume,
                          restart=args.restart, source_dsn=args.source, safety_dump=args.safety_dump)  # fmt: skip
    if args.in_cluster:
        return _report(_run_in_cluster(args, opts), args.json)
    if args.image or args.parallel is not None:
        raise ConfigError("--image and --parallel apply to copies inside the cluster", hint="add --in-cluster")
    result = execute(Path(args.plan_dir), opts, sink=make_sink(args.json, args.quiet))
    return _report(result, args.json)


def _run_in_cluster(args: argparse.Namespace, opts: ExecuteOptions) -> ExecuteResult:
    from consolidator.engine.remote import InClusterOptions, execute_in_cluster

    remote = InClusterOptions()
    if args.image:
        remote.image = args.image
    if args.parallel is not None:
        remote.parallel = args.parallel
    return execute_in_cluster(Path(args.plan_dir), opts, remote, sink=make_sink(args.json, args.quiet))


def run_cutover(args: argparse.Namespace) -> int:
    _confirm(args, f"Cut over {args.app}")
    opts = ExecuteOptions(jobs=args.jobs, apps=[args.app], resume=True, source_dsn=args.source)
    result = execute(Path(args.plan_dir), opts, sink=make_sink(args.json, args.quiet))
    return _report(result, args.json)
