"""Bucketed drill-down for a table whose fingerprints differ (verification.md §5, pg_comparator's scheme).

Tier 2: 64 key-hash buckets in one scan per side. Tier 3: sub-buckets, only inside differing buckets.
Tier 4: per-row (key, hash) in differing sub-buckets, diffed here. Key hashes need no index and do not
depend on collation or key distribution; what crosses the network grows with the differences, not the
table. Tables without a usable key bucket on the whole row and compare multisets of row hashes.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import psycopg
from psycopg import sql

from consolidator.verify.session import HashMethod, Side
from consolidator.verify.tables import Pair

BUCKET_SEED = 7
BUCKET_MASK = 63
ROWS_PER_SUBBUCKET = 256  # sizes tier 3 so tier 4 fetches a few hundred rows per difference
MAX_SUBBUCKETS = 256  # tier 4 budget per table; beyond it the counts are lower bounds
SAMPLES = 5  # keys quoted per class of difference
SAMPLE_TEXT = 60  # characters of a row quoted for tables without a key


def sub_bits(rows: int) -> int:
    """Bits of the tier-3 mask: about ROWS_PER_SUBBUCKET rows per sub-bucket, 6 (= tier 2) to 24."""
    return max(6, min(24, math.ceil(math.log2(max(rows, 1) / ROWS_PER_SUBBUCKET)) if rows > 0 else 6))


def _both(source: Side, target: Side, what: str, query: sql.Composable, params: list[Any]) -> tuple[Any, Any]:
    def run(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(query, params).fetchall()

    fs, ft = source.submit(what, run), target.submit(what, run)
    return fs.result(), ft.result()


def _scan(pair: Pair) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """(FROM, key text, row text). With a key, filters on the key hash run before any row is rendered;
    without one the key is the row, rendered once per row (``unnest`` keeps it from being inlined twice)."""
    if pair.key:
        return sql.SQL("ONLY {} AS t").format(pair.rel()), pair.key_text(), pair.row_text()
    x = sql.SQL("r.x")
    return sql.SQL("(SELECT unnest(ARRAY[{}]) AS x FROM ONLY {} AS t) AS r").format(pair.row_text(), pair.rel()), x, x


def _in(pair: Pair, method: HashMethod, mask: int) -> sql.Composable:
    """Rows whose key-hash bucket under ``mask`` is one of the parameter's."""
    bucket = method.hash(_scan(pair)[1], BUCKET_SEED)
    return sql.SQL("({} & {}) = ANY (%s::int8[])").format(bucket, sql.Literal(mask))


def _groups(pair: Pair, method: HashMethod, mask: int, where_mask: int | None) -> sql.Composable:
    scan, key, row = _scan(pair)
    where = sql.SQL(" WHERE {}").format(_in(pair, method, where_mask)) if where_mask is not None else sql.SQL("")
    return sql.SQL("SELECT {b} & {m}, count(*), sum({h})::text FROM {src}{where} GROUP BY 1").format(
        b=method.hash(key, BUCKET_SEED), m=sql.Literal(mask), h=method.hash(row, 0), src=scan, where=where
    )


def _differing(src: list[tuple[Any, ...]], tgt: list[tuple[Any, ...]]) -> list[int]:
    a = {int(r[0]): (int(r[1]), r[2]) for r in src}
    b = {int(r[0]): (int(r[1]), r[2]) for r in tgt}
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def drill_down(source: Side, target: Side, pair: Pair, method: HashMethod) -> None:
    """Classify the differing rows of ``pair`` into missing / extra / changed and quote the first keys."""
    res = pair.result
    what = f"table {res.object} (drill-down)"
    buckets = _differing(*_both(source, target, what, _groups(pair, method, BUCKET_MASK, None), []))
    bits = sub_bits(max(res.rows_source or 0, res.rows_target or 0))
    mask = (1 << bits) - 1
    subs = buckets
    if bits > 6 and buckets:
        subs = _differing(*_both(source, target, what, _groups(pair, method, mask, BUCKET_MASK), [buckets]))
    capped = len(subs) > MAX_SUBBUCKETS
    subs = subs[:MAX_SUBBUCKETS]
    if subs and pair.key:
        _rows_by_key(source, target, pair, method, mask, subs)
    elif subs:
        _rows_by_hash(source, target, pair, method, mask, subs)
    res.detail = _describe(res.missing, res.extra, res.changed, res.samples, capped, res.detail)


