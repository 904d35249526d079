"""The public Pagila sample (partitions, triggers, enums, domains, full-text) as a real-world case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.inventory.model import Inventory
from consolidator.manifests.render import check_plan, render_app
from consolidator.pg.connect import connect
from consolidator.plan.build import PlanOptions, build_plan
from tests.cnpg_schema import validate_object
from tests.conftest import PAGILA, load_sql_file
from tests.harness import Server, running_server


@pytest.fixture(scope="module")
def pagila() -> Iterator[tuple[Server, Inventory]]:
    if not (PAGILA / "pagila-schema.sql").exists():
        pytest.skip(f"Pagila dataset not found at {PAGILA}")
    with running_server(15) as server:
        with connect(server.dsn) as conn:
            conn.execute("CREATE DATABASE pagila")
        load_sql_file(server, "pagila", PAGILA / "pagila-schema.sql")
        load_sql_file(server, "pagila", PAGILA / "pagila-data.sql")
        with connect(server.dsn, dbname="pagila") as conn:
            conn.execute("ANALYZE")
        yield server, run_inventory(server.dsn, InventoryOptions(sample_seconds=0))


def test_pagila_inventory(pagila: tuple[Server, Inventory]) -> None:
    _, inv = pagila
    db = inv.database("pagila")
    names = {t.name for t in db.tables}
    assert {"film", "actor", "rental", "payment"} <= names
    payment = next(t for t in db.tables if t.name == "payment")
    assert payment.kind == "p"
    partitions = [t for t in db.tables if t.partition_of and t.partition_of.endswith("payment")]
    assert len(partitions) >= 5
    assert db.trigger_count > 0 and db.function_count > 0 and db.view_count > 0
    assert db.catalog_counts["types"] > 0  # mpaa_rating enum, year domain, …
    assert any(s.name == "film_film_id_seq" for s in db.sequences)
    # pagila's objects belong to the superuser: they stay with the target's superuser
    assert any(f.code == "CN701" for f in db.findings)


def test_pagila_plan_and_manifests(pagila: tuple[Server, Inventory], tmp_path: Path) -> None:
    server, inv = pagila
    plan = build_plan(inv, server.dsn, PlanOptions(provider="cnpg"))
    app = plan.app("pagila")
    assert app.strategy.name == "dump"
    assert app.databases[0].owner == "app"  # the source owner is the superuser
    assert check_plan(plan) == []
    for obj in render_app(plan, app):
        validate_object(obj)
