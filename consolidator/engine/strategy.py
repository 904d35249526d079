"""The strategy interface and the steps every strategy shares (written once, here).

A strategy is the list of step names in the plan plus a ``step_<name>`` method for each; the
executor runs them in order and journals each. Shared steps: provision, roles, fence, sequences,
large objects, verify, cutover. Strategies add their own copy mechanics.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from consolidator.engine import fence
from consolidator.engine.hooks import run_hooks
from consolidator.engine.largeobjects import copy_large_objects
from consolidator.engine.run import AppRun
from consolidator.engine.sequences import read_sequences, set_sequences
from consolidator.errors import ConfigError, StepFailed
from consolidator.events import emit
from consolidator.pg.connect import connect
from consolidator.plan.model import App, Plan

log = logging.getLogger(__name__)


def refresh_in_dependency_order(conn: Any, views: list[tuple[str, str]]) -> None:
    """REFRESH each view; one reading a view not yet populated waits for the next pass."""
    pending = list(views)
    for _ in range(len(views)):
        waiting = []
        for schema, name in pending:
            try:
                conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name)))
            except psycopg.errors.ObjectNotInPrerequisiteState:
                waiting.append((schema, name))
        if not waiting:
            return
        pending = waiting
    raise StepFailed(f"materialized views could not be refreshed: {pending[0][0]}.{pending[0][1]} …",
                     hint="refresh them by hand on the target, then resume")  # fmt: skip


def describe_difference(item: Any) -> str:
    """``table public.orders differs (2 rows missing on target…)`` / ``acl … differs``."""
    if hasattr(item, "schema"):
        what = f"table {item.schema}.{item.name}"
    else:
        what = f"{item.category} {item.object}"
    return f"{what} {item.status}" + (f" ({item.detail})" if item.detail else "")


class Strategy:
    """Base of every strategy; subclasses add ``step_<name>`` for their own steps."""

    name = "base"
    # Steps to run again after a rollback (the fence and everything after it).
    reset_after_rollback: tuple[str, ...] = ("fence", "verify", "cutover")

    def remove_replication(self, plan: Plan, app: App, source_dsn: str, target_conninfo: str | None,
                           facts: dict[str, Any], *, final: bool) -> list[str]:  # fmt: skip
        """Drop what keeps the target following the source (slots retain WAL on a shared source).

        Called by rollback (``final=False``), finalize (``final=True``), teardown and --restart.
        Strategies without replication objects have nothing to do.
        """
        return []

    def run_step(self, run: AppRun, step: str) -> None:
        method = getattr(self, f"step_{step}", None)
        if method is None:
            raise ConfigError(f"strategy {self.name} has no step {step!r} (app {run.app.name})",
                              hint="create the plan again with this version of consolidator")  # fmt: skip
        method(run)

    # -- shared steps ---------------------------------------------------------------------

    def step_provision(self, run: AppRun) -> None:
        handle = run.provider.provision(run.plan, run.app)
        run.target = handle
        run.journal.update(lambda s: s.apps[run.app.name].target.update(
            conninfo=handle.conninfo, passfile=handle.passfile, app_conninfo=handle.app_conninfo))  # fmt: skip

    def step_roles(self, run: AppRun) -> None:
        """Roles and database shells on the target, then keep the target closed until cutover."""
        from consolidator.engine.globals import copy_roles, ensure_databases, owner_map_for, superuser_name, superusers

        target = run.target
        for line in copy_roles(run.source_dsn, target.conninfo, run.app.roles):
            emit(run.sink, "log", f"{run.app.name}: {line}")
        owner_map = owner_map_for(run.app, superusers(run.source_dsn), superuser_name(target.conninfo))
        for line in ensure_databases(run.source_dsn, target.conninfo, run.app.databases, owner_map=owner_map,
                                     force=run.options.force):  # fmt: skip
            emit(run.sink, "log", f"{run.app.name}: {line}")
        for db in run.app.databases:
            # ensure_databases just set the source's ACL: journal it before closing (a crash between the
            # two must never make a closed ACL the one cutover restores), then close.
            if db.target not in run.journal.app(run.app.name).target_fence:
                record = fence.read_acl(target.conninfo, db.target)
                run.journal.update(lambda s, r=record, d=db.target: s.apps[run.app.name].target_fence.update({d: r}))
            fence.close_database(target.conninfo, db.target)

    def step_fence(self, run: AppRun) -> None:
        """Stop the app's writes on the source: revoke CONNECT, end sessions (recorded for rollback).

        The provider holds new connections first (a Pooler's PAUSE) until the cutover resumes them."""
        if run.options.safety_dump:
            from consolidator.engine.safety import take_safety_dumps

            take_safety_dumps(run)  # before anything changes on the source
        for line in run.provider.pause_traffic(run.plan, run.app):
            emit(run.sink, "log", f"{run.app.name}: {line}")
        for db in run.app.databases:
            # Journal the ACL first: after a crash between the two the record is still the original.
            if db.source not in run.journal.app(run.app.name).fence:
                record = fence.read_acl(run.source_dsn, db.source)
                run.journal.update(lambda s, r=record, d=db.source: s.apps[run.app.name].fence.update({d: r}))
            fence.close_database(run.source_dsn, db.source)
            emit(run.sink, "log", f"{run.app.name}: fenced {db.source} on the source")

    def step_sequences(self, run: AppRun) -> None:
        for db in run.app.databases:
            with connect(run.source_dsn, dbname=db.source) as src, \
                    connect(run.target.conninfo, dbname=db.target) as dst:  # fmt: skip
                count = set_sequences(dst, read_sequences(src))
            emit(run.sink, "log", f"{run.app.name}: set {count} sequences in {db.target}")

    def step_large_objects(self, run: AppRun) -> None:
        for db in run.app.databases:
            with connect(run.source_dsn, dbname=db.source) as src, \
                    connect(run.target.conninfo, dbname=db.target) as dst:  # fmt: skip
                count, size = copy_large_objects(src, dst)
            if count:
                emit(run.sink, "log", f"{run.app.name}: copied {count} large objects ({size} bytes) into {db.target}")

    def step_matviews(self, run: AppRun) -> None:
        """Refresh the materialized views that are populated on the source (copies never fill them)."""
        for db in run.app.databases:
            with connect(run.source_dsn, dbname=db.source) as src:
                views = src.execute(
                    "SELECT schemaname, matviewname FROM pg_matviews WHERE ispopulated ORDER BY 1, 2"
                ).fetchall()
            if not views:
                continue
            with connect(run.target.conninfo, dbname=db.target) as dst:
                refresh_in_dependency_order(dst, views)
            emit(run.sink, "log", f"{run.app.name}: refreshed {len(views)} materialized views in {db.target}")

    def step_verify(self, run: AppRun) -> None:
        from consolidator.engine.verification import verify_app

        report = verify_app(run)
        counted = {f"{db.target_db}/{t.schema}.{t.name}": t.rows_target for db in report.databases
                   for t in db.tables if t.rows_target is not None}  # fmt: skip

        def record(state: Any) -> None:
            app = state.apps[run.app.name]
            app.verified = report.ok
            for key, table in app.tables.items():  # streamed rows are counted nowhere else
                table.rows = counted.get(key, table.rows)

        run.journal.update(record)
        if not report.ok:
            failing = [f"{db.target_db}: {describe_difference(d)}" for db in report.databases
                       for d in db.differences() if not d.ok]  # fmt: skip
            raise StepFailed(
                f"verification of {run.app.name} failed: " + "; ".join(failing[:3])
                + (f" (and {len(failing) - 3} more)" if len(failing) > 3 else ""),
                hint="the switch did not happen; run consolidator verify for the full report, fix, then resume "
                "or rollback",
            )

    def step_cutover(self, run: AppRun) -> None:
        """Shell switch hooks, open the target databases to the app roles, resume traffic, provider switch.

        The provider's switch (patch the app's config, restart its workloads and wait for their
        rollouts) comes after the open and the resume: restarted pods must reach their database to
        become available, so waiting for them with the target closed or the pooler paused would stall.
        """
        state = run.journal.app(run.app.name)
        if not state.verified:
            raise StepFailed(f"{run.app.name} is not verified: refusing to switch", hint="execute --resume")
        ran = run_hooks(run.app, run.target, "switch")
        run.journal.update(lambda s: s.apps[run.app.name].hooks_run.extend(ran))
        for db in run.app.databases:
            record = state.target_fence.get(db.target)
            if record is not None:
                fence.restore_acl(run.target.conninfo, db.target, record)
        for line in run.provider.resume_traffic(run.plan, run.app):
            emit(run.sink, "log", f"{run.app.name}: {line}")
        done = run.provider.switch_app(run.plan, run.app, run.target)
        for line in done:
            emit(run.sink, "log", f"{run.app.name}: {line}")
        run.journal.update(lambda s: s.apps[run.app.name].hooks_run.extend(
            d for d in done if d not in s.apps[run.app.name].hooks_run))  # fmt: skip
        run.journal.update(lambda s: setattr(s.apps[run.app.name], "state", "cut_over"))
        emit(run.sink, "log", f"{run.app.name}: cut over to {run.app.cluster_name}")
