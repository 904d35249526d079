"""Finding codes: stable identifiers a CI pipeline can grep for, each with a fix.

Codes never change meaning once released; new checks get new codes. ``docs/findings.md`` lists
them all and a test keeps it in sync with :data:`CATALOG`.
"""

from __future__ import annotations

from dataclasses import dataclass

from consolidator.inventory.model import Finding


@dataclass(frozen=True)
class Check:
    code: str
    severity: str
    title: str
    fix: str


CATALOG: dict[str, Check] = {
    c.code: c
    for c in (
        Check("CN001", "warning", "inventory could not see part of the server",
              "run the inventory as a superuser, or GRANT pg_monitor and CONNECT on the database"),
        Check("CN002", "info", "activity evidence is thin",
              "sample longer (--sample-seconds 600 or more) at a busy hour for better sizing"),
        Check("CN101", "warning", "table without primary key or replica identity",
              "add a primary key, or ALTER TABLE … REPLICA IDENTITY FULL (logical copies it at cutover)"),
        Check("CN102", "warning", "unlogged table",
              "logical replication does not carry it: it is copied while the source is fenced"),
        Check("CN103", "info", "foreign table",
              "the definition is migrated, not the remote data; check the server is reachable from the target"),
        Check("CN104", "info", "materialized view",
              "refreshed on the target at cutover (logical replication does not fill it)"),
        Check("CN201", "error", "extension not shipped in CloudNativePG images",
              "use an image that provides it (custom image or extension image volume), or drop it"),
        Check("CN202", "warning", "extension not available for the target version here",
              "install the extension for the target major on the target before migrating"),
        Check("CN301", "info", "sequences are synchronised at cutover",
              "nothing to do: consolidator sets every sequence on the target while the source is fenced"),
        Check("CN302", "warning", "sequence value not readable",
              "GRANT SELECT on the sequence to the inventory role (or run as superuser)"),
        Check("CN401", "warning", "large objects present",
              "logical replication does not carry them: they are copied while the source is fenced"),
        Check("CN501", "warning", "wal_level below logical",
              "ALTER SYSTEM SET wal_level = logical and restart the source (needed for logical strategy)"),
        Check("CN502", "warning", "too few free replication slots",
              "raise max_replication_slots on the source (restart) to cover one slot per logical app"),
        Check("CN503", "warning", "too few free WAL senders",
              "raise max_wal_senders on the source (restart) to cover one sender per streaming app"),
        Check("CN504", "warning", "source is a standby",
              "inventory a primary; logical replication and fencing need one"),
        Check("CN601", "warning", "md5 password hash",
              "reset the password under scram-sha-256 (CNPG's default pg_hba rule rejects md5 hashes)"),
        Check("CN602", "info", "login role without password",
              "set a password or provide a passwordSecret before the app switches"),
        Check("CN603", "warning", "superuser role used by an app",
              "CNPG strips SUPERUSER from managed roles: grant the privileges the app really needs"),
        Check("CN701", "warning", "objects owned by a superuser",
              "they stay owned by the target's superuser; ALTER … OWNER TO the app role if the app must manage them"),
        Check("CN801", "warning", "cross-database reference",
              "after the split each app lives in its own cluster: repoint dblink/postgres_fdw at the new host"),
        Check("CN901", "info", "database name is not a valid cluster name",
              "nothing to do: a sanitized name is used; rename with --map DB=APP if you prefer another"),
        Check("CN902", "warning", "major version gap",
              "physical streaming needs the same major: use dump or logical, or --target-version equal to the source"),
        Check("CN903", "info", "database uses a libc locale",
              "the standard CNPG image (all locales) is used; minimal images only have C and ICU"),
        Check("CN904", "warning", "database encoding is not UTF8",
              "the target keeps the encoding; verify clients, or convert with dump/restore into UTF8"),
        Check("CN905", "info", "source major not supported by CloudNativePG",
              "the target runs a supported major; dump or logical migrate across majors"),
        Check("CN906", "warning", "no server binaries for the target major on this machine",
              "install them (apt-get install postgresql-N, or pip install pgserver for 16) before execute"),
    )
}  # fmt: skip


def finding(code: str, obj: str, message: str, *, database: str | None = None, fix: str | None = None) -> Finding:
    """A finding of a catalogued ``code``; ``fix`` overrides the catalogue's generic fix."""
    check = CATALOG[code]
    return Finding(
        code=code, severity=check.severity, object=obj, message=message, fix=fix or check.fix, database=database
    )


SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then by code and object: stable output for diffs."""
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.code, f.object))
