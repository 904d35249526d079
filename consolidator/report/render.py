"""Render a plan as the dry-run report a reviewer reads before approving a migration.

Three layers, so the views cannot drift apart:

1. :func:`build_model` turns the plan into one plain-data document (the JSON view, verbatim).
2. :func:`build_document` reads *only that document* and lays it out as a small tree of blocks
   (sections, tables, lists) whose cells are unescaped text.
3. :func:`render_markdown` and :func:`render_html` serialise the blocks, each escaping every cell
   for its own syntax; :func:`render_json` dumps the document.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeAlias

from consolidator.errors import ConfigError
from consolidator.inventory.model import SEVERITIES, Finding
from consolidator.plan.model import App, Plan
from consolidator.report.format import (
    MISSING,
    human_byte_rate,
    human_bytes,
    human_duration,
    human_number,
    human_percent,
    human_rate,
)
from consolidator.serde import to_data

REPORT_VERSION = 1
FORMATS = ("md", "html", "json")
_FORMAT_ALIASES = {"md": "md", "markdown": "md", "html": "html", "htm": "html", "json": "json"}
_SERVER_SOURCE = "server"

Model: TypeAlias = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def render_report(plan: Plan, fmt: str, manifests: Sequence[str],
                  safety_dumps: Mapping[str, Mapping[str, Any]] | None = None) -> str:  # fmt: skip
    """Render ``plan`` as ``md``, ``html`` or ``json``; ``manifests`` are paths relative to DIR;
    ``safety_dumps``: app → source database → the safety dump ``execute --safety-dump`` recorded."""
    key = _FORMAT_ALIASES.get(fmt.strip().lower())
    if key is None:
        raise ConfigError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    model = build_model(plan, manifests, safety_dumps)
    renderers: dict[str, Callable[[Model], str]] = {
        "md": render_markdown,
        "html": render_html,
        "json": render_json,
    }
    return renderers[key](model)


def render_json(model: Model) -> str:
    """The model as indented JSON in document order (keys not sorted), strictly valid."""
    return json.dumps(_json_safe(model), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def render_markdown(model: Model) -> str:
    """GitHub-flavoured Markdown built from the model's document."""
    return _Markdown().render(build_document(model))


def render_html(model: Model) -> str:
    """One self-contained HTML file (inline CSS, no scripts, no external resources)."""
    return _Html().render(build_document(model), model)


# --------------------------------------------------------------------------------------------
# The model: plain data, the JSON view
# --------------------------------------------------------------------------------------------


def build_model(plan: Plan, manifests: Sequence[str],
                safety_dumps: Mapping[str, Mapping[str, Any]] | None = None) -> Model:  # fmt: skip
    """The report document every view renders from: the plan, totals, grouped findings, files, and the
    safety dumps an execution recorded (the journal's, when there is one)."""
    groups = group_findings(collect_findings(plan))
    return {
        "report_version": REPORT_VERSION,
        "plan": _plan_data(plan),
        "summary": _summary(plan, groups),
        "findings": groups,
        "manifests": [str(m) for m in manifests],
        "safety_dumps": {app: dict(dumps) for app, dumps in (safety_dumps or {}).items() if dumps},
    }


def _plan_data(plan: Plan) -> dict[str, Any]:
    """``to_data(plan)``; the plan holds no secrets, but a conninfo password is masked anyway."""
    data: dict[str, Any] = to_data(plan)
    source = data.get("source") or {}
    if isinstance(source.get("conninfo"), str):
        source["conninfo"] = redact_conninfo(source["conninfo"])
    return data


_KV_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)


