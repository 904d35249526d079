"""Ordered steps per strategy with estimated durations: what ``execute`` will run, in order.

Step names are part of the scriptable contract (``status --json``): ``schema``, ``copy``,
``indexes``, ``cutover`` and ``verify`` keep their meaning across versions.
"""

from __future__ import annotations

from consolidator.plan.estimates import (
    DEFAULT_THROUGHPUT,
    SizeFacts,
    Throughput,
    copy_seconds,
    index_seconds,
    round_seconds,
    verify_seconds,
)
from consolidator.plan.model import Step
from consolidator.report.format import human_bytes

FENCE_SECONDS = 1.0
SWITCH_SECONDS = 1.0


def _step(app: str, name: str, description: str, seconds: float, blocked: bool = False) -> Step:
    return Step(id=f"{app}/{name}", name=name, description=description,
                estimated_seconds=round_seconds(seconds), writes_blocked=blocked)  # fmt: skip


def build_steps(app: str, strategy: str, facts: SizeFacts, whole_instance_bytes: int = 0,
                tp: Throughput = DEFAULT_THROUGHPUT) -> list[Step]:  # fmt: skip
    """The ordered steps of one app."""
    data = human_bytes(facts.data_bytes)
    copy = copy_seconds(facts, tp)
    index = index_seconds(facts, tp)
    verify = verify_seconds(facts, tp)
    provision = _step(app, "provision", "create the target cluster from the sizing and wait until ready", 30)
    roles = _step(app, "roles", "create the roles the app needs with attributes, memberships, settings, hashes", 2)
    fence = _step(app, "fence", "revoke CONNECT from app roles on the source and end their sessions", FENCE_SECONDS,
                  True)  # fmt: skip
    seqs = _step(app, "sequences", "set every sequence on the target from the fenced source", 1, True)
    verify_step = _step(app, "verify", "compare schema, roles, privileges, row counts and content hashes",
                        verify, True)  # fmt: skip
    cutover = _step(app, "cutover", "run the switch hooks and open the target to the app roles", SWITCH_SECONDS,
                    True)  # fmt: skip
    if strategy == "dump":
        return [
            provision, roles, fence,
            _step(app, "schema", "restore pre-data schema with pg_dump/pg_restore of the target major", 3, True),
            _step(app, "copy", f"parallel COPY of {data} from one exported snapshot, largest tables first",
                  copy, True),
            _step(app, "indexes", "build indexes and constraints in parallel", index, True),
            _step(app, "large_objects", "copy large objects", 1 + facts.large_object_bytes / tp.copy_bytes_per_s,
                  True),
            seqs,
            _step(app, "analyze", "ANALYZE the target", 1 + facts.data_bytes / (500 * 1024 * 1024), True),
            verify_step, cutover,
        ]  # fmt: skip
    if strategy == "logical":
        return [
            provision, roles,
            _step(app, "schema", "restore the schema (pre-data and post-data) on the target", 5),
            _step(app, "publication", "create a publication for the app's tables on the source", 1),
            _step(app, "copy", f"subscription with initial copy of {data}; wait until every table is ready",
                  copy + index),
            _step(app, "replicate", "stream changes; report lag until cutover", 0),
            fence,
            _step(app, "drain", "wait until the target applied past the fence LSN (exact, no tolerance)", 1, True),
            _step(app, "cutover_copy", "copy unlogged/no-key tables and large objects while fenced", 1, True),
            seqs,
            _step(app, "matviews", "refresh materialized views on the target", 1, True),
            verify_step, cutover,
        ]  # fmt: skip
    if strategy == "physical":
        whole = human_bytes(whole_instance_bytes)
        base = copy_seconds(SizeFacts(whole_instance_bytes, 0, whole_instance_bytes, 1), tp)
        return [
            provision,
            _step(app, "copy", f"pg_basebackup of the whole instance ({whole}) into a streaming standby", base),
            _step(app, "replicate", "stream WAL from the source; report replay lag until cutover", 0),
            fence,
            _step(app, "drain", "wait until the standby replayed past the fence LSN", 1, True),
            _step(app, "promote", "promote the standby", 5, True),
            _step(app, "drop_foreign", "drop the databases that do not belong to this app", 2, True),
            verify_step, cutover,
        ]  # fmt: skip
    return [  # import (operator-driven, offline: writes after the dump starts would be lost)
        fence,
        _step(app, "provision", "apply the Cluster with bootstrap.initdb.import; CloudNativePG dumps and restores",
              30 + copy + index, True),
        roles,
        _step(app, "privileges", "restore ownership, grants and settings the operator's import drops", 2, True),
        seqs, verify_step, cutover,
    ]  # fmt: skip


def downtime_seconds(steps: list[Step]) -> float:
    """How long app writes are blocked: the sum of blocked steps."""
    return round_seconds(sum(s.estimated_seconds for s in steps if s.writes_blocked))
