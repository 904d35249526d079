"""Execute a plan: every app's steps in order, journaled, resumable after a crash at any point."""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from consolidator.engine import fence
from consolidator.engine.journal import Journal, exclusive, plan_digest
from consolidator.engine.provider import Provider, provider_for
from consolidator.engine.run import AppRun, RunOptions
from consolidator.engine.strategy import Strategy
from consolidator.engine.summary import write_summary
from consolidator.errors import ConfigError, ConsolidatorError, Interrupted, PreconditionError, exit_code_for
from consolidator.events import EventSink, emit
from consolidator.k8s.jobs import in_copy_job, journal_mirror_from_env
from consolidator.pg.connect import connect
from consolidator.pg.diagnostics import explain
from consolidator.plan.fingerprint import ensure_fresh
from consolidator.plan.model import App, Plan
from consolidator.plan.store import load_plan

DONE_STATES = ("cut_over", "finalized")


def strategy_for(app: App) -> Strategy:
    from consolidator.engine.dump import DumpStrategy
    from consolidator.engine.imported import ImportStrategy
    from consolidator.engine.logical import LogicalStrategy
    from consolidator.engine.physical import PhysicalStrategy

    strategies: dict[str, type[Strategy]] = {"dump": DumpStrategy, "logical": LogicalStrategy,
                                            "physical": PhysicalStrategy, "import": ImportStrategy}
    try:
        return strategies[app.strategy.name]()
    except KeyError:
        raise ConfigError(
            f"strategy {app.strategy.name!r} of app {app.name} cannot be executed by this version",
            hint="available: " + ", ".join(sorted(strategies)) + "; change it in the plan",
        ) from None


@dataclass
class ExecuteOptions(RunOptions):
    apps: list[str] = field(default_factory=list)
    resume: bool = False
    restart: bool = False
    source_dsn: str | None = None
    gated: bool = False  # stop each app at its gate (gate_step) for a human go; resume later to cut over


AWAITING = "awaiting_cutover"  # a gated run stopped before the app's gate step


def gate_step(app: App) -> str:
    """Where a gated run waits for a person's go. With replication the target stays current, so the wait
    is before the writes stop (fence); dump and import fence the source for the copy anyway, so the
    wait is before the switch."""
    names = [s.name for s in app.steps]
    if app.strategy.name in ("logical", "physical") and "fence" in names:
        return "fence"
    return "cutover"


@dataclass
class AppOutcome:
    name: str
    state: str
    seconds: float
    error: str | None = None
    exit_code: int = 0  # the documented code of the error that stopped the app


@dataclass
class ExecuteResult:
    apps: list[AppOutcome] = field(default_factory=list)
    summary: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(a.state in DONE_STATES for a in self.apps)

    @property
    def exit_code(self) -> int:
        """0 when every app is cut over; else the first failure's code (4 refused, 5 connection, 1 other)."""
        if self.ok:
            return 0
        return next((a.exit_code for a in self.apps if a.exit_code), 1)


def selected_apps(plan: Plan, names: list[str]) -> list[App]:
    if not names:
        return list(plan.apps)
    out = []
    for name in names:
        try:
            out.append(plan.app(name))
        except KeyError:
            raise ConfigError(f"--app {name}: not in the plan", hint="apps: " + ", ".join(a.name for a in plan.apps)) \
                from None  # fmt: skip
    return out


def make_provider(plan: Plan, plan_dir: Path) -> Provider:
    return provider_for(plan, plan_dir)


def preflight_source(dsn: str) -> None:
    """The engine reads password hashes and fences other sessions: it needs a superuser."""
    with connect(dsn, dbname="postgres") as conn:
        row = conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not row or not row[1]:
        user = row[0] if row else "?"
        raise PreconditionError(
            f"role {user!r} is not a superuser on the source",
            hint="execute needs a superuser (it copies password hashes and fences app sessions)",
        )


def _prepare_journal(plan_dir: Path, plan: Plan, opts: ExecuteOptions, provider: Provider, source: str) -> Journal:
    journal = Journal.load(plan_dir)
    if journal is not None and opts.restart:
        _restart(plan, journal, provider, source, plan_dir)
        journal = None
    if journal is not None and not opts.resume:
        unfinished = [a.name for a in journal.state.apps.values() if a.state not in (*DONE_STATES, "rolled_back")]
        if unfinished:
            raise PreconditionError(
                f"a previous run did not finish ({', '.join(unfinished)})",
                hint="continue it with execute --resume, or start over with execute --restart",
            )
    if journal is not None and journal.state.plan_sha256 != plan_digest(plan_dir):
        raise PreconditionError("the plan changed since this run started",
                                hint="start over with execute --restart")  # fmt: skip
    if journal is None:
        journal = Journal.create(plan_dir, [a.name for a in plan.apps])
    return journal