def redact_conninfo(conninfo: str) -> str:
    """Mask a password in a key/value or URI conninfo, should one ever slip into a plan."""
    masked = _KV_PASSWORD.sub(r"\1********", conninfo)
    return _URI_PASSWORD.sub(r"\1:********@", masked)


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def collect_findings(plan: Plan) -> list[dict[str, Any]]:
    """Server and app findings, de-duplicated by (code, object), remembering where each came from.

    A duplicate keeps the most severe severity seen, so merging never hides an error.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    sources: list[tuple[str | None, Iterable[Finding]]] = [(None, plan.findings)]
    sources += [(app.name, app.findings) for app in plan.apps]
    for app_name, findings in sources:
        for finding in findings:
            entry = merged.setdefault((finding.code, finding.object), _finding_entry(finding))
            if _severity_rank(finding.severity) < _severity_rank(entry["severity"]):
                entry["severity"] = finding.severity
            if entry["database"] is None and finding.database is not None:
                entry["database"] = finding.database
            if app_name is None:
                entry["server"] = True
            elif app_name not in entry["apps"]:
                entry["apps"].append(app_name)
    return list(merged.values())


def _finding_entry(finding: Finding) -> dict[str, Any]:
    entry: dict[str, Any] = to_data(finding)
    entry.update(server=False, apps=[])
    return entry


def group_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups in severity order error → warning → info (then any unknown severity, by name).

    The three known groups are always present, even empty, so consumers can index them.
    """
    severities = list(SEVERITIES) + sorted({f["severity"] for f in findings} - set(SEVERITIES))
    groups = []
    for severity in severities:
        items = sorted((f for f in findings if f["severity"] == severity), key=lambda f: (f["code"], f["object"]))
        groups.append({"severity": severity, "count": len(items), "findings": items})
    return groups


