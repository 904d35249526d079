"""The dry-run report: every view carries the same facts, and none of them trusts plan strings."""

from __future__ import annotations

import json
import re

import pytest

from consolidator.errors import ConfigError
from consolidator.inventory.model import Finding
from consolidator.plan.model import (
    App,
    AppDatabase,
    Fingerprint,
    Plan,
    PoolerSizing,
    RoleSpec,
    ServerSummary,
    Sizing,
    SizingEvidence,
    SourceRef,
    Step,
    Strategy,
    Target,
    Value,
)
from consolidator.report.format import human_bytes, human_duration, human_percent, human_rate
from consolidator.report.render import build_model, redact_conninfo, render_report

HOSTILE_DB = 'wiki <script>"x"'
UNICODE_ROLE = "ünïcode role"
HOSTILE_MESSAGE = "extension <img src=x onerror=alert(1)> is not in the image"
MANIFESTS = ["manifests/wiki/cluster.yaml", "manifests/billing/cluster.yaml", "manifests/billing/pooler.yaml"]
GiB = 1024**3
MiB = 1024**2


def _sizing(instances: int, cpu: str, memory: str, storage: str, wal: str | None, pooler: bool) -> Sizing:
    return Sizing(
        instances=Value(instances, "peak active sessions 3 > 1: one primary plus one standby for failover"),
        cpu=Value(cpu, "p95 active sessions 1.4 × 1.5 headroom, rounded up to 250m"),
        memory=Value(memory, "working set 600 MiB + 25% | shared_buffers rule, min 512Mi"),
        storage=Value(storage, "data 1.5 GiB × 2 growth headroom, rounded up to whole Gi"),
        wal_storage=Value(wal, "WAL 1.2 MiB/s × 30 min retention" if wal else "WAL rate under 64 KiB/s"),
        max_connections=Value(120, "peak 48 connections × 2, minimum 100"),
        pooler=PoolerSizing(
            enabled=pooler,
            reason="412 sessions/s with 80% idle connections" if pooler else "few long-lived sessions",
            instances=2,
            pool_mode="transaction",
            default_pool_size=20,
            max_client_conn=500,
        ),
        parameters={
            "shared_buffers": Value("256MB", "25% of memory"),
            "work_mem": Value("8MB", "temp files 3 MiB/s observed\nraised from 4MB"),
        },
        notes=["requests = limits for Guaranteed QoS"],
    )


