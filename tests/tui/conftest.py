"""TUI tests: Textual's pilot against real PostgreSQL, deterministic (no cursor blink, fixed size)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consolidator.demo.legacy import create_legacy_databases
from tests.harness import Server, running_server

SIZE = (120, 40)


@pytest.fixture(scope="module")
def legacy_tui() -> Iterator[Server]:
    """A small legacy server with the demo's four apps (3 MB: the smallest scale the generator supports)."""
    with running_server(15, {"wal_level": "logical"}) as server:
        create_legacy_databases(server.dsn, scale_mb=3, passwords=server.add_password)
        yield server


@pytest.fixture(autouse=True)
def _quiet_tui(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Recent sources go to a private config dir; no cursor blink to keep screenshots stable."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)
