"""One database of the inventory in detail: its tables, the roles it needs, extensions and settings."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from consolidator.inventory.model import DatabaseInfo, Inventory, TableInfo
from consolidator.report.format import human_bytes, human_number

TABS = (("db-tables", "Tables"), ("db-roles", "Roles"), ("db-extensions", "Extensions"), ("db-settings", "Settings"))
KINDS = {"r": "table", "p": "partitioned", "f": "foreign"}


def key_of(table: TableInfo) -> str:
    """How logical replication would identify its rows (what CN101 is about)."""
    if table.has_primary_key:
        return "primary key"
    if table.replica_identity == "f":
        return "replica identity full"
    if table.replica_identity == "i" and table.has_identity_index:
        return "replica identity index"
    return "none"


def _right(text: str) -> Text:
    return Text(text, justify="right")


class DatabaseScreen(Screen[None]):
    HELP_TITLE = "Database"
    HELP = ("One database as the inventory saw it: tables largest first (size with indexes and TOAST, rows as "
            "estimated by the statistics, the key logical replication would use), the roles it needs and why, "
            "its extensions (and whether CloudNativePG images ship them) and its ALTER DATABASE … SET settings. "
            "Escape goes back.")  # fmt: skip
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="database_back", tooltip="back to the inventory"),
        *(Binding(str(i + 1), f"show_tab('{tab_id}')", title, id=f"database_{tab_id.removeprefix('db-')}",
                  tooltip=f"the database's {title.lower()}") for i, (tab_id, title) in enumerate(TABS)),
    ]  # fmt: skip
    DEFAULT_CSS = """
    DatabaseScreen #database-summary {
        height: auto;
        padding: 0 1;
        color: $text;
    }
    DatabaseScreen #database-tabs {
        height: 1fr;
    }
    """

    def __init__(self, db: DatabaseInfo, inventory: Inventory) -> None:
        super().__init__()
        self.db, self.inventory = db, inventory

    def compose(self) -> ComposeResult:
        db = self.db
        yield Header()
        yield Static(self.summary(), id="database-summary", markup=False)
        with TabbedContent(id="database-tabs"):
            for tab_id, title in TABS:
                with TabPane(title, id=tab_id):
                    yield DataTable(id=f"{tab_id}-table", cursor_type="row")
        if db.limitations:
            yield Static("not seen: " + "; ".join(db.limitations), classes="status-line", markup=False)
        yield Footer()

    def summary(self) -> str:
        db = self.db
        locale = db.icu_locale if db.locale_provider == "icu" and db.icu_locale else f"{db.collate}/{db.ctype}"
        limit = "no connection limit" if db.connection_limit < 0 else f"connection limit {db.connection_limit}"
        return (f"{db.name} — {human_bytes(db.size_bytes)}, owner {db.owner or '?'}, {db.encoding}, "
                f"{db.locale_provider} locale {locale}, {limit}\n"
                f"{len(db.tables)} tables, {len(db.materialized_views)} materialized views, {db.view_count} views, "
                f"{len(db.sequences)} sequences, {db.function_count} functions, {db.trigger_count} triggers, "
                f"{db.large_objects_count} large objects ({human_bytes(db.large_objects_bytes)})")  # fmt: skip

    def on_mount(self) -> None:
        db = self.db
        tables = self.query_one("#db-tables-table", DataTable)
        tables.add_columns("table", "kind", _right("size"), _right("rows ≈"), _right("indexes"), "key")
        for t in db.tables:
            kind = KINDS.get(t.kind, t.kind) + (", unlogged" if t.persistence == "u" else "")
            tables.add_row(Text(t.qualified), Text(kind), _right(human_bytes(t.total_bytes)),
                           _right(human_number(t.rows_estimate)), _right(human_bytes(t.index_bytes)),
                           Text(key_of(t)), key=t.qualified)  # fmt: skip
        for mv in db.materialized_views:
            tables.add_row(Text(f"{mv.schema}.{mv.name}"), Text("materialized view"),
                           _right(human_bytes(mv.total_bytes)), _right("—"), _right("—"), Text("—"))  # fmt: skip

        roles = self.query_one("#db-roles-table", DataTable)
        roles.add_columns("role", "login", "password", "member of", "needed because")
        for name in db.roles:
            role = self.inventory.role(name)
            if role is None:
                roles.add_row(Text(name), Text("?"), Text("?"), Text(""), Text(""), key=name)
                continue
            attrs = "superuser" if role.superuser else ("login" if role.login else "no login")
            roles.add_row(Text(name), Text(attrs), Text(role.password_type), Text(", ".join(role.member_of)),
                          Text("; ".join(role.needed_by.get(db.name, []))), key=name)  # fmt: skip

        extensions = self.query_one("#db-extensions-table", DataTable)
        extensions.add_columns("extension", "version", "schema", "in CloudNativePG images")
        for ext in db.extensions:
            extensions.add_row(Text(ext.name), Text(ext.version), Text(ext.schema),
                               Text("yes" if ext.in_cnpg_image else "no"), key=ext.name)  # fmt: skip

        settings = self.query_one("#db-settings-table", DataTable)
        settings.add_columns("for role", "setting")
        for item in db.settings:
            role = item.get("role", "*")
            settings.add_row(Text("every role" if role == "*" else role), Text(item.get("setting", "")))
        if not db.settings:
            settings.add_row(Text("—"), Text("no ALTER DATABASE … SET settings"))
        tables.focus()

    def action_show_tab(self, tab_id: str) -> None:
        self.query_one("#database-tabs", TabbedContent).active = tab_id
        self.query_one(f"#{tab_id}-table", DataTable).focus()
