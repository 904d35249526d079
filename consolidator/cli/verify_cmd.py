"""``consolidator verify``: compare every app's target with its source, per table."""

from __future__ import annotations

import argparse
from pathlib import Path

from consolidator.cli.output import print_json, stdout_console
from consolidator.cli.render import emit_table
from consolidator.engine.executor import make_provider, selected_apps
from consolidator.engine.journal import Journal
from consolidator.engine.run import AppRun, RunOptions
from consolidator.engine.verification import verify_app
from consolidator.errors import PreconditionError
from consolidator.plan.store import load_plan
from consolidator.serde import to_data


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("verify", help="prove that targets equal their sources (schema, roles, every row)",
                       description="Compare schema objects, roles, privileges, settings, sequences, large objects "
                                   "and every table's rows (count + content hash). Exit 0 only when all match.")
    p.add_argument("plan_dir", metavar="DIR")
    p.add_argument("--app", action="append", default=[], metavar="APP", help="only this app (repeatable)")
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.add_argument("--jobs", type=int, default=4, metavar="N")
    p.add_argument("--source", metavar="DSN", help="source DSN with credentials (default: the plan's conninfo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan_dir = Path(args.plan_dir)
    plan = load_plan(plan_dir)
    provider = make_provider(plan, plan_dir)
    journal = Journal.load(plan_dir)
    if journal is None:
        raise PreconditionError(f"nothing has been executed for {plan_dir}", hint="run consolidator execute first")
    results = {}
    for app in selected_apps(plan, args.app):
        if provider.describe(plan, app) is None:
            raise PreconditionError(f"{app.name} has no target yet", hint="run consolidator execute first")
        run_ = AppRun(plan=plan, app=app, plan_dir=plan_dir, source_dsn=args.source or plan.source.conninfo,
                      provider=provider, journal=journal, options=RunOptions(jobs=args.jobs))  # fmt: skip
        results[app.name] = verify_app(run_)
    ok = all(r.ok for r in results.values())
    if args.json:
        print_json({"ok": ok, "apps": {name: to_data(r) for name, r in results.items()}})
        return 0 if ok else 1
    con = stdout_console()
    for name, report in results.items():
        rows = []
        for db in report.databases:
            for t in db.tables:
                rows.append([name, db.target_db, f"{t.schema}.{t.name}", str(t.rows_source), str(t.rows_target),
                             t.status, t.detail or ""])  # fmt: skip
            for c in db.checks:
                if c.status != "match":
                    rows.append([name, db.target_db, f"{c.category} {c.object}", "", "", c.status, c.detail or ""])
        emit_table(con, f"{name}: {'verified' if report.ok else 'DIFFERENCES'}",
                   ["app", "database", "object", "source rows", "target rows", "status", "detail"], rows)  # fmt: skip
    return 0 if ok else 1
