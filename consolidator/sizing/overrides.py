"""Per-app ``overrides`` from the plan file: parsed and checked, with the key path in every error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from consolidator.cnpg_facts import CNPG_DEDICATED_FIELDS, is_fixed_parameter
from consolidator.errors import PlanValidationError
from consolidator.sizing.policy import (
    MAX_INSTANCES,
    MIN_INSTANCES,
    MIN_MAX_CONNECTIONS,
    MIN_MEMORY_OVERRIDE,
    MIN_VOLUME,
    OVERRIDE_KEYS,
    PARAMETER_NAME,
    PG_MEMORY_PARAMETERS,
    POOL_MODES,
    POOLER_OVERRIDE_KEYS,
)
from consolidator.sizing.quantity import (
    parse_cpu,
    parse_memory,
    parse_pg_memory,
)


@dataclass
class SizingOverrides:
    """The validated ``overrides`` block of one app in the plan file (None = not overridden)."""

    instances: int | None = None
    cpu: float | None = None
    memory: int | None = None
    storage: int | None = None
    wal_storage: int | None = None
    wal_storage_disabled: bool = False
    max_connections: int | None = None
    pooler_enabled: bool | None = None
    pooler_instances: int | None = None
    pool_mode: str | None = None
    default_pool_size: int | None = None
    max_client_conn: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    parameter_bytes: dict[str, int] = field(default_factory=dict)  # parsed memory-typed parameters


# --- overrides ---------------------------------------------------------------------------------


def _int(value: Any, path: str, lo: int, hi: int | None, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PlanValidationError(path, f'"{value}" is not a whole number', hint=hint)
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d+\s*", value):
            raise PlanValidationError(path, f'"{value}" is not a whole number', hint=hint)
        value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise PlanValidationError(path, f"{value} is out of range: must be {bound}", hint=hint)
    return value


def _memory_quantity(value: Any, path: str, hint: str) -> int:
    try:
        return parse_memory(value)
    except ValueError as exc:
        raise PlanValidationError(path, str(exc), hint=hint) from exc


def _parse_cpu_override(value: Any, path: str) -> float:
    hint = 'write CPU as a Kubernetes quantity, e.g. "500m" or "2"'
    try:
        cores = parse_cpu(value)
    except ValueError as exc:
        raise PlanValidationError(path, str(exc), hint=hint) from exc
    if cores <= 0:
        raise PlanValidationError(path, f'"{value}" is not a positive CPU amount', hint="use at least 100m")
    return cores


def _parse_memory_override(value: Any, path: str) -> int:
    n_bytes = _memory_quantity(value, path, 'write memory as a Kubernetes quantity, e.g. "768Mi" or "2Gi"')
    if n_bytes < MIN_MEMORY_OVERRIDE:
        raise PlanValidationError(
            path,
            f'"{value}" is below the 128Mi minimum a CNPG instance survives',
            hint="use at least 256Mi (the dev floor) or remove the override",
        )
    return n_bytes


def _parse_volume_override(value: Any, path: str) -> int:
    n_bytes = _memory_quantity(value, path, 'write a volume size such as "10Gi"')
    if n_bytes < MIN_VOLUME:
        raise PlanValidationError(path, f'"{value}" is below the 1Gi minimum volume', hint="use at least 1Gi")
    return n_bytes


def _parse_pooler_override(value: Any, path: str, ov: SizingOverrides) -> None:
    if isinstance(value, bool):
        ov.pooler_enabled = value
        return
    if value is None:
        ov.pooler_enabled = False
        return
    if not isinstance(value, dict):
        raise PlanValidationError(
            path, f'"{value}" is not a pooler setting', hint="write true, false or a mapping of pooler fields"
        )
    for key in value:
        if key not in POOLER_OVERRIDE_KEYS:
            raise PlanValidationError(
                f"{path}.{key}", "unknown pooler key", hint=f"allowed keys: {', '.join(POOLER_OVERRIDE_KEYS)}"
            )
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PlanValidationError(f"{path}.enabled", f'"{enabled}" is not true or false', hint="write true or false")
    ov.pooler_enabled = enabled
    if "instances" in value:
        ov.pooler_instances = _int(
            value["instances"],
            f"{path}.instances",
            1,
            MAX_INSTANCES,
            "a Pooler runs 1 to 10 PgBouncer pods; 2 is the usual choice",
        )
    if "default_pool_size" in value:
        ov.default_pool_size = _int(
            value["default_pool_size"],
            f"{path}.default_pool_size",
            1,
            None,
            "server connections per user/database pair, e.g. 5",
        )
    if "max_client_conn" in value:
        ov.max_client_conn = _int(
            value["max_client_conn"],
            f"{path}.max_client_conn",
            1,
            None,
            "client connections PgBouncer accepts, e.g. 100",
        )
    if "pool_mode" in value:
        mode = value["pool_mode"]
        if mode not in POOL_MODES:
            raise PlanValidationError(
                f"{path}.pool_mode", f'"{mode}" is not a pool mode', hint="use session or transaction"
            )
        ov.pool_mode = mode


def _parameter_value(value: Any, path: str) -> str:
    """Plan files are YAML: ``jit: off`` arrives as False; CNPG wants strings."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float | str):
        return str(value)
    raise PlanValidationError(
        path, f'"{value}" is not a parameter value', hint='postgresql.parameters holds plain strings such as "64MB"'
    )