def _rows_by_key(source: Side, target: Side, pair: Pair, method: HashMethod, mask: int, subs: list[int]) -> None:
    res = pair.result
    query = sql.SQL("SELECT {k}, {h} FROM ONLY {rel} AS t WHERE {w} ORDER BY {o}").format(
        k=pair.key_text(), h=method.hash(pair.row_text(), 0), rel=pair.rel(),
        w=_in(pair, method, mask), o=pair.key_order(),
    )  # fmt: skip
    src_rows, tgt_rows = _both(source, target, f"table {res.object} (drill-down)", query, [subs])
    res.drill_rows += len(src_rows) + len(tgt_rows)
    src, tgt = _by_key(src_rows), _by_key(tgt_rows)
    missing = [k for k in src if k not in tgt]
    extra = [k for k in tgt if k not in src]
    changed, duplicated = [], []
    for k in (k for k in src if k in tgt and src[k] != tgt[k]):
        if src[k].total() == tgt[k].total() == 1:
            changed.append(k)
        else:  # the key repeats on one side: its unique constraint is missing there
            duplicated.append(k)
            res.missing += (src[k] - tgt[k]).total()
            res.extra += (tgt[k] - src[k]).total()
    res.missing += sum(src[k].total() for k in missing)
    res.extra += sum(tgt[k].total() for k in extra)
    res.changed = len(changed)
    columns = _changed_columns(source, target, pair, method, mask, subs, changed[:SAMPLES])
    res.samples = [f"missing {k}" for k in missing[:SAMPLES]]
    res.samples += [f"changed {k}: {', '.join(columns.get(k, [])) or '?'}" for k in changed[:SAMPLES]]
    res.samples += [f"extra {k}" for k in extra[:SAMPLES]]
    res.samples += [f"duplicate key {k}: {src[k].total()} on source, {tgt[k].total()} on target"
                    for k in duplicated[:SAMPLES]]  # fmt: skip


def _by_key(rows: list[tuple[Any, ...]]) -> dict[str, Counter[int]]:
    """key → multiset of row hashes (one hash per key unless the key is duplicated on that side)."""
    out: dict[str, Counter[int]] = {}
    for key, digest in rows:
        out.setdefault(key, Counter())[digest] += 1
    return out


def _changed_columns(
    source: Side, target: Side, pair: Pair, method: HashMethod, mask: int, subs: list[int], keys: list[str]
) -> dict[str, list[str]]:
    """Which columns differ for a few changed keys: per-column hashes of just those rows."""
    if not keys:
        return {}
    hashes = sql.SQL(", ").join(method.hash(sql.SQL("({})::text").format(pair.col(c)), 0) for c in pair.columns)
    query = sql.SQL("SELECT {k}, ARRAY[{hs}]::int8[] FROM ONLY {rel} AS t WHERE {w} AND {k} = ANY (%s::text[])").format(
        k=pair.key_text(), hs=hashes, rel=pair.rel(), w=_in(pair, method, mask)
    )
    src_rows, tgt_rows = _both(source, target, f"table {pair.result.object} (drill-down)", query, [subs, keys])
    pair.result.drill_rows += len(src_rows) + len(tgt_rows)
    src, tgt = dict(src_rows), dict(tgt_rows)
    out: dict[str, list[str]] = {}
    for key in keys:
        a, b = src.get(key) or [], tgt.get(key) or []
        out[key] = [c.name for i, c in enumerate(pair.columns) if i >= len(a) or i >= len(b) or a[i] != b[i]]
    return out


def _rows_by_hash(source: Side, target: Side, pair: Pair, method: HashMethod, mask: int, subs: list[int]) -> None:
    """No key: compare multisets of row hashes (a changed row shows as one missing plus one extra)."""
    res = pair.result
    scan, _, text = _scan(pair)
    query = sql.SQL(
        "SELECT {h}, count(*), min(left({txt}, {n}) COLLATE \"C\") FROM {src} WHERE {w} GROUP BY 1 ORDER BY 3"
    ).format(h=method.hash(text, 0), txt=text, n=sql.Literal(SAMPLE_TEXT + 1), src=scan,
             w=_in(pair, method, mask))  # fmt: skip
    src_rows, tgt_rows = _both(source, target, f"table {res.object} (drill-down)", query, [subs])
    res.drill_rows += len(src_rows) + len(tgt_rows)
    src = Counter({r[0]: int(r[1]) for r in src_rows})
    tgt = Counter({r[0]: int(r[1]) for r in tgt_rows})
    sample = {r[0]: _clip(r[2]) for r in (*src_rows, *tgt_rows)}
    missing, extra = src - tgt, tgt - src
    res.missing, res.extra = sum(missing.values()), sum(extra.values())
    res.samples = [_multi("missing", sample[h], n) for h, n in list(missing.items())[:SAMPLES]]
    res.samples += [_multi("extra", sample[h], n) for h, n in list(extra.items())[:SAMPLES]]


def _clip(text: str) -> str:
    return text if len(text) <= SAMPLE_TEXT else text[:SAMPLE_TEXT] + "…"


def _multi(kind: str, text: str, n: int) -> str:
    return f"{kind} {text}" + (f" ×{n}" if n > 1 else "")


def _describe(missing: int, extra: int, changed: int, samples: list[str], capped: bool, before: str) -> str:
    parts = [f"{n} row{'s' if n != 1 else ''} {label}" for n, label in (
        (missing, "missing on target"), (extra, "extra on target"), (changed, "changed")) if n]  # fmt: skip
    if not parts:
        text = "fingerprints differ but no row differs at the row level (did the source change while verifying?)"
    else:
        text = ("at least " if capped else "") + ", ".join(parts)
        if samples:
            text += "; first: " + "; ".join(samples)
    return f"{before}; {text}" if before else text