def _wiki() -> App:
    return App(
        name="wiki",
        cluster_name="wiki-pg",
        namespace="apps",
        databases=[
            AppDatabase(source=HOSTILE_DB, target="wiki", owner=UNICODE_ROLE, size_bytes=3 * GiB // 2),
            AppDatabase(source="wiki_files", target="wiki_files", owner="wiki_owner", size_bytes=512 * MiB),
        ],
        evidence=SizingEvidence(
            databases=[HOSTILE_DB, "wiki_files"],
            size_bytes=2 * GiB,
            window_seconds=600,
            commits_per_s=12.5,
            rows_written_per_s=340.0,
            wal_bytes_per_s=1.2 * MiB,
            cache_hit_ratio=0.987,
            peak_connections=48,
            active_peak=3,
            active_p95=1.4,
            cpu_cores=0.6,
            cpu_source="pg_stat_statements",
            source_major=13,
        ),
        sizing=_sizing(2, "1500m", "1536Mi", "5Gi", "2Gi", pooler=True),
        strategy=Strategy(name="logical", reason="2 GiB with 340 rows/s written: replicate to keep downtime short"),
        roles=[
            RoleSpec(
                name=UNICODE_ROLE,
                login=True,
                password_type="scram",
                password_secret="wiki-owner-password",
                reasons=[f"owns database {HOSTILE_DB}"],
            ),
            RoleSpec(name="wiki_reader", login=True, member_of=[UNICODE_ROLE], reasons=["granted SELECT"]),
        ],
        extensions=["pg_trgm"],
        steps=[
            Step("create-cluster", "Create cluster", "Apply the Cluster manifest", 90.0),
            Step("initial-copy", "Initial copy", "Logical replication initial sync", 125.0),
            Step("cutover", "Cut over", "Stop writes, wait for lag 0, sync sequences", 45.0, writes_blocked=True),
        ],
        estimated_copy_seconds=125.0,
        estimated_downtime_seconds=45.0,
        findings=[
            Finding(
                "no-primary-key",
                "warning",
                "public.revisions",
                "table has no primary key: UPDATEs are not replicated",
                "add a primary key or REPLICA IDENTITY FULL",
                database=HOSTILE_DB,
            ),
            Finding(
                "extension-missing", "error", "pg_hack", HOSTILE_MESSAGE, "remove the extension", database="wiki_files"
            ),
            Finding("stats-reset", "info", "server", "statistics were reset recently", "sample for longer"),
        ],
    )


def _billing() -> App:
    return App(
        name="billing",
        cluster_name="billing-pg",
        namespace="apps",
        databases=[AppDatabase(source="billing", target="billing", owner="billing", size_bytes=40 * GiB)],
        evidence=SizingEvidence(
            databases=["billing"],
            size_bytes=40 * GiB,
            window_seconds=600,
            commits_per_s=1234.5,
            rows_written_per_s=0.25,
            peak_connections=7,
            source_major=13,
        ),
        sizing=_sizing(1, "500m", "768Mi", "80Gi", None, pooler=False),
        strategy=Strategy(name="dump", requested="dump", reason="requested on the command line"),
        roles=[RoleSpec(name="billing", login=True, reasons=["owns database billing"])],
        steps=[Step("dump-restore", "Dump and restore", "pg_dump | pg_restore, writes stopped", 3720.0, True)],
        estimated_copy_seconds=3720.0,
        estimated_downtime_seconds=3720.0,
        findings=[Finding("superuser-owned", "warning", "billing.audit()", "function owned by postgres", "reassign")],
    )


def make_plan() -> Plan:
    server_wide = Finding("stats-reset", "info", "server", "statistics were reset recently", "sample for longer")
    return Plan(
        tool_version="0.1.0",
        created_at="2026-05-09T10:00:00Z",
        source=SourceRef(conninfo="host=legacy.db port=5432 user=migrator dbname=postgres"),
        fingerprint=Fingerprint(system_identifier="7301234567890123456", version="13.14", version_num=130014),
        server=ServerSummary(
            host="legacy.db",
            port=5432,
            version="PostgreSQL 13.14",
            major=13,
            system_identifier="7301234567890123456",
            database_count=4,
            total_bytes=45 * GiB,
            is_superuser=False,
            sample_seconds=600,
            wal_bytes_per_s=1.5 * MiB,
            settings={"wal_level": "logical", "max_replication_slots": "10"},
            limitations=["not superuser: password hashes not read, roles get new passwords"],
        ),
        target=Target(provider="cnpg", namespace="apps", version=16),
        apps=[_wiki(), _billing()],
        findings=[
            server_wide,
            Finding("wal-level", "error", "wal_level", "wal_level is replica", "set wal_level = logical and restart"),
        ],
    )


@pytest.fixture
def plan() -> Plan:
    return make_plan()


# ---------------------------------------------------------------------------- formatters


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * GiB // 2, "1.5 GiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # not "1024.0 KiB"
        (5 * 1024**5, "5.0 PiB"),
        (-2048, "-2.0 KiB"),
        (None, "—"),
    ],
)
def test_human_bytes(n: int | None, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.2, "< 1s"),
        (1, "1s"),
        (45, "45s"),
        (59.6, "1m 00s"),
        (125, "2m 05s"),
        (3599.4, "59m 59s"),
        (3599.6, "1h 00m"),
        (3720, "1h 02m"),
        (7199, "2h 00m"),
        (36 * 3600, "1d 12h"),
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (0, "0/s"),
        (0.004, "< 0.01/s"),
        (0.25, "0.25/s"),
        (12.34, "12.3/s"),
        (999.6, "1k/s"),
        (1234.5, "1.23k/s"),
        (1.5e6, "1.5M/s"),
        (None, "—"),
    ],
)
def test_human_rate(rate: float | None, text: str) -> None:
    assert human_rate(rate) == text


def test_human_percent() -> None:
    assert human_percent(0.987) == "98.7%"
    assert human_percent(None) == "—"


# ---------------------------------------------------------------------------- JSON


