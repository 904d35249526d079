"""Finding PostgreSQL tools: server installs for local targets, client tools alone for copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from consolidator.errors import PreconditionError
from consolidator.pg.binaries import CLIENT_TOOLS, _probe_client, find, find_client


def test_client_only_directory_is_enough_for_client_tools(tmp_path: Path) -> None:
    """A directory with just pg_dump, pg_restore, psql and vacuumdb (what postgresql-client-N installs)."""
    server = find()
    for tool in CLIENT_TOOLS:
        shutil.copy2(server.bindir / tool, tmp_path / tool)
    probed = _probe_client(tmp_path)
    assert probed is not None and probed.major == server.major and not probed.bundled
    (tmp_path / "psql").unlink()
    assert _probe_client(tmp_path) is None


def test_find_client_prefers_full_installs_and_names_the_fix() -> None:
    assert find_client().major == find().major
    assert find_client(find().major).bindir == find().bindir
    with pytest.raises(PreconditionError, match="client tools not found") as err:
        find_client(9)
    assert "postgresql-client-9" in (err.value.hint or "")
