"""End-of-run summary: per step and per table, written next to the journal as JSON and Markdown.

Built from the journal only, so ``status`` from another terminal and the summary agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consolidator.engine.journal import Journal
from consolidator.fsutil import write_atomic
from consolidator.plan.model import Plan
from consolidator.report.format import human_bytes, human_duration


def build_summary(plan: Plan, journal: Journal) -> dict[str, Any]:
    apps = []
    for app in plan.apps:
        state = journal.state.apps.get(app.name)
        if state is None:
            continue
        steps = [{"name": s.name, "state": state.steps[s.name].state if s.name in state.steps else "pending",
                  "seconds": state.steps[s.name].seconds if s.name in state.steps else 0.0,
                  "estimated_seconds": s.estimated_seconds} for s in app.steps]  # fmt: skip
        tables = sorted(
            ({"database": t.database, "table": t.name, "state": t.state, "rows": t.rows, "bytes": t.bytes,
              "seconds": t.seconds} for t in state.tables.values()),
            key=lambda t: (-t["bytes"], t["database"], t["table"]),
        )  # fmt: skip
        apps.append({"name": app.name, "strategy": app.strategy.name, "state": state.state,
                     "verified": state.verified, "seconds": round(sum(s["seconds"] for s in steps), 3),
                     "rows": sum(t["rows"] for t in tables), "bytes": sum(t["bytes"] for t in tables),
                     "steps": steps, "tables": tables, "safety_dumps": dict(state.safety_dumps)})  # fmt: skip
    return {"started_at": journal.state.started_at, "updated_at": journal.state.updated_at, "apps": apps}


def to_markdown(summary: dict[str, Any]) -> str:
    lines = ["# Run summary", "", f"Started {summary['started_at']}, last update {summary['updated_at']}.", ""]
    for app in summary["apps"]:
        lines += [f"## {app['name']} ({app['strategy']}): {app['state']}", "",
                  f"{app['rows']} rows, {human_bytes(app['bytes'])} copied; steps took {human_duration(app['seconds'])}"
                  + ("; verified" if app["verified"] else ""), "",
                  "| step | state | took | estimate |", "| --- | --- | ---: | ---: |"]  # fmt: skip
        lines += [f"| {s['name']} | {s['state']} | {human_duration(s['seconds'])} | "
                  f"{human_duration(s['estimated_seconds'])} |" for s in app["steps"]]  # fmt: skip
        if app.get("safety_dumps"):
            lines += ["", "| safety dump | object | size | sha256 |", "| --- | --- | ---: | --- |"]
            lines += [f"| {db} | {d['url']} | {human_bytes(d['bytes'])} | `{d['sha256']}` |"
                      for db, d in app["safety_dumps"].items()]  # fmt: skip
        if app["tables"]:
            lines += ["", "| database | table | rows | bytes | took |", "| --- | --- | ---: | ---: | ---: |"]
            lines += [f"| {t['database']} | {t['table']} | {t['rows']} | {human_bytes(t['bytes'])} | "
                      f"{human_duration(t['seconds'])} |" for t in app["tables"]]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def write_summary(plan: Plan, journal: Journal, plan_dir: Path) -> dict[str, Any]:
    summary = build_summary(plan, journal)
    write_atomic(plan_dir / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    write_atomic(plan_dir / "summary.md", to_markdown(summary))
    return summary
