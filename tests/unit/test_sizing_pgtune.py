"""pgtune's v2019-era rules: the published 128 MB example exactly, then the branches around it."""

from __future__ import annotations

import pytest

from consolidator.sizing.pgtune import pgtune
from consolidator.sizing.quantity import GI, MI

PARALLEL_KEYS = {
    "max_worker_processes",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",
    "max_parallel_maintenance_workers",
}


def test_published_homelab_example_exactly() -> None:
    conf = pgtune(128 * MI, db_type="web", connections=200)
    assert conf == {
        "max_connections": "200",
        "shared_buffers": "32MB",
        "effective_cache_size": "96MB",
        "maintenance_work_mem": "8MB",
        "checkpoint_completion_target": "0.9",
        "wal_buffers": "983kB",
        "default_statistics_target": "100",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "work_mem": "81kB",
        "huge_pages": "off",
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
    }


@pytest.mark.parametrize("cpus", [None, 1, 2, 3, 4])
def test_example_inputs_that_reproduce_81kb(cpus: int | None) -> None:
    """sizing.md §1.1: CPUs blank, 1, 3–4 and (post 2022-10 builds) 2 all give 81kB."""
    assert pgtune(128 * MI, cpus=cpus)["work_mem"] == "81kB"


def test_web_default_connections_and_all_storage_types_keep_the_example() -> None:
    for storage in ("ssd", "hdd", "san"):
        conf = pgtune(128 * MI, storage=storage)
        assert conf["max_connections"] == "200"
        assert conf["work_mem"] == "81kB"


def test_parallel_settings_only_from_four_cpus() -> None:
    assert PARALLEL_KEYS.isdisjoint(pgtune(GI, cpus=2))
    conf = pgtune(GI, cpus=4)
    assert {k: conf[k] for k in PARALLEL_KEYS} == {
        "max_worker_processes": "4",
        "max_parallel_workers_per_gather": "2",
        "max_parallel_workers": "4",
        "max_parallel_maintenance_workers": "2",
    }


def test_per_gather_divides_work_mem_and_64kb_floor() -> None:
    # (131072 − 32768) / (200·3) / 4 = 40.96 → floor 64kB
    assert pgtune(128 * MI, cpus=8)["work_mem"] == "64kB"
    assert pgtune(128 * MI, cpus=8)["max_parallel_workers_per_gather"] == "4"


def test_one_gib_web() -> None:
    conf = pgtune(GI)
    assert conf["shared_buffers"] == "256MB"
    assert conf["work_mem"] == "655kB"  # sizing.md §2: pgtune v2019 at 1Gi
    assert conf["wal_buffers"] == "7864kB"


def test_connections_given() -> None:
    # (131072 − 32768) / (100·3) / 2 = 163.8
    assert pgtune(128 * MI, connections=100)["work_mem"] == "163kB"


def test_wal_buffers_snaps_to_16mb_and_caps() -> None:
    assert pgtune(2 * GI)["wal_buffers"] == "16MB"  # 3 % of 512MB = 15728kB → snapped
    assert pgtune(64 * GI)["wal_buffers"] == "16MB"
    assert pgtune(4 * MI)["wal_buffers"] == "32kB"


def test_dw_large_machine() -> None:
    conf = pgtune(64 * GI, db_type="dw", cpus=16)
    assert conf["max_connections"] == "40"
    assert conf["shared_buffers"] == "16GB"
    assert conf["effective_cache_size"] == "48GB"
    assert conf["maintenance_work_mem"] == "2GB"  # RAM/8 capped
    assert conf["default_statistics_target"] == "500"
    assert conf["huge_pages"] == "try"
    assert conf["max_parallel_workers_per_gather"] == "8"  # no cap of 4 for dw
    assert conf["work_mem"] == "26214kB"  # (67108864 − 16777216) / 120 / 8 / 2
    assert (conf["min_wal_size"], conf["max_wal_size"]) == ("4GB", "16GB")


def test_oltp_mixed_desktop() -> None:
    assert pgtune(GI, db_type="oltp")["max_connections"] == "300"
    assert (pgtune(GI, db_type="oltp")["min_wal_size"], pgtune(GI, db_type="oltp")["max_wal_size"]) == ("2GB", "8GB")
    assert pgtune(GI, db_type="mixed")["max_connections"] == "100"
    desktop = pgtune(GI, db_type="desktop")
    assert desktop["shared_buffers"] == "64MB"
    assert desktop["effective_cache_size"] == "256MB"
    assert desktop["wal_level"] == "minimal"
    assert (desktop["min_wal_size"], desktop["max_wal_size"]) == ("100MB", "2GB")


def test_storage_types() -> None:
    hdd = pgtune(GI, storage="hdd")
    assert (hdd["random_page_cost"], hdd["effective_io_concurrency"]) == ("4", "2")
    san = pgtune(GI, storage="san")
    assert (san["random_page_cost"], san["effective_io_concurrency"]) == ("1.1", "300")


def test_pg10_has_no_parallel_maintenance() -> None:
    conf = pgtune(GI, cpus=8, pg_major=10)
    assert "max_parallel_maintenance_workers" not in conf
    assert conf["max_parallel_workers"] == "8"


@pytest.mark.parametrize(
    "kwargs",
    [{"db_type": "batch"}, {"storage": "nvme"}, {"pg_major": 9}, {"connections": 0}, {"cpus": 0}],
)
def test_rejects_bad_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        pgtune(GI, **kwargs)  # type: ignore[arg-type]


def test_rejects_no_ram() -> None:
    with pytest.raises(ValueError):
        pgtune(100)
