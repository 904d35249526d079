"""Source fingerprints: what a plan was made from, and whether the source still matches it.

Only DDL goes into the digests (never data or statistics), so a busy database keeps its
fingerprint; sizes are compared with a wide tolerance because live data grows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from consolidator.errors import PreconditionError
from consolidator.inventory.catalog import prepare_session, read_digest
from consolidator.inventory.model import Inventory
from consolidator.pg.connect import connect, parse_dsn
from consolidator.plan.model import DatabaseFingerprint, Fingerprint, Plan
from consolidator.report.format import human_bytes

SIZE_TOLERANCE = 2.0  # stale when a database grew or shrank by more than this factor


def from_inventory(inv: Inventory, databases: list[str]) -> Fingerprint:
    return Fingerprint(
        system_identifier=inv.server.system_identifier,
        version=inv.server.version,
        version_num=inv.server.version_num,
        databases={
            db.name: DatabaseFingerprint(
                size_bytes=db.size_bytes, digest=dict(db.catalog_digest), counts=dict(db.catalog_counts)
            )
            for db in inv.databases
            if db.name in databases
        },
    )


def _digest(dsn: str, dbname: str) -> tuple[str, DatabaseFingerprint | None]:
    try:
        with connect(dsn, dbname=dbname) as conn:
            prepare_session(conn)
            digest, counts = read_digest(conn)
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return dbname, DatabaseFingerprint(size_bytes=int(row[0]) if row else 0, digest=digest, counts=counts)
    except PreconditionError:
        return dbname, None  # dropped


def live(dsn: str, databases: list[str], jobs: int = 8) -> Fingerprint:
    """The fingerprint of the source as it is now, for the given databases."""
    with connect(dsn, dbname=parse_dsn(dsn).get("dbname") or "postgres") as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int"
        ).fetchone()
        assert row is not None
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    fp = Fingerprint(system_identifier=sysid[0] if sysid else "", version=str(row[0]).split(" ")[0],
                     version_num=int(row[1]))  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for name, dbfp in pool.map(lambda d: _digest(dsn, d), databases):
            if dbfp is not None:
                fp.databases[name] = dbfp
    return fp


def differences(planned: Fingerprint, now: Fingerprint) -> list[str]:
    """Human lines saying what changed; empty when the plan still matches."""
    if planned.system_identifier and now.system_identifier and planned.system_identifier != now.system_identifier:
        return [
            f"this is another server (system identifier {now.system_identifier}, "
            f"plan made on {planned.system_identifier})"
        ]
    out: list[str] = []
    if planned.version_num // 10000 != now.version_num // 10000:
        out.append(f"server major version changed: {planned.version} → {now.version}")
    for name, before in planned.databases.items():
        after = now.databases.get(name)
        if after is None:
            out.append(f"database {name!r} no longer exists")
            continue
        changed = [
            _category_change(cat, before, after)
            for cat in sorted(set(before.digest) | set(after.digest))
            if before.digest.get(cat) != after.digest.get(cat)
        ]
        if changed:
            out.append(f"database {name!r}: " + ", ".join(changed))
        low, high = before.size_bytes / SIZE_TOLERANCE, before.size_bytes * SIZE_TOLERANCE
        if before.size_bytes > 0 and not (low <= after.size_bytes <= high):
            out.append(
                f"database {name!r}: size {human_bytes(before.size_bytes)} → {human_bytes(after.size_bytes)} "
                "(sizing no longer fits)"
            )
    return out


def _category_change(category: str, before: Any, after: Any) -> str:
    b, a = before.counts.get(category, 0), after.counts.get(category, 0)
    return f"{category} changed ({b} → {a})" if a != b else f"{category} changed"


def ensure_fresh(plan: Plan, dsn: str) -> None:
    """Refuse (exit 4) with what changed when the source no longer matches the plan."""
    now = live(dsn, list(plan.fingerprint.databases))
    changes = differences(plan.fingerprint, now)
    if changes:
        raise PreconditionError(
            "saved plan is stale: " + "; ".join(changes),
            hint="create a new plan (consolidator plan …) and review it again",
        )
