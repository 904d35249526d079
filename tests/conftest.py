"""Shared fixtures: real PostgreSQL servers (never mocks) populated with realistic app databases."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.demo.legacy import create_legacy_databases
from consolidator.demo.workload import Workload
from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.inventory.model import Inventory
from consolidator.pg.binaries import find
from tests.harness import Server, running_server

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PAGILA = SHARED / "datasets" / "pagila"


@pytest.fixture(scope="session")
def legacy() -> Iterator[Server]:
    """A PostgreSQL 15 'legacy' server with the four demo app databases (read-only for tests)."""
    with running_server(15, {"wal_level": "logical"}) as server:
        create_legacy_databases(server.dsn, scale_mb=5, passwords=server.add_password)
        yield server


@pytest.fixture(scope="session")
def inventory(legacy: Server) -> Inventory:
    """One inventory of ``legacy`` taken under a light workload."""
    apps = {
        "mastodon_production": legacy.conninfo("mastodon_production", "mastodon"),
        "nextcloud": legacy.conninfo("nextcloud", "nextcloud"),
    }
    workload = Workload(apps, tps=30)
    workload.start()
    try:
        return run_inventory(legacy.dsn, InventoryOptions(sample_seconds=2))
    finally:
        workload.stop()


@pytest.fixture()
def local_root() -> Iterator[Path]:
    """Where local targets live: their servers run as an unprivileged user, who must reach it."""
    root = Path(tempfile.mkdtemp(prefix="consolidator-targets-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def scratch() -> Iterator[Server]:
    """A fresh server a test may change at will."""
    with running_server(15) as server:
        yield server


def load_sql_file(server: Server, dbname: str, path: Path) -> None:
    """Run an SQL script with psql (COPY … FROM stdin needs it), stopping at the first error."""
    psql = find(server.major).tool("psql")
    subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.conninfo(dbname), "-f", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
