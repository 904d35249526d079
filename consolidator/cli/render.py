"""Human renderings for the terminal (rich tables; plain text when not a TTY or NO_COLOR)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from consolidator.cli.output import stdout_console
from consolidator.inventory.findings import sort_findings
from consolidator.inventory.model import Finding, Inventory
from consolidator.plan.model import Plan
from consolidator.report.format import human_bytes, human_duration, human_rate

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def emit_table(con: Console, title: str | None, columns: list[str], rows: list[list[str]],
               right: tuple[str, ...] = ()) -> None:  # fmt: skip
    """A rich table on a terminal; aligned plain text (greppable, no box drawing) otherwise."""
    if con.is_terminal:
        table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold", justify="right" if col in right else "left")
        for row in rows:
            table.add_row(*row)
        con.print(table)
        return
    widths = [max(len(col), *(len(Text.from_markup(r[i]).plain) for r in rows)) if rows else len(col)
              for i, col in enumerate(columns)]  # fmt: skip
    out = con.file
    if title:
        out.write(f"{title}\n")
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in rows:
        cells = [Text.from_markup(c).plain for c in row]
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
    out.write("\n")


def _findings_rows(findings: list[Finding]) -> list[list[str]]:
    return [[f.code, f"[{SEVERITY_STYLE.get(f.severity, '')}]{f.severity}[/]", escape(f.object), escape(f.message),
             escape(f.fix)] for f in sort_findings(findings)]  # fmt: skip


FINDING_COLUMNS = ["code", "severity", "object", "message", "fix"]


def render_inventory(inv: Inventory) -> None:
    con = stdout_console()
    s = inv.server
    con.print(f"[bold]PostgreSQL {s.version}[/] at {s.host}:{s.port}  system id {s.system_identifier or '?'}  "
              f"as {s.user}{' (superuser)' if s.is_superuser else ''}")  # fmt: skip
    con.print(f"wal_level {s.settings.get('wal_level')}, max_connections {s.settings.get('max_connections')}, "
              f"shared_buffers {s.settings.get('shared_buffers')}, WAL {human_bytes(int(s.wal_bytes_per_s))}/s "
              f"over {inv.sample_seconds:g} s")  # fmt: skip
    rows = [
        [escape(db.name), escape(db.owner), human_bytes(db.size_bytes), str(len(db.tables)),
         human_rate(db.activity.commits_per_s), human_rate(db.activity.rows_written_per_s),
         str(db.activity.backends_peak), str(len(db.roles)), str(len(db.findings))]
        for db in sorted(inv.databases, key=lambda d: -d.size_bytes)
    ]  # fmt: skip
    emit_table(con, "Databases", ["database", "owner", "size", "tables", "commits/s", "rows written/s",
                                  "peak conns", "roles", "findings"], rows,
               right=("size", "tables", "commits/s", "rows written/s", "peak conns", "roles", "findings"))
    if inv.findings:
        emit_table(con, "Findings", FINDING_COLUMNS, _findings_rows(inv.findings))


def render_plan(plan: Plan, directory: str | None = None) -> None:
    con = stdout_console()
    s = plan.server
    con.print(f"[bold]Plan[/] {directory or ''} — source PostgreSQL {s.version} at {s.host}:{s.port}, "
              f"{len(plan.apps)} apps → {plan.target.provider} target, PostgreSQL {plan.target.version}")  # fmt: skip
    rows = []
    for app in plan.apps:
        z = app.sizing
        rows.append([
            escape(app.name), app.cluster_name, escape(", ".join(d.source for d in app.databases)),
            human_bytes(app.size_bytes), app.strategy.name, str(z.instances.value), str(z.cpu.value),
            str(z.memory.value), str(z.storage.value), str(z.wal_storage.value or "—"),
            "yes" if z.pooler.enabled else "no", human_duration(app.estimated_copy_seconds),
            human_duration(app.estimated_downtime_seconds),
        ])  # fmt: skip
    emit_table(con, None, ["app", "cluster", "databases", "size", "strategy", "instances", "cpu", "memory",
                           "storage", "wal", "pooler", "copy", "downtime"], rows)
    for app in plan.apps:
        con.print(f"[bold]{escape(app.name)}[/]: {app.strategy.name} — {escape(app.strategy.reason)}",
                  highlight=False)
        z = app.sizing
        for label, value in (("instances", z.instances), ("cpu", z.cpu), ("memory", z.memory),
                             ("storage", z.storage), ("walStorage", z.wal_storage),
                             ("max_connections", z.max_connections)):  # fmt: skip
            con.print(f"  {label} {value.value}: {escape(value.reason)}", highlight=False)
        con.print(f"  pooler {'yes' if z.pooler.enabled else 'no'}: {escape(z.pooler.reason)}", highlight=False)
        if app.overrides:
            con.print(f"  overrides: {escape(str(app.overrides))}", highlight=False)
    findings = list(plan.findings) + [f for app in plan.apps for f in app.findings]
    if findings:
        emit_table(con, "Findings", FINDING_COLUMNS, _findings_rows(findings))
