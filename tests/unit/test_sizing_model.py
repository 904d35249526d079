"""The sizing model: worked example of sizing.md §5.6, invariants over sweeps, overrides and their errors."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from consolidator.cnpg_facts import CNPG_FIXED_PARAMETERS, is_fixed_parameter
from consolidator.errors import ConfigError, PlanValidationError
from consolidator.plan.model import Sizing, SizingEvidence
from consolidator.sizing.model import (
    MEMORY_RUNGS,
    SizingOptions,
    cpu_rung,
    derive_sizing,
    is_idle,
    memory_rung,
    round_up_tenth,
    validate_overrides,
)
from consolidator.sizing.quantity import GI, MI, parse_memory, parse_pg_memory

MB = 10**6
PATH = "apps[2].overrides"


def web(**changes: Any) -> SizingEvidence:
    """app_web of §5.6: 307 MB, read-only, 42 peak connections of which 97 % idle."""
    fields: dict[str, Any] = dict(
        databases=["app_web"],
        size_bytes=307 * MB,
        working_set_bytes=314 * MB,
        window_seconds=10,
        commits_per_s=12000,
        peak_connections=42,
        active_peak=8,
        active_p95=4,
        idle_fraction=0.97,
        sessions_per_s=0.0,
        avg_connection_age_s=60,
        wal_bytes_per_s=0.15 * MB,
        cpu_cores=0.826,
        cpu_source="proc",
    )
    fields.update(changes)
    return SizingEvidence(**fields)


def batch(**changes: Any) -> SizingEvidence:
    """app_batch of §5.6: 82 MB, 675 write tps, 4 connections, 1 MB/s of WAL."""
    fields: dict[str, Any] = dict(
        databases=["app_batch"],
        size_bytes=82 * MB,
        working_set_bytes=80 * MB,
        window_seconds=65,
        commits_per_s=675,
        peak_connections=4,
        active_peak=4,
        active_p95=4,
        idle_fraction=0.05,
        sessions_per_s=0.0,
        avg_connection_age_s=65,
        wal_bytes_per_s=1.0 * MB,
        cpu_cores=0.463,
        cpu_source="proc",
    )
    fields.update(changes)
    return SizingEvidence(**fields)


def churner(**changes: Any) -> SizingEvidence:
    """app_idle of §5.6: tiny, 9 tps, reconnects for every query (4.4 sessions/s)."""
    fields: dict[str, Any] = dict(
        databases=["app_idle"],
        size_bytes=22 * MB,
        working_set_bytes=16 * MB,
        window_seconds=65,
        commits_per_s=9,
        peak_connections=2,
        active_peak=1,
        active_p95=1,
        idle_fraction=0.5,
        sessions_per_s=4.4,
        avg_connection_age_s=0.2,
        wal_bytes_per_s=0.01 * MB,
        cpu_cores=0.012,
        cpu_source="proc",
    )
    fields.update(changes)
    return SizingEvidence(**fields)


def sleeper() -> SizingEvidence:
    """A really idle app: a week of sampling, one connection, almost no commits."""
    return SizingEvidence(
        databases=["legacy_wiki"],
        size_bytes=5 * MB,
        working_set_bytes=2 * MB,
        window_seconds=7 * 86400,
        commits_per_s=0.01,
        peak_connections=1,
        active_peak=1,
        cpu_cores=0.001,
        cpu_source="proc",
    )


def pg_bytes(sizing: Sizing, name: str, unit: str = "kB") -> int:
    return parse_pg_memory(sizing.parameters[name].value, unit=unit)


# --- worked example -----------------------------------------------------------------------------


def test_app_web_gets_a_pooler_for_its_idle_connections() -> None:
    s = derive_sizing(web())
    assert s.pooler.enabled
    assert "idle fraction 0.97" in s.pooler.reason and "peak 42" in s.pooler.reason
    assert (s.pooler.instances, s.pooler.default_pool_size, s.pooler.pool_mode) == (2, 5, "session")
    assert s.pooler.max_client_conn == 100
    assert s.max_connections.value == 25
    assert s.memory.value == "768Mi"
    assert s.parameters["shared_buffers"].value == "192MB"
    assert s.parameters["effective_cache_size"].value == "576MB"
    assert s.storage.value == "1Gi"
    assert s.wal_storage.value == "3Gi"
    assert s.cpu.value == "1500m"


def test_write_heavy_app_gets_more_wal_than_the_read_only_one() -> None:
    w, b = derive_sizing(web()), derive_sizing(batch())
    assert not b.pooler.enabled
    assert b.pooler.reason.startswith("no rule fired")
    assert b.parameters["max_wal_size"].value == "1664MB"
    assert b.parameters["min_wal_size"].value == "416MB"
    assert b.parameters["max_slot_wal_keep_size"].value == "3328MB"
    assert b.wal_storage.value == "11Gi"
    assert pg_bytes(b, "max_wal_size", "MB") > pg_bytes(w, "max_wal_size", "MB")
    assert parse_memory(b.wal_storage.value) > parse_memory(w.wal_storage.value)
    assert b.memory.value == "512Mi"
    assert b.parameters["shared_buffers"].value == "128MB"


def test_reconnecting_app_gets_a_pooler_by_the_churn_rule() -> None:
    s = derive_sizing(churner())
    assert s.pooler.enabled
    assert "churn 4.4 sessions/s" in s.pooler.reason
    assert s.memory.value == "512Mi"
    assert s.cpu.value == "250m"
    assert 1 * MI <= pg_bytes(s, "work_mem") <= 2 * MI


def test_peak_connection_rule_uses_the_cpu_request() -> None:
    s = derive_sizing(batch(peak_connections=120, active_peak=6))
    assert s.pooler.enabled
    assert "peak 120 connections > max(50, 8·1) = 50" in s.pooler.reason


def test_memory_budget_rule_switches_the_pooler_on() -> None:
    s = derive_sizing(batch(peak_connections=30, active_peak=3, wal_bytes_per_s=0))
    assert s.pooler.enabled
    assert "memory budget" in s.pooler.reason
    assert s.max_connections.value == 25


# --- reasons carry the evidence -----------------------------------------------------------------


def test_max_connections_reason_plugs_in_the_numbers() -> None:
    s = derive_sizing(web(idle_fraction=0.2, working_set_bytes=40 * MB, size_bytes=50 * MB))
    assert not s.pooler.enabled
    assert s.max_connections.value == 63
    assert s.max_connections.reason == "peak 42 connections measured over 10 s → max(25, ceil(1.25·42)+10) = 63"
    assert s.parameters["max_connections"].value == "63"


def test_reasons_name_measurements_and_formulas() -> None:
    s = derive_sizing(web())
    assert "0.826" in s.cpu.reason and "1.5·0.826 + 0.1" in s.cpu.reason and "1500m" in s.cpu.reason
    assert "293Mi" in s.memory.reason and "M_raw" in s.memory.reason and "768Mi" in s.memory.reason
    assert "12000 commits/s" in s.instances.reason and "42" in s.instances.reason
    assert "0.143 MiB/s" in s.parameters["max_wal_size"].reason
    assert "293Mi" in s.storage.reason and "+50 %" in s.storage.reason
    assert "0.143 MiB/s" in s.wal_storage.reason
    assert "768Mi / 4 = 192MB" in s.parameters["shared_buffers"].reason
    assert "sampling window of 10 s: growth unknown, +50 % headroom" in s.notes
    for name, value in s.parameters.items():
        assert isinstance(value.value, str), name
        assert value.reason, name


# --- instances and CPU --------------------------------------------------------------------------


def test_idle_definition() -> None:
    assert is_idle(sleeper())
    assert not is_idle(churner())
    assert not is_idle(SizingEvidence())  # no window: no evidence of idleness


def test_instances_active_idle_and_overrides() -> None:
    assert derive_sizing(web()).instances.value == 3
    idle = derive_sizing(sleeper())
    assert idle.instances.value == 1
    assert "0.01 commits/s" in idle.instances.reason
    assert any("enablePDB: false" in n for n in idle.notes)
    assert derive_sizing(SizingEvidence()).instances.value == 3
    by_option = derive_sizing(sleeper(), options=SizingOptions(instances=2))
    assert by_option.instances.value == 2 and "override --instances 2" in by_option.instances.reason
    by_plan = derive_sizing(sleeper(), overrides={"instances": 3}, options=SizingOptions(instances=2))
    assert by_plan.instances.value == 3 and by_plan.instances.reason.startswith("override in plan file")


def test_cpu_formula_and_ladder() -> None:
    assert round_up_tenth(1.5 * 0.2 + 0.1) == 0.4
    assert [cpu_rung(x) for x in (0.1, 0.2, 0.4, 0.8, 1.4, 2.2, 5, 70)] == [0.1, 0.25, 0.5, 1, 1.5, 3, 6, 80]
    assert derive_sizing(SizingEvidence()).cpu.value == "100m"
    assert derive_sizing(batch()).cpu.value == "1"  # 1.5·0.463 + 0.1 = 0.79 → 0.8 → 1


def test_memory_ladder() -> None:
    assert memory_rung(1) == 256 * MI
    assert memory_rung(723 * MI) == 768 * MI
    assert memory_rung(65 * GI) == 72 * GI


# --- invariants over a sweep --------------------------------------------------------------------


def _sweep() -> list[SizingEvidence]:
    out = []
    for size, peak, cpu, wal, spill, active in itertools.product(
        [0, MB, 300 * MB, 20 * GI], [0, 1, 42, 400], [0, 0.3, 3.7, 20], [0, MB, 200 * MB], [0, 10 * MB], [0, 5, 80]
    ):
        out.append(
            SizingEvidence(
                databases=["a", "b"],
                size_bytes=size,
                working_set_bytes=size // 3,
                window_seconds=3600,
                commits_per_s=5,
                peak_connections=peak,
                active_peak=active,
                active_p95=active * 0.7,
                idle_fraction=0.5,
                sessions_per_s=0.05,
                avg_connection_age_s=900,
                wal_bytes_per_s=wal,
                temp_bytes_per_s=spill,
                cpu_cores=cpu,
                cpu_source="proc",
            )
        )
    return out


@pytest.mark.parametrize("profile", ["web", "dw"])
def test_invariants_hold_for_every_input(profile: str) -> None:
    for evidence in _sweep():
        s = derive_sizing(evidence, options=SizingOptions(profile=profile))
        memory = parse_memory(s.memory.value)
        assert memory in MEMORY_RUNGS or memory % (8 * GI) == 0
        assert pg_bytes(s, "shared_buffers", "8kB") <= memory
        assert pg_bytes(s, "work_mem") >= MI
        assert not any(n.startswith("worst-case") for n in s.notes), s.notes
        assert not any(is_fixed_parameter(k) for k in s.parameters)
        assert "io_method" not in s.parameters
        assert parse_memory(s.storage.value) >= GI and parse_memory(s.wal_storage.value) >= GI
        if evidence.temp_bytes_per_s == 0:
            assert pg_bytes(s, "work_mem") <= 4 * MI


def test_shared_buffers_never_exceeds_an_overridden_memory() -> None:
    for mi in (128, 200, 256, 300, 512, 1000, 4096, 70000):
        s = derive_sizing(web(), overrides={"memory": f"{mi}Mi"})
        assert s.memory.value == f"{mi}Mi" or parse_memory(s.memory.value) == mi * MI
        assert pg_bytes(s, "shared_buffers", "8kB") <= mi * MI


def test_work_mem_rises_only_with_measured_spill() -> None:
    big = {"working_set_bytes": 6 * GI, "size_bytes": 8 * GI}
    dry = derive_sizing(batch(**big))
    wet = derive_sizing(batch(temp_bytes_per_s=20 * MB, **big))
    assert pg_bytes(dry, "work_mem") <= 4 * MI
    assert pg_bytes(wet, "work_mem") > 4 * MI
    assert "temp spill" in wet.parameters["work_mem"].reason


def test_profile_and_storage_kind() -> None:
    dw = derive_sizing(batch(cpu_cores=7), options=SizingOptions(profile="dw", storage_kind="hdd"))
    assert "jit" not in dw.parameters
    assert dw.parameters["default_statistics_target"].value == "500"
    assert dw.parameters["random_page_cost"].value == "4"
    assert dw.parameters["effective_io_concurrency"].value == "2"
    web_params = derive_sizing(web(), options=SizingOptions(storage_kind="network")).parameters
    assert web_params["jit"].value == "off"
    assert web_params["effective_io_concurrency"].value == "300"


@pytest.mark.parametrize(
    "options", [SizingOptions(instances=0), SizingOptions(profile="batch"), SizingOptions(storage_kind="nvme")]
)
def test_bad_options(options: SizingOptions) -> None:
    with pytest.raises(ConfigError):
        derive_sizing(web(), options=options)


# --- overrides flow into the derived values -----------------------------------------------------


def test_memory_override_recomputes_memory_parameters() -> None:
    s = derive_sizing(web(), overrides={"memory": "2Gi"}, path=PATH)
    assert s.memory.value == "2Gi" and s.memory.reason.startswith("override in plan file")
    assert s.parameters["shared_buffers"].value == "512MB"
    assert s.parameters["effective_cache_size"].value == "1536MB"
    assert s.parameters["maintenance_work_mem"].value == "128MB"


def test_large_memory_override_caps_maintenance_and_sets_autovacuum_work_mem() -> None:
    s = derive_sizing(web(), overrides={"memory": "64Gi"})
    assert s.parameters["maintenance_work_mem"].value == "2GB"
    assert s.parameters["autovacuum_work_mem"].value == "1GB"
    assert s.parameters["shared_buffers"].value == "16GB"


def test_cpu_override_drives_parallelism() -> None:
    s = derive_sizing(web(), overrides={"cpu": "4"})
    assert s.cpu.value == "4" and "override" in s.cpu.reason
    assert s.parameters["max_parallel_workers"].value == "4"
    assert s.parameters["max_parallel_workers_per_gather"].value == "2"
    assert s.parameters["max_parallel_maintenance_workers"].value == "2"
    small = derive_sizing(web(), overrides={"cpu": "500m"})
    assert small.parameters["max_parallel_workers_per_gather"].value == "0"


def test_max_connections_override_flows_into_memory() -> None:
    base = derive_sizing(batch())
    s = derive_sizing(batch(), overrides={"max_connections": 200})
    assert s.max_connections.value == 200
    assert s.parameters["max_connections"].value == "200"
    assert "override in plan file" in s.max_connections.reason
    assert parse_memory(s.memory.value) > parse_memory(base.memory.value)
    assert "200·4Mi" in s.memory.reason


def test_parameter_override_wins() -> None:
    s = derive_sizing(web(), overrides={"parameters": {"work_mem": "8MB", "jit": True, "random_page_cost": 2}})
    assert s.parameters["work_mem"].value == "8MB"
    assert s.parameters["work_mem"].reason.startswith("override in plan file")
    assert s.parameters["jit"].value == "on"  # YAML booleans become on/off
    assert s.parameters["random_page_cost"].value == "2"


def test_parameter_override_of_max_wal_size_resizes_the_wal_volume() -> None:
    s = derive_sizing(web(), overrides={"parameters": {"max_wal_size": "4GB"}})
    assert s.parameters["max_wal_size"].value == "4GB"
    assert parse_memory(s.wal_storage.value) > parse_memory(derive_sizing(web()).wal_storage.value)


def test_overriding_work_mem_too_high_leaves_a_worst_case_note() -> None:
    s = derive_sizing(web(), overrides={"parameters": {"work_mem": "64MB"}})
    assert any(n.startswith("worst-case memory") for n in s.notes)


def test_pooler_overrides() -> None:
    off = derive_sizing(web(), overrides={"pooler": False})
    assert not off.pooler.enabled
    assert off.max_connections.value == 63
    on = derive_sizing(
        batch(), overrides={"pooler": {"instances": 3, "pool_mode": "transaction", "default_pool_size": 8}}
    )
    assert on.pooler.enabled
    assert (on.pooler.instances, on.pooler.pool_mode, on.pooler.default_pool_size) == (3, "transaction", 8)
    assert on.max_connections.value == 3 * 8 + 10


def test_wal_storage_none_moves_wal_into_storage() -> None:
    with_wal = derive_sizing(batch())
    without = derive_sizing(batch(), overrides={"wal_storage": "none"})
    assert without.wal_storage.value is None
    assert parse_memory(without.storage.value) > parse_memory(with_wal.storage.value)
    assert derive_sizing(batch(), overrides={"wal_storage": None}).wal_storage.value is None
    assert derive_sizing(batch(), overrides={"wal_storage": "20Gi"}).wal_storage.value == "20Gi"


def test_storage_override() -> None:
    s = derive_sizing(web(), overrides={"storage": "50Gi"})
    assert s.storage.value == "50Gi" and "override in plan file" in s.storage.reason


# --- bad overrides name the exact key path ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "path", "text"),
    [
        ({"memory": "12 potatoes"}, f"{PATH}.memory", '"12 potatoes" is not a quantity'),
        ({"memory": "64Mi"}, f"{PATH}.memory", "128Mi"),
        ({"memory": ["1Gi"]}, f"{PATH}.memory", "is not a quantity"),
        ({"instances": 0}, f"{PATH}.instances", "between 1 and 10"),
        ({"instances": 11}, f"{PATH}.instances", "between 1 and 10"),
        ({"instances": "three"}, f"{PATH}.instances", "whole number"),
        ({"instances": True}, f"{PATH}.instances", "whole number"),
        ({"cpu": "0"}, f"{PATH}.cpu", "positive"),
        ({"cpu": "-1"}, f"{PATH}.cpu", "positive"),
        ({"cpu": "fast"}, f"{PATH}.cpu", "is not a quantity"),
        ({"max_connections": 5}, f"{PATH}.max_connections", "at least 10"),
        ({"storage": "10Mi"}, f"{PATH}.storage", "1Gi"),
        ({"storage": "1Gi"}, f"{PATH}.storage", "smaller than"),
        ({"wal_storage": "1Gi"}, f"{PATH}.wal_storage", "max_wal_size"),
        ({"ram": "1Gi"}, f"{PATH}.ram", "unknown override key"),
        ({"pooler": "yes"}, f"{PATH}.pooler", "not a pooler setting"),
        ({"pooler": {"size": 3}}, f"{PATH}.pooler.size", "unknown pooler key"),
        ({"pooler": {"pool_mode": "statement"}}, f"{PATH}.pooler.pool_mode", "not a pool mode"),
        ({"pooler": {"default_pool_size": 0}}, f"{PATH}.pooler.default_pool_size", "at least 1"),
        ({"max_connections": 20, "pooler": {"default_pool_size": 10}}, f"{PATH}.max_connections", "pooler"),
        ({"parameters": "work_mem=4MB"}, f"{PATH}.parameters", "mapping"),
        ({"parameters": {"work_mem": "12 potatoes"}}, f"{PATH}.parameters.work_mem", "12 potatoes"),
        ({"parameters": {"work_mem": "4mb"}}, f"{PATH}.parameters.work_mem", "case-sensitive"),
        (
            {"parameters": {"shared_buffers": "4GB"}, "memory": "1Gi"},
            f"{PATH}.parameters.shared_buffers",
            "above the memory request",
        ),
        ({"parameters": {"shared_buffers": "-1"}}, f"{PATH}.parameters.shared_buffers", "-1"),
        ({"parameters": {"max_connections": "500"}}, f"{PATH}.parameters.max_connections", "max_connections"),
        ({"parameters": {"io_method": "io_uring"}}, f"{PATH}.parameters.io_method", "io_uring"),
        ({"parameters": {"bad name!": "1"}}, f"{PATH}.parameters.bad name!", "not a parameter name"),
        ({"parameters": {"work_mem": {"a": 1}}}, f"{PATH}.parameters.work_mem", "not a parameter value"),
    ],
)
def test_bad_override_raises_with_key_path(overrides: dict[str, Any], path: str, text: str) -> None:
    evidence = web(size_bytes=5 * GI, working_set_bytes=GI) if "storage" in overrides else batch()
    with pytest.raises(PlanValidationError) as info:
        derive_sizing(evidence, overrides=overrides, path=PATH)
    assert info.value.path == path
    assert text in str(info.value)
    assert info.value.hint


def test_unknown_key_hint_lists_allowed_keys() -> None:
    with pytest.raises(PlanValidationError) as info:
        validate_overrides({"ram": "1Gi"}, path=PATH)
    for key in ("instances", "cpu", "memory", "storage", "wal_storage", "max_connections", "pooler", "parameters"):
        assert key in (info.value.hint or "")


def test_memory_error_message_is_exact() -> None:
    with pytest.raises(PlanValidationError) as info:
        derive_sizing(web(), overrides={"memory": "12 potatoes"}, path=PATH)
    assert info.value.message == f'{PATH}.memory: "12 potatoes" is not a quantity'


@pytest.mark.parametrize("name", sorted(CNPG_FIXED_PARAMETERS))
def test_every_fixed_parameter_is_rejected(name: str) -> None:
    concrete = name.replace("*", "x") if name.endswith("_*") else name.replace("*", "_time")
    with pytest.raises(PlanValidationError) as info:
        derive_sizing(web(), overrides={"parameters": {concrete: "x"}}, path=PATH)
    assert info.value.path == f"{PATH}.parameters.{concrete}"
    assert "CloudNativePG" in str(info.value)


def test_fixed_parameter_check_is_case_insensitive_and_points_to_the_field() -> None:
    with pytest.raises(PlanValidationError) as info:
        derive_sizing(web(), overrides={"parameters": {"Shared_Preload_Libraries": "pg_cron"}}, path=PATH)
    assert "spec.postgresql.shared_preload_libraries" in (info.value.hint or "")
    assert is_fixed_parameter("recovery_target_time") and is_fixed_parameter("syslog_facility")
    assert not is_fixed_parameter("work_mem")
