"""``status``, ``rollback``, ``finalize``, ``teardown``: the life of a plan after execute."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consolidator.cli.output import print_json, stdout_console
from consolidator.cli.progress import make_sink
from consolidator.cli.render import emit_table
from consolidator.engine.lifecycle import finalize, rollback, status, teardown
from consolidator.errors import ConfigError
from consolidator.report.format import human_bytes, human_duration


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("status", help="where each app of a plan stands (reads DIR/state.json)")
    s.add_argument("plan_dir", metavar="DIR")
    s.add_argument("--json", action="store_true", help="the scriptable status document")
    s.set_defaults(func=run_status)
    r = sub.add_parser("rollback", help="make the source authoritative again (before finalize)")
    r.add_argument("plan_dir", metavar="DIR")
    r.add_argument("--app", required=True, metavar="APP")
    r.set_defaults(func=run_rollback)
    f = sub.add_parser("finalize", help="end the fallback of a cut-over app; optionally drop the source")
    f.add_argument("plan_dir", metavar="DIR")
    f.add_argument("--app", required=True, metavar="APP")
    f.add_argument("--drop-source", action="store_true", help="drop the app's databases on the source")
    f.add_argument("--confirm", metavar="APP", help="the app name typed again (required with --drop-source)")
    f.set_defaults(func=run_finalize)
    t = sub.add_parser("teardown", help="stop and remove the local targets of a plan")
    t.add_argument("plan_dir", metavar="DIR")
    t.add_argument("--yes", action="store_true", help="required: removing targets loses their data")
    t.add_argument("--app", action="append", default=[], metavar="APP", help="only this app (repeatable)")
    t.add_argument("--force", action="store_true", help="also remove targets of cut-over apps")
    t.set_defaults(func=run_teardown)


def run_status(args: argparse.Namespace) -> int:
    doc = status(Path(args.plan_dir))
    if args.json:
        print_json(doc)
        return 0
    rows = []
    for app in doc["apps"]:
        done = [s for s in app["steps"] if s["state"] == "done"]
        current = next((s for s in app["steps"] if s["state"] in ("running", "failed")), None)
        copied = sum(t["bytes"] for t in app["tables"].values())
        rows.append([app["name"], app["strategy"], app["state"], f"{len(done)}/{len(app['steps'])}",
                     current["name"] + (" (failed)" if current["state"] == "failed" else "") if current else "—",
                     human_bytes(copied), human_duration(sum(s["seconds"] for s in app["steps"])),
                     app["target"]["conninfo"] or "—"])  # fmt: skip
    emit_table(stdout_console(), None, ["app", "strategy", "state", "steps", "current", "copied", "time", "target"],
               rows)  # fmt: skip
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    rollback(Path(args.plan_dir), args.app, sink=make_sink(False, args.quiet))
    print(f"{args.app}: rolled back; the source is authoritative again", file=sys.stderr)
    return 0


def run_finalize(args: argparse.Namespace) -> int:
    finalize(Path(args.plan_dir), args.app, drop_source=args.drop_source, confirm=args.confirm,
             sink=make_sink(False, args.quiet))  # fmt: skip
    print(f"{args.app}: finalized", file=sys.stderr)
    return 0


def run_teardown(args: argparse.Namespace) -> int:
    if not args.yes:
        raise ConfigError("teardown removes targets and their data", hint="add --yes")
    removed = teardown(Path(args.plan_dir), force=args.force, apps=args.app, sink=make_sink(False, args.quiet))
    print(f"removed {len(removed)} target(s)", file=sys.stderr)
    return 0
