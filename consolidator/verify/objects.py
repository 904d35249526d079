"""Value checks beyond tables (verification.md §6): sequence positions, large objects, matview contents.

These are not "equal or not" catalog rows: a target sequence may be ahead of its source, a large object
is compared by content, and a materialized view over now() may differ without anything being wrong.
"""

from __future__ import annotations

from collections import Counter

from consolidator.verify import catalog_sql as q
from consolidator.verify.catalog import SideCtx, diff
from consolidator.verify.model import DIFFERS, MATCH, SKIPPED, WARNING, CheckResult, TableResult


def sequence_values(src: SideCtx, tgt: SideCtx, expected: frozenset[str] = frozenset()) -> list[CheckResult]:
    """Target ``last_value`` must be at or past the source's (in the sequence's direction)."""
    source = {r[0]: r[1:] for r in src.conn.execute(q.SEQUENCE_VALUES)}
    target = {r[0]: r[1:] for r in tgt.conn.execute(q.SEQUENCE_VALUES)}
    out: list[CheckResult] = []
    compared = 0
    for name in sorted(source.keys() & target.keys()):  # presence is the "sequences" category's job
        (inc, src_priv, src_last), (_, tgt_priv, tgt_last) = source[name], target[name]
        for side, priv in (("source", src_priv), ("target", tgt_priv)):
            if not priv:
                out.append(CheckResult("sequence_values", name, SKIPPED,
                                       detail=f"cannot read the {side} sequence: GRANT SELECT ON SEQUENCE {name} "
                                              "to the verifying role"))  # fmt: skip
                break
        else:
            compared += 1
            check = _sequence(name, int(inc), src_last, tgt_last)
            if check:
                out.append(check)
    if "sequence_values" in expected:
        for c in out:
            if c.status == DIFFERS:
                c.status, c.detail = SKIPPED, "differs by design for this strategy (sequences synced at cutover)"
    if not any(c.status != SKIPPED for c in out):
        out.insert(0, CheckResult("sequence_values", "*", MATCH, f"{compared} sequences", f"{compared} sequences"))
    return out


def _sequence(name: str, inc: int, src: int | None, tgt: int | None) -> CheckResult | None:
    if src is None:  # readable and NULL: never used on the source
        return None
    literal = name.replace("'", "''")
    fix = f"SELECT setval('{literal}', {src}) on the target"
    if tgt is None:
        return CheckResult("sequence_values", name, DIFFERS, str(src), "unused",
                           detail=f"target sequence never advanced: {fix}")  # fmt: skip
    behind = tgt < src if inc > 0 else tgt > src
    if behind:
        return CheckResult("sequence_values", name, DIFFERS, str(src), str(tgt), detail=f"target is behind: {fix}")
    return None


def large_objects(src: SideCtx, tgt: SideCtx, expected: frozenset[str] = frozenset()) -> list[CheckResult]:
    """Count and content hash first; per-object content only when those differ. Owners per role."""
    if "large_objects" in expected:  # not carried by this strategy: do not read every object for nothing
        counts = [ctx.conn.execute(q.LARGE_OBJECT_COUNT).fetchone() for ctx in (src, tgt)]
        n_src, n_tgt = (f"{int(r[0])} objects" if r else None for r in counts)
        return [CheckResult("large_objects", "*", MATCH if n_src == n_tgt else SKIPPED, n_src, n_tgt,
                            "" if n_src == n_tgt else "differs by design for this strategy")]  # fmt: skip
    s_sum = src.conn.execute(q.LARGE_OBJECT_SUMMARY).fetchone()
    t_sum = tgt.conn.execute(q.LARGE_OBJECT_SUMMARY).fetchone()
    assert s_sum is not None and t_sum is not None
    out: list[CheckResult] = []
    if tuple(s_sum) != tuple(t_sum):
        source = {f"large object {oid}": digest for oid, digest in src.conn.execute(q.LARGE_OBJECTS)}
        target = {f"large object {oid}": digest for oid, digest in tgt.conn.execute(q.LARGE_OBJECTS)}
        out += [c for c in diff("large_objects", source, target, expected) if c.status != MATCH]
        for c in out:
            if c.status == DIFFERS:
                c.detail = "content differs"
    owners_src = _owner_counts(src)
    owners_tgt = _owner_counts(tgt)
    out += [c for c in diff("large_objects", owners_src, owners_tgt, expected) if c.status != MATCH]
    if not out:
        n = int(s_sum[0])
        return [CheckResult("large_objects", "*", MATCH, f"{n} objects", f"{int(t_sum[0])} objects")]
    return out


def _owner_counts(ctx: SideCtx) -> dict[str, str]:
    counts: Counter[str] = Counter()
    for owner, n in ctx.conn.execute(q.LARGE_OBJECT_OWNERS):
        counts[ctx.name(owner)] += int(n)
    return {f"large objects owned by {owner}": f"{n} objects" for owner, n in counts.items()}


def volatile_matviews(ctx: SideCtx) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in ctx.conn.execute(q.MATVIEWS_VOLATILE)}


def matview_checks(
    results: list[TableResult], volatile: set[tuple[str, str]], expected: frozenset[str] = frozenset()
) -> list[CheckResult]:
    """Matview fingerprints as checks; one over non-immutable functions warns instead of failing."""
    out: list[CheckResult] = []
    for r in results:
        status, detail = r.status, r.detail
        if status not in (MATCH, SKIPPED) and (r.schema, r.name) in volatile:
            status = WARNING
            detail = "depends on non-immutable functions (now(), random()…), may legitimately differ; " + detail
        if status not in (MATCH, SKIPPED) and "matviews" in expected:
            status, detail = SKIPPED, "differs by design for this strategy; " + detail
        out.append(CheckResult("matviews", r.object, status, _rows(r.rows_source, r.hash_source),
                               _rows(r.rows_target, r.hash_target), detail))  # fmt: skip
    return out


def _rows(n: int | None, digest: str | None) -> str | None:
    return None if n is None else f"{n} rows, hash {digest}"
