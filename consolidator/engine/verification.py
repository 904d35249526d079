"""Verification of one app: every database compared with its source, results journaled.

What differs by design per strategy is passed as ``expected`` (reported as skipped, never as a
match); everything else must be equal for the cutover to happen.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from consolidator.engine.run import AppRun
from consolidator.fsutil import write_atomic
from consolidator.serde import to_data

if TYPE_CHECKING:
    from consolidator.verify.model import CheckResult, VerifyReport

# Materialized views are refreshed on the target from the copied data, while the source's still hold
# whatever their last refresh saw: their *content* may differ by design for every strategy that
# refreshes. Whether each one is populated is still checked (populated_matviews below).
EXPECTED_BY_STRATEGY: dict[str, frozenset[str]] = {
    "dump": frozenset({"matviews"}),
    "logical": frozenset({"matviews"}),
    "physical": frozenset(),
    "import": frozenset({"matviews"}),
}

POPULATED = "SELECT schemaname, matviewname FROM pg_matviews WHERE ispopulated"


def populated_matviews(source_dsn: str, target_dsn: str, source_db: str, target_db: str) -> list[CheckResult]:
    """Every view populated on the source must be populated on the target."""
    from consolidator.pg.connect import connect
    from consolidator.verify.model import CheckResult

    with connect(source_dsn, dbname=source_db) as src, connect(target_dsn, dbname=target_db) as dst:
        want = {tuple(r) for r in src.execute(POPULATED)}
        have = {tuple(r) for r in dst.execute(POPULATED)}
    return [CheckResult("matviews", f"{schema}.{name}", "differs", "populated", "not populated",
                        "REFRESH MATERIALIZED VIEW on the target") for schema, name in sorted(want - have)]


def owner_map(run: AppRun) -> dict[str, str]:
    from consolidator.engine.globals import owner_map_for, superuser_name, superusers

    return owner_map_for(run.app, superusers(run.source_dsn), superuser_name(run.target.conninfo))


def verify_app(run: AppRun) -> VerifyReport:
    """Compare every database of the app; write the report next to the journal."""
    from consolidator.verify.model import VerifyReport
    from consolidator.verify.run import verify_database

    mapping = owner_map(run)
    roles = [r.name for r in run.app.roles]
    state = run.journal.app(run.app.name)
    reports = []
    for db in run.app.databases:
        # A fenced source and a closed target show temporary ACLs: compare the recorded real ones.
        acls = {}
        if db.source in state.fence:
            acls["source"] = state.fence[db.source].get("acl")
        if db.target in state.target_fence:
            acls["target"] = state.target_fence[db.target].get("acl")
        reports.append(verify_database(
            run.source_dsn, run.target.conninfo, source_db=db.source, target_db=db.target, roles=roles,
            owner_map=mapping, jobs=run.options.jobs, sink=run.sink, database_acls=acls,
            expected=EXPECTED_BY_STRATEGY.get(run.app.strategy.name, frozenset()),
        ))  # fmt: skip
        reports[-1].checks += populated_matviews(run.source_dsn, run.target.conninfo, db.source, db.target)
    report = VerifyReport(databases=reports)
    path = run.plan_dir / "verify" / f"{run.app.cluster_name}.json"
    write_atomic(path, json.dumps(to_data(report), indent=1, ensure_ascii=False, default=str) + "\n")
    return report