def test_json_totals_and_shape(plan: Plan) -> None:
    doc = json.loads(render_report(plan, "json", MANIFESTS))
    assert list(doc) == ["report_version", "plan", "summary", "findings", "manifests", "safety_dumps"]
    assert doc["safety_dumps"] == {}  # filled only from a run's journal (execute --safety-dump)
    assert doc["report_version"] == 1
    assert doc["manifests"] == MANIFESTS
    assert [a["name"] for a in doc["plan"]["apps"]] == ["wiki", "billing"]

    summary = doc["summary"]
    assert summary["apps"] == 2
    assert summary["databases"] == 3
    assert summary["bytes"] == 3 * GiB // 2 + 512 * MiB + 40 * GiB
    # stats-reset/server is reported by the server and by wiki: counted once.
    assert summary["findings"] == {"error": 2, "warning": 2, "info": 1, "total": 5}
    assert summary["total_estimated_copy_seconds"] == 125.0 + 3720.0
    assert summary["max_downtime_seconds"] == 3720.0
    assert summary["max_downtime_app"] == "billing"
    assert summary["strategies"] == {"logical": 1, "dump": 1}
    wiki = summary["per_app"][0]
    assert wiki["writes_blocked_seconds"] == 45.0
    assert wiki["findings"] == {"error": 1, "warning": 1, "info": 1}


def test_json_findings_grouped_and_deduplicated(plan: Plan) -> None:
    groups = json.loads(render_report(plan, "json", MANIFESTS))["findings"]
    assert [g["severity"] for g in groups] == ["error", "warning", "info"]
    assert [g["count"] for g in groups] == [2, 2, 1]
    assert [f["code"] for f in groups[0]["findings"]] == ["extension-missing", "wal-level"]
    (reset,) = groups[2]["findings"]
    assert (reset["server"], reset["apps"]) == (True, ["wiki"])
    assert reset["fix"] == "sample for longer"


def test_duplicate_keeps_most_severe(plan: Plan) -> None:
    plan.apps[1].findings.append(Finding("wal-level", "warning", "wal_level", "again", "again"))
    plan.apps[1].findings.append(Finding("stats-reset", "error", "server", "worse", "fix it"))
    groups = build_model(plan, [])["findings"]
    errors = {f["code"]: f for f in groups[0]["findings"]}
    assert errors["stats-reset"]["apps"] == ["wiki", "billing"]
    assert errors["wal-level"]["message"] == "wal_level is replica"  # first occurrence's text
    assert groups[2]["count"] == 0


def test_json_plan_is_to_data_and_masks_a_stray_password(plan: Plan) -> None:
    plan.source.conninfo = "host=legacy.db password='s3cr et' user=migrator"
    text = render_report(plan, "json", [])
    assert "s3cr" not in text
    assert json.loads(text)["plan"]["source"]["conninfo"] == "host=legacy.db password=******** user=migrator"
    assert redact_conninfo("postgresql://migrator:hunter2@legacy/db") == "postgresql://migrator:********@legacy/db"


def test_json_non_finite_numbers_become_null(plan: Plan) -> None:
    plan.apps[0].evidence.cache_hit_ratio = float("nan")
    doc = json.loads(render_report(plan, "json", []))
    assert doc["plan"]["apps"][0]["evidence"]["cache_hit_ratio"] is None


