"""Which extensions the CloudNativePG operand images ship (standard type, PGDG packages).

Contrib modules come with every image; the ``standard`` type adds PGAudit, pg_failover_slots and
pgvector. Anything else needs a custom image or an extension image volume (PG 18, K8s 1.35+).
"""

from __future__ import annotations

CONTRIB = frozenset(
    """
    adminpack amcheck autoinc bloom btree_gin btree_gist citext cube dblink dict_int
    dict_xsyn earthdistance file_fdw fuzzystrmatch hstore insert_username intagg intarray isn lo ltree
    moddatetime old_snapshot pageinspect pg_buffercache pg_freespacemap pg_prewarm pg_stat_statements
    pg_surgery pg_trgm pg_visibility pg_walinspect pgcrypto pgrowlocks pgstattuple plpgsql postgres_fdw
    refint seg sslinfo tablefunc tcn tsm_system_rows tsm_system_time unaccent uuid-ossp xml2
    """.split()
)
STANDARD_EXTRAS = frozenset({"pgaudit", "pg_failover_slots", "vector"})
IMAGE_EXTENSIONS = CONTRIB | STANDARD_EXTRAS


def shipped(extension: str) -> bool:
    """True when the standard CNPG image can ``CREATE EXTENSION`` it without a custom image."""
    return extension in IMAGE_EXTENSIONS
