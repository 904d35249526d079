"""After (or instead of) execute: status, rollback, finalize and teardown of a plan's apps."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from psycopg import sql

from consolidator.engine import fence
from consolidator.engine.executor import DONE_STATES, make_provider, selected_apps, strategy_for
from consolidator.engine.hooks import run_hooks
from consolidator.engine.journal import Journal, exclusive
from consolidator.engine.provider import Provider
from consolidator.errors import PreconditionError
from consolidator.events import EventSink, emit
from consolidator.pg.connect import connect
from consolidator.plan.model import App, Plan
from consolidator.plan.store import load_plan


def status(plan_dir: Path) -> dict[str, Any]:
    """The scriptable status document: apps, states, steps with seconds, target conninfo + passfile."""
    plan = load_plan(plan_dir)
    journal = Journal.load(plan_dir)
    apps = []
    for app in plan.apps:
        state = journal.state.apps.get(app.name) if journal else None
        steps = []
        for step in app.steps:
            recorded = state.steps.get(step.name) if state else None
            steps.append({"name": step.name, "state": recorded.state if recorded else "pending",
                          "seconds": recorded.seconds if recorded else 0.0,
                          "error": recorded.error if recorded else None})  # fmt: skip
        target = state.target if state else {}
        apps.append({
            "name": app.name, "cluster": app.cluster_name, "databases": [d.target for d in app.databases],
            "strategy": app.strategy.name, "state": state.state if state else "pending",
            "verified": bool(state and state.verified), "steps": steps,
            "tables": {k: {"state": t.state, "rows": t.rows, "bytes": t.bytes} for k, t in state.tables.items()}
            if state else {},
            "target": {"conninfo": target.get("conninfo"), "passfile": target.get("passfile")},
        })  # fmt: skip
    return {"plan": str(plan_dir), "started_at": journal.state.started_at if journal else None,
            "updated_at": journal.state.updated_at if journal else None, "apps": apps}  # fmt: skip


def _journal(plan_dir: Path) -> Journal:
    journal = Journal.load(plan_dir)
    if journal is None:
        raise PreconditionError(f"nothing has been executed for {plan_dir}", hint="run consolidator execute first")
    return journal


def rollback(plan_dir: Path, app_name: str, sink: EventSink | None = None) -> None:
    """Make the source authoritative again: revert hooks, close the target, unfence the source.

    The provider's switch is reverted once the source is open again (restarted workloads must reach
    it to become available), then traffic through the provider (a paused Pooler) resumes.
    """
    plan = load_plan(plan_dir)
    (app,) = selected_apps(plan, [app_name])
    with exclusive(plan_dir):
        journal = _journal(plan_dir)
        state = journal.app(app.name)
        if state.state == "finalized":
            raise PreconditionError(f"{app.name} is finalized: the source may be gone",
                                    hint="rollback is only possible before finalize")  # fmt: skip
        with contextlib.closing(make_provider(plan, plan_dir)) as provider:
            _rollback(plan, app, journal, provider, sink)


def _rollback(plan: Plan, app: App, journal: Journal, provider: Provider, sink: EventSink | None) -> None:
    state = journal.app(app.name)
    strategy = strategy_for(app)
    handle = provider.describe(plan, app)
    target = provider.wait_ready(plan, app) if handle is not None else None
    if target is not None and state.hooks_run:
        run_hooks(app, target, "rollback")
        journal.update(lambda s: s.apps[app.name].hooks_run.clear())
    for line in strategy.remove_replication(plan, app, plan.source.conninfo,
                                            target.conninfo if target else None, state.facts, final=False):
        emit(sink, "log", f"{app.name}: {line}")
    if target is not None:
        for db in app.databases:
            if db.target in state.target_fence:
                fence.close_database(target.conninfo, db.target)
    for dbname, record in state.fence.items():
        fence.restore_acl(plan.source.conninfo, dbname, record)
        emit(sink, "log", f"{app.name}: {dbname} open again on the source")
    for line in provider.revert_switch(plan, app) + provider.resume_traffic(plan, app):
        emit(sink, "log", f"{app.name}: {line}")

    def mark(s: Any) -> None:
        a = s.apps[app.name]
        a.fence.clear()
        a.state, a.verified = "rolled_back", False
        for name in strategy.reset_after_rollback:
            a.steps.pop(name, None)
        a.facts.pop(strategy.name, None)

    journal.update(mark)


def finalize(plan_dir: Path, app_name: str, *, drop_source: bool = False, confirm: str | None = None,
             sink: EventSink | None = None) -> None:  # fmt: skip
    """End the fallback: drop replication objects; drop the source databases only when asked twice."""
    plan = load_plan(plan_dir)
    (app,) = selected_apps(plan, [app_name])
    with exclusive(plan_dir):
        journal = _journal(plan_dir)
        state = journal.app(app.name)
        if state.state not in DONE_STATES:
            raise PreconditionError(f"{app.name} is {state.state}, not cut over", hint="finish execute first")
        if drop_source and confirm != app.name:
            raise PreconditionError(f"--drop-source needs the app name typed: --confirm {app.name}",
                                    hint="the source databases are dropped for good")  # fmt: skip
        with contextlib.closing(make_provider(plan, plan_dir)) as provider:
            handle = provider.describe(plan, app)
            for line in strategy_for(app).remove_replication(plan, app, plan.source.conninfo,
                                                             handle.conninfo if handle else None, state.facts,
                                                             final=True):  # fmt: skip
                emit(sink, "log", f"{app.name}: {line}")
            for line in provider.finalize(plan, app):
                emit(sink, "log", f"{app.name}: {line}")
        if drop_source:
            with connect(plan.source.conninfo, dbname="postgres") as conn:
                for db in app.databases:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.source)))
                    emit(sink, "log", f"{app.name}: dropped {db.source} on the source")
        journal.update(lambda s: setattr(s.apps[app.name], "state", "finalized"))


def teardown(plan_dir: Path, *, force: bool = False, apps: list[str] | None = None,
             sink: EventSink | None = None) -> list[str]:  # fmt: skip
    """Stop and remove local targets; cut-over targets hold live data, so they need ``force``."""
    plan = load_plan(plan_dir)
    provider = make_provider(plan, plan_dir)
    journal = Journal.load(plan_dir)
    removed = []
    with exclusive(plan_dir):
        for app in selected_apps(plan, apps or []):
            state = journal.state.apps.get(app.name) if journal else None
            if state and state.state in DONE_STATES and not force:
                raise PreconditionError(f"{app.name} is {state.state}: its target holds the live data",
                                        hint="add --force to remove it anyway")  # fmt: skip
            if state is not None and state.state not in DONE_STATES:
                handle = provider.describe(plan, app)
                for line in strategy_for(app).remove_replication(plan, app, plan.source.conninfo,
                                                                 handle.conninfo if handle else None, state.facts,
                                                                 final=False):  # fmt: skip
                    emit(sink, "log", f"{app.name}: {line}")  # slots would retain WAL on the source
                for line in provider.revert_switch(plan, app):  # a half-done switch points at this target
                    emit(sink, "log", f"{app.name}: {line}")
            for dbname, record in (state.fence.items() if state and state.state not in DONE_STATES else []):
                fence.restore_acl(plan.source.conninfo, dbname, record)  # never leave a source fenced
                emit(sink, "log", f"{app.name}: {dbname} open again on the source")
            if provider.teardown(plan, app):
                removed.append(app.cluster_name)
                emit(sink, "log", f"removed target {app.cluster_name}")
            if journal is not None:
                journal.update(lambda s, name=app.name: s.apps.pop(name, None))
        if journal is not None and not journal.state.apps:
            journal.path.unlink(missing_ok=True)
    return removed
