"""Facts about CloudNativePG 1.30 that several parts of the tool must agree on.

One list of fixed parameters and reserved roles, read by the sizing model (which never proposes
them), the manifest renderer and the admission pre-checks (which refuse them).
"""

from __future__ import annotations

#: Parameters CloudNativePG generates itself; its webhook rejects them in ``postgresql.parameters``
#: (cnpg.md §3.5). Names ending in ``*`` are families. ``allow_alter_system`` is added because CNPG
#: overwrites it from ``enableAlterSystem``.
CNPG_FIXED_PARAMETERS: frozenset[str] = frozenset(
    {
        # restart class
        "allow_system_table_mods",
        "archive_mode",
        "bonjour",
        "bonjour_name",
        "cluster_name",
        "config_file",
        "data_directory",
        "data_sync_retry",
        "event_source",
        "external_pid_file",
        "hba_file",
        "hot_standby",
        "ident_file",
        "jit_provider",
        "listen_addresses",
        "logging_collector",
        "port",
        "primary_conninfo",
        "primary_slot_name",
        "recovery_target*",
        "restore_command",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        # reload class
        "archive_cleanup_command",
        "archive_command",
        "log_destination",
        "log_directory",
        "log_file_mode",
        "log_filename",
        "log_rotation_age",
        "log_rotation_size",
        "log_truncate_on_rotation",
        "pg_failover_slots.primary_dsn",
        "pg_failover_slots.standby_slot_names",
        "promote_trigger_file",
        "recovery_end_command",
        "recovery_min_apply_delay",
        "restart_after_crash",
        "ssl",
        "ssl_ca_file",
        "ssl_cert_file",
        "ssl_crl_file",
        "ssl_dh_params_file",
        "ssl_key_file",
        "ssl_passphrase_command*",
        "ssl_prefer_server_ciphers",
        "stats_temp_directory",
        "synchronous_standby_names",
        "synchronized_standby_slots",
        "syslog_*",
        # overwritten from spec.postgresql.enableAlterSystem (PG 17+)
        "allow_alter_system",
    }
)
#: Where the user should put what a fixed parameter would have said.
CNPG_DEDICATED_FIELDS = {
    "shared_preload_libraries": "spec.postgresql.shared_preload_libraries",
    "synchronous_standby_names": "spec.postgresql.synchronous",
    "temp_tablespaces": "spec.tablespaces[].temporary",
    "recovery_min_apply_delay": "spec.replica.minApplyDelay",
    "allow_alter_system": "spec.postgresql.enableAlterSystem",
}


def is_fixed_parameter(name: str) -> bool:
    """True if CNPG owns ``name`` (GUC names are case-insensitive)."""
    lowered = name.lower()
    if lowered in CNPG_FIXED_PARAMETERS:
        return True
    return any(p.endswith("*") and lowered.startswith(p[:-1]) for p in CNPG_FIXED_PARAMETERS)



#: Roles CloudNativePG creates itself or PostgreSQL predefines: declaring them fights the operator.
RESERVED_ROLES = frozenset({"postgres", "streaming_replica"})
RESERVED_ROLE_PREFIXES = ("pg_", "cnpg_")


def is_reserved_role(name: str) -> bool:
    return name in RESERVED_ROLES or name.startswith(RESERVED_ROLE_PREFIXES)