# ---------------------------------------------------------------------------- Markdown

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _tables(md: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_tables_are_well_formed(plan: Plan) -> None:
    md = render_report(plan, "md", MANIFESTS)
    tables = _tables(md)
    assert len(tables) > 10
    for table in tables:
        widths = {len(_UNESCAPED_PIPE.findall(row)) for row in table}
        assert len(widths) == 1, table  # a `|` or newline in a value never splits a row
    assert "25% \\| shared_buffers rule" in md
    assert "temp files 3 MiB/s observed<br>raised from 4MB" in md


def test_markdown_per_app_rows(plan: Plan) -> None:
    md = render_report(plan, "md", MANIFESTS)
    (overview,) = [t for t in _tables(md) if t[0].startswith("| App | Databases | Size |")]
    rows = {line.split(" | ")[0]: line for line in overview[2:]}
    wiki = rows["| `wiki`"]
    for cell in [
        '`wiki <script>"x"` → `wiki`',
        "`wiki_files`",
        "2.0 GiB",
        "12.5",
        "340",
        "48",
        "1500m",
        "1536Mi",
        "5Gi",
        "2Gi",
        "on (transaction)",
        "logical",
        "2m 05s",
        "45s",
    ]:
        assert cell in wiki
    billing = rows["| `billing`"]
    for cell in ["40.0 GiB", "1.23k", "0.25", "80Gi", "none (WAL on data volume)", "off", "dump", "1h 02m"]:
        assert cell in billing
    # reasons sit next to the proposed values
    assert "| `billing` | Strategy | dump | requested on the command line |" in md
    assert "| `wiki` | Pooler | 2× PgBouncer, transaction mode, pool size 20, max 500 clients |" in md


def test_markdown_findings_in_severity_order_with_fixes(plan: Plan) -> None:
    md = render_report(plan, "md", MANIFESTS)
    positions = [md.index(f"### **{s.upper()}**") for s in ("error", "warning", "info")]
    assert positions == sorted(positions)
    errors = md[positions[0] : positions[1]]
    assert "set wal\\_level" not in errors  # `_` is left alone
    assert "set wal_level = logical and restart" in errors
    assert "remove the extension" in errors
    assert "&lt;img src=x onerror=alert(1)>" in errors and "<img" not in md
    warnings = md[positions[1] : positions[2]]
    assert "add a primary key or REPLICA IDENTITY FULL" in warnings and "reassign" in warnings
    assert md.count("`stats-reset`") == 1


def test_markdown_details_and_manifests(plan: Plan) -> None:
    md = render_report(plan, "md", MANIFESTS)
    for text in [
        "### App `wiki`",
        "### App `billing`",
        "`ünïcode role`",
        "LOGIN",
        "**WRITES BLOCKED**",
        "`shared_buffers` | `256MB` | 25% of memory",
        "`7301234567890123456`",
        "`legacy.db:5432`",
        "not superuser: password hashes not read",
        "`wal_level` | `logical`",
        "`wiki-owner-password`",
    ]:
        assert text in md
    for path in MANIFESTS:
        assert f"- `{path}`" in md
    steps = [md.index(f"`{step}`") for step in ("create-cluster", "initial-copy", "cutover")]
    assert steps == sorted(steps)


# ---------------------------------------------------------------------------- HTML


def test_html_is_self_contained(plan: Plan) -> None:
    page = render_report(plan, "html", MANIFESTS)
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "prefers-color-scheme: dark" in page and "@media print" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", page, re.IGNORECASE)
    for href in re.findall(r'href="([^"]*)"', page):
        assert href.startswith("#")


def test_html_escapes_every_plan_value(plan: Plan) -> None:
    page = render_report(plan, "html", MANIFESTS)
    assert "<script>" not in page
    assert "wiki &lt;script&gt;&quot;x&quot;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert UNICODE_ROLE in page
    assert "owns database wiki &lt;script&gt;&quot;x&quot;" in page


def test_html_contains_every_app_and_severity_badges(plan: Plan) -> None:
    page = render_report(plan, "html", MANIFESTS)
    for app in plan.apps:
        assert f"<code>{app.name}</code>" in page
    assert '<section id="app-1-wiki">' in page and '<section id="app-2-billing">' in page
    for severity in ("error", "warning", "info"):
        assert f'<span class="badge {severity}">{severity}</span>' in page
    assert page.index('id="findings-error"') < page.index('id="findings-warning"') < page.index('id="findings-info"')
    for path in MANIFESTS:
        assert f"<code>{path}</code>" in page


def test_human_views_come_from_the_model(plan: Plan) -> None:
    model = build_model(plan, MANIFESTS)
    total = human_duration(model["summary"]["total_estimated_copy_seconds"])
    assert total == "1h 04m"
    for fmt in ("md", "html"):
        assert total in render_report(plan, fmt, MANIFESTS)


# ---------------------------------------------------------------------------- dispatch


def test_empty_plan_renders_in_every_format(plan: Plan) -> None:
    plan.apps, plan.findings = [], []
    for fmt in ("md", "markdown", "HTML", "json"):
        assert render_report(plan, fmt, [])
    assert json.loads(render_report(plan, "json", []))["summary"]["max_downtime_app"] is None


def test_unknown_format_is_a_config_error(plan: Plan) -> None:
    with pytest.raises(ConfigError, match="unknown report format"):
        render_report(plan, "pdf", [])
