"""The manifests tab: each app's Kubernetes objects as Save writes them, and their diff against the saved plan."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Select, Static

from consolidator.tui.messages import PlanChanged, PlanSaved
from consolidator.tui.panes._focus import focus_when_shown
from consolidator.tui.workers import ShowsWorkerErrors

ALL = "*"


def diff_sections(diff: str, name: str) -> str:
    """The part of a unified diff about one file (``--- saved/<name>`` up to the next file)."""
    out: list[str] = []
    keep = False
    for line in diff.splitlines(keepends=True):
        if line.startswith("--- saved/"):
            keep = line.rstrip("\n") == f"--- saved/{name}"
        if keep:
            out.append(line)
    return "".join(out)


class ManifestsPane(ShowsWorkerErrors, Vertical):
    HELP_TITLE = "Manifests"
    HELP = ("The Kubernetes objects of each app's cluster, exactly as Save writes them under "
            "DIR/manifests/<cluster>/ for GitOps: Secrets, the Cluster and, when planned, its Pooler, backups and "
            "monitoring. Pick the app and one object or all of them. The diff shows what the plan on screen "
            "changes against the saved plan directory (everything is new before the first save).")  # fmt: skip
    BINDINGS = [
        Binding("d", "toggle_diff", "Diff", id="manifests_diff",
                tooltip="unified diff against the saved plan directory (again: the YAML)"),
        Binding("o", "next_object", "Next object", id="manifests_next_object",
                tooltip="show one object at a time, then all of them"),
        Binding("a", "next_app", "Next app", id="manifests_next_app", tooltip="the plan's next app"),
    ]  # fmt: skip
    DEFAULT_CSS = """
    ManifestsPane {
        height: 1fr;
    }
    ManifestsPane #manifests-bar {
        height: auto;
    }
    ManifestsPane #manifests-app {
        width: 1fr;
    }
    ManifestsPane #manifests-object {
        width: 2fr;
    }
    ManifestsPane #manifests-scroll {
        height: 1fr;
        background: $surface;
    }
    ManifestsPane #manifests-view {
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app_name: str | None = None
        self.object = ALL
        self.diff = False
        self.files: list[tuple[str, str]] = []  # (file name, YAML) of the shown app
        self.text = ""  # what the view shows, as plain text

    def compose(self) -> ComposeResult:
        with Horizontal(id="manifests-bar"):
            yield Select[str]([], prompt="app", id="manifests-app")
            yield Select[str]([("all objects", ALL)], allow_blank=False, id="manifests-object")
        yield Static("", id="manifests-status", classes="status-line", markup=False)
        with VerticalScroll(id="manifests-scroll"):
            yield Static("", id="manifests-view", markup=False)

    def on_mount(self) -> None:
        self.refresh_apps()

    def on_show(self) -> None:
        focus_when_shown(self, self.query_one("#manifests-app", Select))

    def on_plan_changed(self, message: PlanChanged) -> None:
        self.refresh_apps()

    def on_plan_saved(self, message: PlanSaved) -> None:
        self.refresh_apps()

    # -- what is shown

    def refresh_apps(self) -> None:
        plan = self.app.session.plan
        names = [a.name for a in plan.apps] if plan is not None else []
        select = self.query_one("#manifests-app", Select)
        if self.app_name not in names:
            self.app_name = names[0] if names else None
        with self.prevent(Select.Changed):
            select.set_options([(n, n) for n in names])
            if self.app_name is not None:
                select.value = self.app_name
        if self.app_name is None:
            self._show("no plan yet: the inventory makes one (Inventory tab)", "")
            return
        self.load()

    def load(self) -> None:
        if self.app_name is not None:
            self._status(f"rendering {self.app_name}…")
            self.render_app(self.app_name, self.diff)

    @work(thread=True, exclusive=True, group="manifests", exit_on_error=False)
    def render_app(self, app: str, diff: bool) -> None:
        session = self.app.session
        cluster = session.app(app).cluster_name
        files = session.manifests(app)
        text = session.manifest_diff(app) if diff else None
        self.app.call_from_thread(self._rendered, app, cluster, diff, files, text)

    def _rendered(self, app: str, cluster: str, diff: bool, files: list[tuple[str, str]], text: str | None) -> None:
        if (app, diff) != (self.app_name, self.diff):
            return  # an older request: the person has moved on
        self.files = files
        names = [name for name, _ in files]
        if self.object not in names:
            self.object = ALL
        with self.prevent(Select.Changed):
            select = self.query_one("#manifests-object", Select)
            select.set_options([("all objects", ALL), *((n, n) for n in names)])
            select.value = self.object
        where = f"manifests/{cluster}/"
        if text is None:
            shown = files if self.object == ALL else [(n, y) for n, y in files if n == self.object]
            body = "".join(f"# {where}{name}\n{yaml}" + ("---\n" if i < len(shown) - 1 else "")
                           for i, (name, yaml) in enumerate(shown))  # fmt: skip
            self._show(f"{app}: {len(files)} objects in {where}", body, "yaml")
            return
        if self.object != ALL:
            text = diff_sections(text, self.object)
        plan_dir = self.app.session.plan_dir
        if plan_dir is None:
            status = f"{app}: not saved yet, so everything is new (diff against nothing)"
        elif not text:
            status = f"{app}: no changes against {plan_dir}"
        else:
            added = sum(1 for line in text.splitlines() if line.startswith("+") and not line.startswith("+++"))
            removed = sum(1 for line in text.splitlines() if line.startswith("-") and not line.startswith("---"))
            status = f"{app}: +{added} −{removed} lines against {plan_dir}"
        self._show(status, text or "No changes.", "diff" if text else None)

    def _show(self, status: str, text: str, lexer: str | None = None) -> None:
        self.text = text
        self._status(status)
        view = self.query_one("#manifests-view", Static)
        if lexer is None:
            view.update(text)
        else:
            view.update(Syntax(text, lexer, theme="ansi_dark", background_color="default", word_wrap=True))

    def _status(self, text: str) -> None:
        self.query_one("#manifests-status", Static).update(text)

    # -- choices

    @on(Select.Changed, "#manifests-app")
    def _app_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.app_name:
            self.app_name, self.object = event.value, ALL
            self.load()

    @on(Select.Changed, "#manifests-object")
    def _object_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.object:
            self.object = event.value
            self.load()

    def action_toggle_diff(self) -> None:
        self.diff = not self.diff
        self.load()

    def action_next_object(self) -> None:
        choices = [ALL, *(name for name, _ in self.files)]
        self.object = choices[(choices.index(self.object) + 1) % len(choices)] if self.object in choices else ALL
        self.load()

    def action_next_app(self) -> None:
        plan = self.app.session.plan
        names = [a.name for a in plan.apps] if plan is not None else []
        if not names:
            return
        index = names.index(self.app_name) + 1 if self.app_name in names else 0
        self.app_name, self.object = names[index % len(names)], ALL
        with self.prevent(Select.Changed):
            self.query_one("#manifests-app", Select).value = self.app_name
        self.load()