def _check_parameter(name: str, text: str, path: str, ov: SizingOverrides) -> None:
    lowered = name.lower()
    if is_fixed_parameter(lowered):
        field_hint = CNPG_DEDICATED_FIELDS.get(lowered)
        hint = f"use {field_hint} instead" if field_hint else "remove it: CloudNativePG sets it itself"
        raise PlanValidationError(path, f'"{name}" is fixed by CloudNativePG and rejected by its webhook', hint=hint)
    if lowered == "io_method" and text.strip().lower() == "io_uring":
        raise PlanValidationError(
            path,
            "io_uring is blocked by the container runtime's seccomp profile",
            hint="remove it; PostgreSQL 18 keeps its default io_method=worker",
        )
    if lowered == "max_connections":
        raise PlanValidationError(
            path,
            "max_connections is sized from memory and connections",
            hint=f"set {path.rsplit('.parameters', 1)[0]}.max_connections instead",
        )
    if lowered in PG_MEMORY_PARAMETERS:
        unit, minus_one = PG_MEMORY_PARAMETERS[lowered]
        try:
            n_bytes = parse_pg_memory(text, unit=unit)
        except ValueError as exc:
            raise PlanValidationError(path, str(exc), hint='write a size such as "64MB" or "1GB"') from exc
        if n_bytes == -1 and not minus_one:
            raise PlanValidationError(path, f"-1 is not allowed for {lowered}", hint='write a size such as "64MB"')
        ov.parameter_bytes[lowered] = n_bytes


def _parse_parameters(value: Any, path: str, ov: SizingOverrides) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise PlanValidationError(
            path, f'"{value}" is not a mapping of parameters', hint="write parameters as name: value pairs"
        )
    for name, raw in value.items():
        key_path = f"{path}.{name}"
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            raise PlanValidationError(
                key_path, f'"{name}" is not a parameter name', hint="use a postgresql.conf name such as work_mem"
            )
        text = _parameter_value(raw, key_path)
        _check_parameter(name, text, key_path, ov)
        ov.parameters[name.lower()] = text


def validate_overrides(overrides: dict[str, Any] | None, *, path: str = "overrides") -> SizingOverrides:
    """Check a plan file's overrides block; every error names the key path and how to fix it.

    Checks that need the derived sizing (shared_buffers ≤ memory, storage ≥ size, …) happen in
    :func:`derive_sizing`.
    """
    ov = SizingOverrides()
    if overrides is None:
        return ov
    if not isinstance(overrides, dict):
        raise PlanValidationError(path, "overrides must be a mapping", hint=f"keys: {', '.join(OVERRIDE_KEYS)}")
    for key, value in overrides.items():
        key_path = f"{path}.{key}"
        if key not in OVERRIDE_KEYS:
            raise PlanValidationError(
                key_path, "unknown override key", hint=f"allowed keys: {', '.join(OVERRIDE_KEYS)}"
            )
        _parse_override(key, value, key_path, ov)
    return ov


def _parse_override(key: str, value: Any, key_path: str, ov: SizingOverrides) -> None:
    if key == "instances":
        ov.instances = _int(
            value, key_path, MIN_INSTANCES, MAX_INSTANCES, "use 1 (dev), 2 or 3 (production with failover)"
        )
    elif key == "cpu":
        ov.cpu = _parse_cpu_override(value, key_path)
    elif key == "memory":
        ov.memory = _parse_memory_override(value, key_path)
    elif key == "storage":
        ov.storage = _parse_volume_override(value, key_path)
    elif key == "wal_storage":
        if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            ov.wal_storage_disabled = True
        else:
            ov.wal_storage = _parse_volume_override(value, key_path)
    elif key == "max_connections":
        ov.max_connections = _int(
            value, key_path, MIN_MAX_CONNECTIONS, None, "keep at least 10: CNPG, monitoring and walsenders need slots"
        )
    elif key == "pooler":
        _parse_pooler_override(value, key_path, ov)
    else:
        _parse_parameters(value, key_path, ov)