def _summary(plan: Plan, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals a reviewer looks at first; per-app figures the plan does not store as fields."""
    by_severity = {g["severity"]: g["count"] for g in groups}
    longest = max(plan.apps, key=lambda a: a.estimated_downtime_seconds, default=None)
    return {
        "apps": len(plan.apps),
        "databases": sum(len(app.databases) for app in plan.apps),
        "bytes": sum(app.size_bytes for app in plan.apps),
        "findings": {**by_severity, "total": sum(by_severity.values())},
        "total_estimated_copy_seconds": sum(app.estimated_copy_seconds for app in plan.apps),
        "max_downtime_seconds": longest.estimated_downtime_seconds if longest else 0.0,
        "max_downtime_app": longest.name if longest else None,
        "strategies": dict(Counter(app.strategy.name for app in plan.apps)),
        "per_app": [_app_summary(app) for app in plan.apps],
    }


def _app_summary(app: App) -> dict[str, Any]:
    worst: dict[tuple[str, str], str] = {}
    for f in app.findings:  # same de-duplication rule as the global list: the most severe wins
        key = (f.code, f.object)
        if key not in worst or _severity_rank(f.severity) < _severity_rank(worst[key]):
            worst[key] = f.severity
    counts = Counter(worst.values())
    return {
        "name": app.name,
        "databases": len(app.databases),
        "bytes": app.size_bytes,
        "estimated_copy_seconds": app.estimated_copy_seconds,
        "estimated_downtime_seconds": app.estimated_downtime_seconds,
        "writes_blocked_seconds": sum(s.estimated_seconds for s in app.steps if s.writes_blocked),
        "findings": {s: counts.get(s, 0) for s in [*SEVERITIES, *sorted(set(counts) - set(SEVERITIES))]},
    }


def _json_safe(data: Any) -> Any:
    """NaN/inf are not JSON: an unmeasurable number becomes null."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {str(k): _json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_json_safe(v) for v in data]
    return data


# --------------------------------------------------------------------------------------------
# The document: blocks of unescaped cells, laid out once for both human views
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """An identifier (database, role, code, path): monospace, shown verbatim."""

    text: str


@dataclass(frozen=True)
class Badge:
    """A status with a tone (error, warning, info, ok, muted); always shown with its text."""

    text: str
    tone: str


@dataclass(frozen=True)
class Link:
    """A cell that links to a section of the same document (HTML only)."""

    cell: Cell
    anchor: str


Cell: TypeAlias = str | Code | Badge | Link | list["Cell"]


@dataclass
class Para:
    cells: list[Cell]
    tone: str | None = None  # a callout when set


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    align: str = ""  # one letter per column, "l" or "r"; missing letters mean "l"


@dataclass
class Bullets:
    items: list[Cell]


@dataclass
class Stats:
    """Headline figures: cards in HTML, a one-row table in Markdown."""

    items: list[tuple[str, Cell]]


@dataclass
class Section:
    title: Cell
    anchor: str
    blocks: list[Block] = field(default_factory=list)


Block: TypeAlias = Para | Table | Bullets | Stats | Section

_NO_SPACE_BEFORE = frozenset(",.;:)")


def _edge(cell: Cell, last: bool) -> str:
    """First (or last) visible character of a cell, to decide spacing when cells are joined."""
    if isinstance(cell, list):
        return _edge(cell[-1] if last else cell[0], last) if cell else ""
    if isinstance(cell, Link):
        return _edge(cell.cell, last)
    text = cell if isinstance(cell, str) else cell.text
    return text[-1:] if last else text[:1]


def join_cells(cells: list[Cell], render: Callable[[Cell], str]) -> str:
    """Render a sequence with single spaces, but none before punctuation or after "("."""
    out: list[str] = []
    prev: Cell | None = None
    for cell in cells:
        if cell == "" or cell == []:
            continue
        if prev is not None and _edge(cell, False) not in _NO_SPACE_BEFORE and _edge(prev, True) != "(":
            out.append(" ")
        out.append(render(cell))
        prev = cell
    return "".join(out)


@dataclass
class Document:
    title: str
    blocks: list[Block]


def build_document(model: Model) -> Document:
    """Lay the model out for humans; reads nothing but ``model``."""
    plan = model["plan"]
    server = plan["server"]
    apps = plan["apps"]
    anchors = [_app_anchor(i, a["name"]) for i, a in enumerate(apps)]
    blocks: list[Block] = [
        Para(_intro(plan)),
        Stats(_stats(model)),
        *_callouts(model),
        Section("Source server", "server", _server_blocks(server)),
        Section("Target", "target", [Table(["Property", "Value"], _target_rows(plan["target"]))]),
        Section("Applications", "applications", _applications_blocks(model, anchors)),
        Section("Findings", "findings", _findings_blocks(model["findings"])),
        Section(
            "Application details",
            "details",
            [
                _app_section(app, per, anchor, model.get("safety_dumps", {}).get(app["name"], {}))
                for app, per, anchor in zip(apps, model["summary"]["per_app"], anchors, strict=True)
            ]
            or [Para(["No applications in this plan."])],
        ),
        Section("Manifests", "manifests", _manifest_blocks(model["manifests"])),
    ]
    title = f"Migration dry-run report: {server['host']}:{server['port']}"
    return Document(title, blocks)


def _app_anchor(index: int, name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"app-{index + 1}" + (f"-{slug}" if slug else "")


def _intro(plan: dict[str, Any]) -> list[Cell]:
    target = plan["target"]
    return [
        f"Plan created {plan['created_at']} by consolidator {plan['tool_version']} "
        f"(plan format {plan['format_version']}). Nothing has been changed yet: this report only "
        f"describes what the plan would do. Target: {target['provider']} provider, namespace",
        Code(str(target["namespace"])),
        f", PostgreSQL {target['version']}.",
    ]


def _stats(model: Model) -> list[tuple[str, Cell]]:
    summary = model["summary"]
    longest = summary["max_downtime_app"]
    downtime: Cell = human_duration(summary["max_downtime_seconds"])
    if longest is not None:
        downtime = [downtime, "(", Code(longest), ")"]
    return [
        ("Applications", str(summary["apps"])),
        ("Databases", str(summary["databases"])),
        ("Data to copy", human_bytes(summary["bytes"])),
        ("Estimated copy time (all apps)", human_duration(summary["total_estimated_copy_seconds"])),
        ("Longest downtime", downtime),
        ("Findings", _count_badges(summary["findings"], empty="none")),
    ]


def _count_badges(counts: dict[str, int], empty: str) -> Cell:
    badges: list[Cell] = [Badge(f"{n} {_plural(sev, n)}", sev) for sev, n in counts.items() if sev != "total" and n]
    return badges or empty


def _plural(severity: str, n: int) -> str:
    return severity if n == 1 or severity == "info" else f"{severity}s"


def _callouts(model: Model) -> list[Block]:
    errors = model["summary"]["findings"].get("error", 0)
    if not errors:
        return []
    return [
        Para(
            [
                Badge("error", "error"),
                f"{errors} error {_plural('finding', errors)} below must be resolved or "
                "explicitly accepted before this plan is approved.",
            ],
            tone="error",
        )
    ]


def _yes_no(flag: bool, *, bad_when: bool | None = None) -> Cell:
    text = "yes" if flag else "no"
    if bad_when is None:
        return text
    return Badge(text, "warning" if flag == bad_when else "ok")


def _server_blocks(server: dict[str, Any]) -> list[Block]:
    rows: list[list[Cell]] = [
        ["Server", Code(f"{server['host']}:{server['port']}")],
        ["Version", f"{server['version']} (major {server['major']})"],
        ["System identifier", Code(str(server["system_identifier"]))],
        ["Databases", str(server["database_count"])],
        ["Total size", human_bytes(server["total_bytes"])],
        ["Sampling window", human_duration(server["sample_seconds"])],
        ["WAL rate", human_byte_rate(server["wal_bytes_per_s"])],
        ["Inventory ran as superuser", _yes_no(server["is_superuser"], bad_when=False)],
    ]
    limitations: list[Block] = (
        [Bullets(list(server["limitations"]))] if server["limitations"] else [Para(["None reported."])]
    )
    settings = sorted(server["settings"].items())
    settings_blocks: list[Block] = (
        [Table(["Setting", "Value"], [[Code(k), Code(str(v))] for k, v in settings])]
        if settings
        else [Para(["No settings recorded."])]
    )
    return [
        Table(["Property", "Value"], rows),
        Section("Inventory limitations", "server-limitations", limitations),
        Section("Migration-relevant settings", "server-settings", settings_blocks),
    ]


def _target_rows(target: dict[str, Any]) -> list[list[Cell]]:
    backup = target.get("backup")
    rows: list[list[Cell]] = [
        ["Provider", target["provider"]],
        ["Namespace", Code(str(target["namespace"]))],
        ["PostgreSQL major", str(target["version"])],
        ["Image type", str(target["image_type"])],
        [
            "Storage class",
            Code(target["storage_class"]) if target.get("storage_class") else "cluster default",
        ],
        [
            "Backups",
            [Code(backup["destination_path"]), f"retention {backup['retention']}"] if backup else "none",
        ],
        ["PodMonitor", _yes_no(bool(target["pod_monitor"]))],
        ["NetworkPolicy", _yes_no(bool(target["network_policy"]))],
    ]
    if target.get("local_root"):
        rows.append(["Local root", Code(target["local_root"])])
    return rows


def _value(value: Any) -> str:
    """A plan value as text: None is "—", containers as compact JSON."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _wal_storage(sizing: dict[str, Any]) -> str:
    value = sizing["wal_storage"]["value"]
    return "none (WAL on data volume)" if value is None else str(value)


def _pooler_short(pooler: dict[str, Any]) -> str:
    return f"on ({pooler['pool_mode']})" if pooler["enabled"] else "off"


def _pooler_long(pooler: dict[str, Any]) -> str:
    if not pooler["enabled"]:
        return "off"
    return (
        f"{pooler['instances']}× PgBouncer, {pooler['pool_mode']} mode, pool size "
        f"{pooler['default_pool_size']}, max {pooler['max_client_conn']} clients"
    )


def _db_names(app: dict[str, Any]) -> list[Cell]:
    cells: list[Cell] = []
    for db in app["databases"]:
        same = db["source"] == db["target"]
        cells.append(Code(db["source"]) if same else [Code(db["source"]), "→", Code(db["target"])])
    return _commas(cells) or [MISSING]


def _commas(cells: list[Cell]) -> list[Cell]:
    """Interleave commas; the joiners put no space before them."""
    out: list[Cell] = []
    for i, cell in enumerate(cells):
        out += [",", cell] if i else [cell]
    return out


def _applications_blocks(model: Model, anchors: list[str]) -> list[Block]:
    apps = model["plan"]["apps"]
    if not apps:
        return [Para(["No applications in this plan."])]
    headers = [
        "App",
        "Databases",
        "Size",
        "Commits/s",
        "Rows written/s",
        "Peak conn.",
        "Instances",
        "CPU",
        "Memory",
        "Storage",
        "WAL storage",
        "Pooler",
        "Strategy",
        "Est. copy",
        "Est. downtime",
        "Findings",
    ]
    rows = [
        _overview_row(app, per, anchor)
        for app, per, anchor in zip(apps, model["summary"]["per_app"], anchors, strict=True)
    ]
    why_rows = [row for app in apps for row in _rationale_rows(app)]
    return [
        Table(headers, rows, align="llrrrrrrrrlllrrl"),
        Section(
            "Proposed resources: evidence and reasons",
            "rationale",
            [Table(["App", "Item", "Proposed", "Evidence / reason"], why_rows)],
        ),
    ]


def _overview_row(app: dict[str, Any], per: dict[str, Any], anchor: str) -> list[Cell]:
    ev, sizing = app["evidence"], app["sizing"]
    return [
        Link(Code(app["name"]), anchor),
        _db_names(app),
        human_bytes(per["bytes"]),
        human_number(ev["commits_per_s"]),
        human_number(ev["rows_written_per_s"]),
        str(ev["peak_connections"]),
        _value(sizing["instances"]["value"]),
        _value(sizing["cpu"]["value"]),
        _value(sizing["memory"]["value"]),
        _value(sizing["storage"]["value"]),
        _wal_storage(sizing),
        _pooler_short(sizing["pooler"]),
        app["strategy"]["name"],
        human_duration(app["estimated_copy_seconds"]),
        human_duration(app["estimated_downtime_seconds"]),
        _count_badges(per["findings"], empty="none"),
    ]


def _rationale_rows(app: dict[str, Any]) -> list[list[Cell]]:
    sizing, strategy = app["sizing"], app["strategy"]
    name = Code(app["name"])
    rows: list[list[Cell]] = [
        [name, label, _value(sizing[key]["value"]), sizing[key]["reason"]]
        for key, label in (
            ("instances", "Instances"),
            ("cpu", "CPU"),
            ("memory", "Memory"),
            ("storage", "Storage"),
        )
    ]
    rows.append([name, "WAL storage", _wal_storage(sizing), sizing["wal_storage"]["reason"]])
    rows.append([name, "Pooler", _pooler_long(sizing["pooler"]), sizing["pooler"]["reason"]])
    rows.append([name, "Strategy", _strategy_text(strategy), strategy["reason"]])
    return rows


def _strategy_text(strategy: dict[str, Any]) -> str:
    requested = strategy["requested"]
    return (
        strategy["name"] if requested in ("auto", strategy["name"]) else f"{strategy['name']} (requested {requested})"
    )


def _findings_blocks(groups: list[dict[str, Any]]) -> list[Block]:
    blocks: list[Block] = []
    for group in groups:
        severity, items = group["severity"], group["findings"]
        if not items and severity not in SEVERITIES:
            continue
        title: Cell = [Badge(severity, severity), f"({group['count']})"]
        content: list[Block] = (
            [Table(["Code", "Object", "Message", "Fix", "Where"], [_finding_row(f) for f in items])]
            if items
            else [Para(["None."])]
        )
        blocks.append(Section(title, f"findings-{_slug(severity)}", content))
    return blocks


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _finding_row(finding: dict[str, Any]) -> list[Cell]:
    where: list[Cell] = _commas(([_SERVER_SOURCE] if finding["server"] else []) + [Code(a) for a in finding["apps"]])
    if finding.get("database"):
        where += [";" if where else "", "database", Code(finding["database"])]
    return [
        Code(finding["code"]),
        Code(finding["object"]),
        finding["message"],
        finding["fix"],
        where or MISSING,
    ]


def _app_section(app: dict[str, Any], per: dict[str, Any], anchor: str, dumps: dict[str, Any]) -> Section:
    title: Cell = ["App", Code(app["name"])]
    blocks: list[Block] = [
        Para(_app_intro(app, per)),
        Section("Databases", f"{anchor}-databases", [_databases_table(app)]),
        Section("Measured evidence", f"{anchor}-evidence", [Table(["Measure", "Value"], _evidence_rows(app))]),
        Section("Sizing", f"{anchor}-sizing", _sizing_blocks(app["sizing"])),
        Section("PostgreSQL parameters", f"{anchor}-parameters", [_parameters_block(app["sizing"])]),
        Section("Steps", f"{anchor}-steps", _steps_blocks(app, per)),
        Section("Roles", f"{anchor}-roles", [_roles_block(app["roles"])]),
    ]
    extras = _extras_rows(app)
    if extras:
        blocks.append(Section("Overrides and hooks", f"{anchor}-overrides", [Table(["Key", "Value"], extras)]))
    if dumps:
        rows: list[list[Cell]] = [[Code(db), Code(d["url"]), human_bytes(d["bytes"]), Code(d["sha256"])]
                                  for db, d in dumps.items()]  # fmt: skip
        blocks.append(Section("Safety dumps", f"{anchor}-safety", [
            Para(["pg_dump -Fc of each source database, taken before the fence (execute --safety-dump)."]),
            Table(["Database", "Object", "Size", "sha256"], rows, align="llrl")]))  # fmt: skip
    return Section(title, anchor, blocks)


def _app_intro(app: dict[str, Any], per: dict[str, Any]) -> list[Cell]:
    strategy = app["strategy"]
    cells: list[Cell] = [
        "Cluster",
        Code(f"{app['namespace']}/{app['cluster_name']}"),
        f"· strategy {_strategy_text(strategy)}: {strategy['reason'] or MISSING}",
    ]
    if strategy["options"]:
        cells += ["· options", Code(_value(strategy["options"]))]
    if app["image"]:
        cells += ["· image", Code(app["image"])]
    if app["extensions"]:
        cells += ["· extensions", _commas([Code(e) for e in app["extensions"]])]
    cells += ["· findings", Link(_count_badges(per["findings"], empty="none"), "findings")]
    return cells


def _databases_table(app: dict[str, Any]) -> Block:
    if not app["databases"]:
        return Para(["No databases."])
    rows: list[list[Cell]] = []
    for db in app["databases"]:
        locale = f"{db['locale_provider']}: {db['collate']} / {db['ctype']}"
        if db.get("icu_locale"):
            locale += f" (ICU {db['icu_locale']})"
        rows.append(
            [
                Code(db["source"]),
                Code(db["target"]),
                Code(db["owner"]),
                human_bytes(db["size_bytes"]),
                db["encoding"],
                locale,
            ]
        )
    return Table(["Source", "Target", "Owner", "Size", "Encoding", "Locale"], rows, align="lllrll")


def _evidence_rows(app: dict[str, Any]) -> list[list[Cell]]:
    ev = app["evidence"]
    cpu = f"{human_number(ev['cpu_cores'])} cores ({ev['cpu_source']})"
    return [
        ["Sampling window", human_duration(ev["window_seconds"])],
        [
            "Size (largest table, indexes)",
            f"{human_bytes(ev['size_bytes'])} ({human_bytes(ev['largest_table_bytes'])}, "
            f"{human_bytes(ev['index_bytes'])})",
        ],
        ["Working set", human_bytes(ev["working_set_bytes"])],
        ["Commits", human_rate(ev["commits_per_s"])],
        [
            "Rows read / written",
            f"{human_rate(ev['rows_read_per_s'])} / {human_rate(ev['rows_written_per_s'])}",
        ],
        [
            "WAL / temp files",
            f"{human_byte_rate(ev['wal_bytes_per_s'])} / {human_byte_rate(ev['temp_bytes_per_s'])}",
        ],
        ["Cache hit ratio", human_percent(ev["cache_hit_ratio"])],
        [
            "Connections: peak / active peak / active p95",
            f"{ev['peak_connections']} / {ev['active_peak']} / {human_number(ev['active_p95'])}",
        ],
        ["New sessions", human_rate(ev["sessions_per_s"])],
        ["Idle fraction", human_percent(ev["idle_fraction"])],
        ["Average connection age", human_duration(ev["avg_connection_age_s"])],
        ["CPU used", cpu],
        ["Source major", str(ev["source_major"])],
    ]


def _sizing_blocks(sizing: dict[str, Any]) -> list[Block]:
    rows: list[list[Cell]] = [
        [label, _value(sizing[key]["value"]), sizing[key]["reason"]]
        for key, label in (
            ("instances", "Instances"),
            ("cpu", "CPU (request = limit)"),
            ("memory", "Memory (request = limit)"),
            ("storage", "Storage"),
        )
    ]
    rows.append(["WAL storage", _wal_storage(sizing), sizing["wal_storage"]["reason"]])
    rows.append(["max_connections", _value(sizing["max_connections"]["value"]), sizing["max_connections"]["reason"]])
    rows.append(["Pooler", _pooler_long(sizing["pooler"]), sizing["pooler"]["reason"]])
    blocks: list[Block] = [Table(["Item", "Proposed", "Reason"], rows)]
    if sizing["notes"]:
        blocks.append(Bullets(list(sizing["notes"])))
    return blocks


def _parameters_block(sizing: dict[str, Any]) -> Block:
    params = sorted(sizing["parameters"].items())
    if not params:
        return Para(["No parameters beyond the CloudNativePG defaults."])
    rows: list[list[Cell]] = [[Code(k), Code(_value(v["value"])), v["reason"]] for k, v in params]
    return Table(["Parameter", "Value", "Reason"], rows)


def _steps_blocks(app: dict[str, Any], per: dict[str, Any]) -> list[Block]:
    totals = Para(
        [
            f"Estimated copy {human_duration(app['estimated_copy_seconds'])}, downtime "
            f"{human_duration(app['estimated_downtime_seconds'])}, writes blocked during steps totalling "
            f"{human_duration(per['writes_blocked_seconds'])}."
        ]
    )
    if not app["steps"]:
        return [Para(["No steps planned."]), totals]
    rows: list[list[Cell]] = [
        [
            str(i),
            Code(step["id"]),
            step["name"],
            step["description"],
            human_duration(step["estimated_seconds"]),
            Badge("writes blocked", "warning") if step["writes_blocked"] else "no",
        ]
        for i, step in enumerate(app["steps"], start=1)
    ]
    return [
        Table(["#", "Id", "Step", "Description", "Estimated", "Writes blocked"], rows, align="rlllrl"),
        totals,
    ]


def _role_attributes(role: dict[str, Any]) -> str:
    flags = ["LOGIN" if role["login"] else "NOLOGIN"]
    flags += [
        name.upper() for name in ("superuser", "createdb", "createrole", "replication", "bypassrls") if role[name]
    ]
    if not role["inherit"]:
        flags.append("NOINHERIT")
    if role["connection_limit"] >= 0:
        flags.append(f"CONNECTION LIMIT {role['connection_limit']}")
    if role["valid_until"]:
        flags.append(f"VALID UNTIL {role['valid_until']}")
    return " ".join(flags)


def _roles_block(roles: list[dict[str, Any]]) -> Block:
    if not roles:
        return Para(["No roles."])
    rows: list[list[Cell]] = []
    for role in roles:
        password: list[Cell] = [role["password_type"]]
        if role["password_secret"]:
            password += ["in Secret", Code(role["password_secret"])]
        member_of: Cell = _commas([Code(m) for m in role["member_of"]]) or MISSING
        rows.append(
            [
                Code(role["name"]),
                _role_attributes(role),
                member_of,
                password,
                "; ".join(role["reasons"]) or MISSING,
            ]
        )
    return Table(["Role", "Attributes", "Member of", "Password", "Why needed"], rows)


def _extras_rows(app: dict[str, Any]) -> list[list[Cell]]:
    rows: list[list[Cell]] = [[Code(f"overrides.{k}"), Code(_value(v))] for k, v in app["overrides"].items()]
    rows += [[Code(f"hooks.{k}"), Code(_value(v))] for k, v in app["hooks"].items()]
    return rows


def _manifest_blocks(manifests: list[str]) -> list[Block]:
    if not manifests:
        return [Para(["No manifests were written."])]
    return [
        Para([f"{len(manifests)} files, relative to the plan directory:"]),
        Bullets([Code(m) for m in manifests]),
    ]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*|\[\]~])")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def md_text(text: str) -> str:
    """Prose for a Markdown table cell: no inline HTML, no formatting surprises, one line."""
    text = text.replace("&", "&amp;").replace("<", "&lt;")  # no tag or entity survives
    text = _MD_SPECIAL.sub(r"\\\1", text)
    if text.startswith((">", "#", "-", "+")):
        text = "\\" + text  # would start a quote, heading or list item
    return _NEWLINES.sub("<br>", text)


def md_code(text: str) -> str:
    """An identifier as a code span: verbatim (no HTML is interpreted inside), safe in a table."""
    text = _NEWLINES.sub("\\\\n", text).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


class _Markdown:
    def render(self, doc: Document) -> str:
        out = [f"# {md_text(doc.title)}", ""]
        for block in doc.blocks:
            out += self.block(block, level=2)
        return "\n".join(out).rstrip() + "\n"

    def block(self, block: Block, level: int) -> list[str]:
        if isinstance(block, Section):
            lines = [f"{'#' * min(level, 6)} {self.cell(block.title)}", ""]
            for child in block.blocks:
                lines += self.block(child, level + 1)
            return lines
        if isinstance(block, Para):
            text = self.cell(block.cells)
            return [f"> {text}" if block.tone else text, ""]
        if isinstance(block, Bullets):
            return [f"- {self.cell(item)}" for item in block.items] + [""]
        if isinstance(block, Stats):
            return self.table(Table([label for label, _ in block.items], [[cell for _, cell in block.items]]))
        return self.table(block)

    def table(self, table: Table) -> list[str]:
        align = table.align.ljust(len(table.headers), "l")
        rule = ["---:" if a == "r" else "---" for a in align]
        lines = [self.row([md_text(h) for h in table.headers]), self.row(rule)]
        lines += [self.row([self.cell(c) for c in row]) for row in table.rows]
        return [*lines, ""]

    @staticmethod
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def cell(self, cell: Cell) -> str:
        if isinstance(cell, list):
            return join_cells(cell, self.cell)
        if isinstance(cell, Code):
            return md_code(cell.text)
        if isinstance(cell, Badge):
            return f"**{md_text(cell.text.upper())}**"
        if isinstance(cell, Link):
            return self.cell(cell.cell)
        return md_text(cell)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


class Markup(str):
    """Text that is already HTML; anything else passed to :func:`_el` is escaped.

    ``+`` escapes a plain-str operand, so concatenation can never smuggle raw text in.
    """

    def __add__(self, other: str) -> Markup:
        return Markup(str.__add__(self, escape(other)))

    def __radd__(self, other: str) -> Markup:
        return Markup(str.__add__(escape(other), self))


def escape(value: object) -> Markup:
    """HTML-escape anything that is not already :class:`Markup` (quotes included)."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def _concat(parts: Iterable[object]) -> Markup:
    """Join HTML fragments, escaping any that are not already Markup."""
    return Markup("".join(escape(p) for p in parts))


def _el(tag: str, *children: object, **attrs: object) -> Markup:
    """One element; children and attribute values are escaped unless they are Markup."""
    attributes = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attrs.items() if value is not None
    )
    return Markup(f"<{tag}{attributes}>{_concat(children)}</{tag}>")


def load_css() -> str:
    """The report's stylesheet, inlined so the HTML file stands alone."""
    return resources.files("consolidator.report").joinpath("style.css").read_text(encoding="utf-8")


_HEAD = Markup(
    '<meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<meta name="color-scheme" content="light dark">'
)


class _Html:
    def render(self, doc: Document, model: Model) -> str:
        plan = model["plan"]
        head = _concat(
            [
                _HEAD,
                _el("meta", name="generator", content=f"consolidator {plan['tool_version']}"),
                _el("title", doc.title),
                Markup(f"<style>\n{load_css()}\n</style>"),
            ]
        )
        footer = _el("footer", f"Report format {model['report_version']} · plan created {plan['created_at']}")
        body = _el("main", _el("h1", doc.title), self.toc(doc), *(self.block(b, 2) for b in doc.blocks), footer)
        return f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>{body}</body>\n</html>\n'

    def toc(self, doc: Document) -> Markup:
        items = [self.toc_item(b) for b in doc.blocks if isinstance(b, Section)]
        return _el("nav", _el("ul", *items), aria_label="Contents", class_="toc")

    def toc_item(self, section: Section) -> Markup:
        """Top-level sections, plus one entry per app under "Application details"."""
        apps = [b for b in section.blocks if isinstance(b, Section)] if section.anchor == "details" else []
        nested = _el("ul", *(self.toc_item(a) for a in apps)) if apps else Markup("")
        return _el("li", _el("a", self.cell(section.title), href=f"#{section.anchor}"), nested)

    def block(self, block: Block, level: int) -> Markup:
        """One block followed by a newline, so the file diffs and reads line by line."""
        return self._block(block, level) + "\n"

    def _block(self, block: Block, level: int) -> Markup:
        if isinstance(block, Section):
            heading = _el(f"h{min(level, 6)}", self.cell(block.title))
            return _el("section", heading, *(self.block(b, level + 1) for b in block.blocks), id=block.anchor)
        if isinstance(block, Para):
            return _el("p", self.cell(block.cells), class_=f"callout {block.tone}" if block.tone else None)
        if isinstance(block, Bullets):
            return _el("ul", *(_el("li", self.cell(item)) for item in block.items))
        if isinstance(block, Stats):
            cards = (_el("div", _el("dt", label), _el("dd", self.cell(value))) for label, value in block.items)
            return _el("dl", *cards, class_="stats")
        return self.table(block)

    def table(self, table: Table) -> Markup:
        align = table.align.ljust(len(table.headers), "l")
        head = _el(
            "tr",
            *(_el("th", h, scope="col", class_=self.num(a)) for h, a in zip(table.headers, align, strict=True)),
        )
        rows = (
            _el("tr", *(_el("td", self.cell(c), class_=self.num(a)) for c, a in zip(row, align, strict=True)))
            for row in table.rows
        )
        return _el("div", _el("table", _el("thead", head), _el("tbody", *rows)), class_="table-wrap")

    @staticmethod
    def num(align: str) -> str | None:
        return "num" if align == "r" else None

    def cell(self, cell: Cell) -> Markup:
        if isinstance(cell, list):
            return Markup(join_cells(cell, self.cell))  # the pieces are Markup, the glue is spaces
        if isinstance(cell, Code):
            return _el("code", cell.text)
        if isinstance(cell, Badge):
            return _el("span", cell.text, class_=f"badge {_slug(cell.tone)}")
        if isinstance(cell, Link):
            return _el("a", self.cell(cell.cell), href=f"#{cell.anchor}")
        return escape(cell)
