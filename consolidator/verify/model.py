"""Verification results: plain dataclasses that travel as JSON through :func:`consolidator.serde.to_data`.

Hashes are decimal strings (sums of 64-bit hashes exceed what JSON readers keep exactly as numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Statuses shared by tables and checks. ``warning`` is reported but never fails a verification
# (e.g. a materialized view over now() that legitimately differs).
MATCH = "match"
DIFFERS = "differs"
MISSING = "missing_on_target"
EXTRA = "extra_on_target"
SKIPPED = "skipped"
WARNING = "warning"
TABLE_STATUSES = (MATCH, DIFFERS, MISSING, EXTRA, SKIPPED)
CHECK_STATUSES = (*TABLE_STATUSES, WARNING)
PASSING = frozenset({MATCH, SKIPPED, WARNING})

# Check categories (``expected`` names these; ``data`` and ``unlogged_data`` apply to tables).
CATEGORIES = (
    "data", "unlogged_data", "schemas", "relations", "columns", "constraints", "indexes", "views",
    "functions", "triggers", "types", "sequences", "extensions", "owners", "acl", "roles", "memberships",
    "role_passwords", "settings", "database", "sequence_values", "large_objects", "matviews",
)  # fmt: skip

_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_name(name: str) -> str:
    """Identifier as SQL prints it: bare when plain lower case, else double-quoted (keywords aside)."""
    return name if _PLAIN_IDENT.match(name) else '"' + name.replace('"', '""') + '"'


@dataclass
class TableResult:
    """Tier-1 fingerprint of one table on both sides plus, on mismatch, the drill-down summary."""

    schema: str
    name: str
    kind: str  # table | partition | partitioned | foreign | matview
    rows_source: int | None = None
    rows_target: int | None = None
    hash_source: str | None = None  # decimal sum(s) of 64-bit row hashes ("h1:h2" for md5)
    hash_target: str | None = None
    status: str = MATCH
    detail: str = ""
    bytes: int = 0  # pg_table_size on the source (includes TOAST): the cost driver
    key: list[str] = field(default_factory=list)  # drill-down key columns; [] = whole row (multiset)
    missing: int = 0  # rows on source only
    extra: int = 0  # rows on target only
    changed: int = 0  # same key, different content
    samples: list[str] = field(default_factory=list)  # "missing (42)", "changed (7): price"
    drill_rows: int = 0  # rows the drill-down fetched (both sides): grows with differences, not table size
    seconds: float = 0.0
    object: str = ""  # the name as SQL prints it (``public."user"``), as in the catalog checks

    def __post_init__(self) -> None:
        self.object = self.object or f"{quote_name(self.schema)}.{quote_name(self.name)}"

    @property
    def ok(self) -> bool:
        return self.status in PASSING


@dataclass
class CheckResult:
    """One catalog comparison: a differing object, or one summary line per category that matches."""

    category: str
    object: str
    status: str
    source: str | None = None
    target: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in PASSING


@dataclass
class DatabaseReport:
    """Everything compared between one source database and its target."""

    source_db: str
    target_db: str
    tables: list[TableResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    snapshot: str | None = None  # exported source snapshot all table scans shared, when used
    source_version: str = ""
    target_version: str = ""
    hash_method: str = ""  # hashextended | md5 (encoding differs between sides)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables) and all(c.ok for c in self.checks)

    def differences(self) -> list[TableResult | CheckResult]:
        """Everything that is neither a match nor skipped by design (warnings included, they do not fail)."""
        out: list[TableResult | CheckResult] = [t for t in self.tables if t.status not in (MATCH, SKIPPED)]
        out.extend(c for c in self.checks if c.status not in (MATCH, SKIPPED))
        return out

    def table(self, schema: str, name: str) -> TableResult | None:
        return next((t for t in self.tables if t.schema == schema and t.name == name), None)

    def summary(self) -> str:
        failing = [d for d in self.differences() if not d.ok]
        warnings = len(self.differences()) - len(failing)
        matched = sum(1 for t in self.tables if t.status == MATCH)
        text = f"{self.source_db} → {self.target_db}: {matched}/{len(self.tables)} tables match"
        text += f", {len(failing)} difference(s)" if failing else ", no differences"
        return text + (f", {warnings} warning(s)" if warnings else "")


@dataclass
class VerifyReport:
    """One report per migrated database of an app (or a whole plan)."""

    databases: list[DatabaseReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.databases)