def _restart(plan: Plan, journal: Journal, provider: Provider, source: str, plan_dir: Path) -> None:
    """Undo a half-finished run: unfence sources, remove targets; refuse when an app is cut over."""
    live = [a.name for a in journal.state.apps.values() if a.state in DONE_STATES]
    if live:
        raise PreconditionError(f"apps already cut over: {', '.join(live)}",
                                hint="use rollback per app first; --restart would drop live targets")  # fmt: skip
    for state in journal.state.apps.values():
        app = next((a for a in plan.apps if a.name == state.name), None)
        if app is not None:
            handle = provider.describe(plan, app)
            strategy_for(app).remove_replication(plan, app, source, handle.conninfo if handle else None,
                                                 state.facts, final=False)  # fmt: skip
        for dbname, record in state.fence.items():
            fence.restore_acl(source, dbname, record)
        if app is not None:
            provider.revert_switch(plan, app)  # never leave the app pointed at a removed target
            provider.teardown(plan, app)
    journal.path.unlink(missing_ok=True)
    shutil.rmtree(plan_dir / "work", ignore_errors=True)


def execute(plan_dir: Path, opts: ExecuteOptions, sink: EventSink | None = None) -> ExecuteResult:
    plan = load_plan(plan_dir)
    source = opts.source_dsn or plan.source.conninfo
    apps = selected_apps(plan, opts.apps)
    strategies = {a.name: strategy_for(a) for a in apps}
    if opts.safety_dump:
        from consolidator.engine.safety import require_store

        require_store(plan)
    preflight_source(source)
    ensure_fresh(plan, source)
    provider = make_provider(plan, plan_dir)
    result = ExecuteResult()
    with exclusive(plan_dir), contextlib.closing(provider):
        for line in [] if in_copy_job() else provider.preflight(plan, apps):  # a copy Job's launcher ran it
            emit(sink, "log", f"preflight: {line}")
        journal = _prepare_journal(plan_dir, plan, opts, provider, source)
        journal.mirror = journal_mirror_from_env()  # inside a copy Job: followed through a ConfigMap
        for app in apps:
            result.apps.append(_run_app(plan, app, strategies[app.name], plan_dir, source, provider, journal, opts,
                                        sink))  # fmt: skip
        result.summary = write_summary(plan, journal, plan_dir)
    emit(sink, "summary", "execute finished", apps=[a.__dict__ for a in result.apps], ok=result.ok)
    return result


def _diagnose(provider: Provider, plan: Plan, app: App) -> str:
    """The provider's view of a target after a failure; never raises (it only adds to an error)."""
    try:
        return provider.diagnose(plan, app)
    except Exception:  # a diagnosis must not hide the error it explains
        return ""


def _run_app(plan: Plan, app: App, strategy: Strategy, plan_dir: Path, source: str, provider: Provider,
             journal: Journal, opts: ExecuteOptions, sink: EventSink | None) -> AppOutcome:  # fmt: skip
    state = journal.app(app.name)
    if state.state in DONE_STATES:
        emit(sink, "log", f"{app.name}: already {state.state}")
        return AppOutcome(app.name, state.state, 0.0)
    run = AppRun(plan=plan, app=app, plan_dir=plan_dir, source_dsn=source, provider=provider, journal=journal,
                 options=opts, sink=sink)  # fmt: skip
    started = time.monotonic()
    journal.update(lambda s: setattr(s.apps[app.name], "state", "running"))
    gate = gate_step(app) if opts.gated else None
    try:
        for step in app.steps:
            if journal.is_done(app.name, step.name):
                continue
            run.check_cancel()
            if step.name == gate:
                journal.update(lambda s: setattr(s.apps[app.name], "state", AWAITING))
                emit(sink, "log", f"{app.name}: ready — waiting for the go before {gate}", app=app.name, gate=gate)
                return AppOutcome(app.name, AWAITING, time.monotonic() - started)
            emit(sink, "step_start", f"{app.name}: {step.name}", step_id=step.id, app=app.name, step=step.name,
                 estimated_seconds=step.estimated_seconds)  # fmt: skip
            step_started = time.monotonic()
            with journal.run_step(app.name, step.name):
                strategy.run_step(run, step.name)
            emit(sink, "step_complete", f"{app.name}: {step.name} done", step_id=step.id, app=app.name,
                 step=step.name, seconds=round(time.monotonic() - step_started, 3))  # fmt: skip
    except (ConsolidatorError, psycopg.Error) as exc:
        message, hint = (exc.message, exc.hint) if isinstance(exc, ConsolidatorError) else explain(exc)
        trouble = "; ".join(p for p in _diagnose(provider, plan, app).split("; ") if p and p not in message)
        if trouble:
            message += f" — target {app.cluster_name}: {trouble}"
            if "No space left on device" in trouble:
                message += " (disk full)"
                hint = (f"free space where target {app.cluster_name} keeps its data, or raise its storage and "
                        "wal_storage overrides and plan again, then execute --resume")
        stopped = isinstance(exc, Interrupted)
        journal.update(lambda s: setattr(s.apps[app.name], "state", "interrupted" if stopped else "failed"))
        emit(sink, "step_errored", f"{app.name}: {message}", level="warning" if stopped else "error", app=app.name,
             hint=hint)  # fmt: skip
        code = int(exit_code_for(exc)) if isinstance(exc, ConsolidatorError) else 1
        return AppOutcome(app.name, "interrupted" if stopped else "failed", time.monotonic() - started, message,
                          code)  # fmt: skip
    return AppOutcome(app.name, journal.app(app.name).state, time.monotonic() - started)
