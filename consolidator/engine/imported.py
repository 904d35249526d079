"""The ``import`` strategy: CloudNativePG's own ``bootstrap.initdb.import`` (cnpg.md §3.2), offline.

Only for ``cnpg`` targets: the operator's import Job dumps the source and restores into the new
Cluster. Steps (``plan/steps.py``): fence (shared; the import Job logs in as the externalClusters
superuser, whom the fence does not lock out, and writes after its dump starts would be lost),
provision (apply the Cluster, wait until it is healthy, i.e. the import Job finished; a failed Job
surfaces with the operator's message and a ``kubectl logs`` hint), roles, privileges, sequences,
verify and cutover (shared).

What the fix-ups add, and why these:

* ``roles`` is the shared step, run with ``force`` (the imported databases hold tables by design):
  the app's roles with their attributes, memberships, settings and the source's password hashes,
  the databases' owner, settings, per-role settings, connection limit, ACL and comment. It repairs
  what both import types drop: microservice creates no role but the owner and keeps no database
  setting; monolith skips REPLICATION, ``ALTER ROLE … SET`` and comments.
* ``privileges`` gives objects inside each database back their source owners and grants, which a
  microservice import loses (``pg_restore --no-owner --no-privileges``): owners of schemas, relations,
  routines and types are compared with the source's and altered where they differ, then the ``ACL``
  and ``DEFAULT ACL`` entries of a schema-only dump of the source are restored. On a monolith import
  both already match and the step changes nothing.
* ``sequences`` (shared) sets every sequence from the fenced source; the import copied them already,
  so this only guards against a writer that slipped in before the fence.

What stays the operator's: extensions (the target image must have them) and the data itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from consolidator.engine.run import AppRun
from consolidator.engine.strategy import Strategy
from consolidator.errors import ConfigError, StepFailed
from consolidator.events import emit
from consolidator.pg.binaries import find_client
from consolidator.pg.connect import connect, with_database
from consolidator.pg.tools import run_tool

PROVIDERS = ("cnpg",)
ACL_ENTRY_TYPES = ("ACL", "DEFAULT ACL")
# Objects inside a database whose owner the import may have changed: (kind keyword, identity, owner).
# Identities are printed under an empty search_path, so always schema-qualified and quoted by the server.
# Members of extensions and sequences owned by a column (they follow their table) are left out.
OWNERS_SQL = """
WITH ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e')
SELECT 'SCHEMA', quote_ident(n.nspname), pg_get_userbyid(n.nspowner)
  FROM pg_namespace n
 WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = n.oid)
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
       c.oid::regclass::text, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass)
UNION ALL
SELECT 'ROUTINE', p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, format_type(t.oid, NULL), pg_get_userbyid(t.typowner)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('d', 'e', 'r', 'm')
        OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
   AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
"""


def read_owners(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], str]:
    """(kind, identity) → owner of every user object of the connected database."""
    conn.execute("SET search_path = ''")
    rows = conn.execute(OWNERS_SQL).fetchall()
    conn.execute("RESET search_path")
    return {(str(kind), str(ident)): str(owner) for kind, ident, owner in rows}


Owners = dict[tuple[str, str], str]


def align_owners(source: Owners, target: Owners, owner_map: dict[str, str],
                 target_roles: set[str]) -> tuple[list[sql.Composable], list[str]]:  # fmt: skip
    """ALTER … OWNER TO statements that give target objects their source owners, plus warnings."""
    statements: list[sql.Composable] = []
    warnings: list[str] = []
    for (kind, ident), owner in sorted(source.items()):
        have = target.get((kind, ident))
        if have is None:
            continue  # not imported (verify reports it)
        want = owner_map.get(owner, owner)
        if want == have:
            continue
        if want not in target_roles:
            warnings.append(f"warning: {kind.lower()} {ident}: owner {want!r} does not exist on the target "
                            f"(kept {have!r}); add the role to the app's roles")  # fmt: skip
            continue
        # the identity is the server's own quoted rendering of a catalog object, never user input
        statements.append(sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(ident),
                                                                    sql.Identifier(want)))  # fmt: skip
    return statements, warnings


def acl_list(toc: str) -> str:
    """The lines of a ``pg_restore -l`` listing that restore privileges (``ACL``, ``DEFAULT ACL``) only."""
    keep = []
    for line in toc.splitlines():
        if not line or line.startswith(";"):
            continue
        fields = line.split(" ", 4)  # "12; 0 0 ACL public TABLE t owner" → id, catalog, oid, type…
        rest = fields[3:] if len(fields) > 3 else []
        text = " ".join(rest)
        if any(text.startswith(kind + " ") for kind in ACL_ENTRY_TYPES):
            keep.append(line)
    return "\n".join(keep) + ("\n" if keep else "")


class ImportStrategy(Strategy):
    name = "import"

    def run_step(self, run: AppRun, step: str) -> None:
        if run.provider.name not in PROVIDERS:
            raise ConfigError(
                f"app {run.app.name}: the import strategy runs CloudNativePG's bootstrap.initdb.import and needs a "
                f"cnpg target, not {run.provider.name}",
                hint="set the app's strategy to dump or logical in plan.yaml (or plan with --target cnpg)",
            )
        super().run_step(run, step)

    def step_provision(self, run: AppRun) -> None:
        """Apply the Cluster (the operator imports while bootstrapping) and wait until it is healthy."""
        emit(run.sink, "log", f"{run.app.name}: CloudNativePG imports {', '.join(d.source for d in run.app.databases)} "
             f"into {run.app.cluster_name} (bootstrap.initdb.import); waiting for the Cluster")  # fmt: skip
        super().step_provision(run)
        with connect(run.target.conninfo, dbname="postgres") as conn:
            present = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        missing = [d.target for d in run.app.databases if d.target not in present]
        if missing:
            raise StepFailed(f"{run.app.cluster_name} is ready but database {missing[0]!r} was not imported",
                             hint=f"read the import job's log (kubectl -n {run.app.namespace} logs job/"
                             f"{run.app.cluster_name}-1-import); teardown and execute --restart")  # fmt: skip
        emit(run.sink, "log", f"{run.app.name}: import finished into {', '.join(d.target for d in run.app.databases)}")

    def step_roles(self, run: AppRun) -> None:
        """The shared roles step; the imported databases hold tables by design (hence ``force``)."""
        forced = dataclasses.replace(run, options=dataclasses.replace(run.options, force=True))
        super().step_roles(forced)
        run.target = forced.target

    def step_privileges(self, run: AppRun) -> None:
        """Owners first (grants are relative to them), then the source's ACL and DEFAULT ACL entries."""
        from consolidator.engine.globals import owner_map_for, superuser_name, superusers

        owner_map = owner_map_for(run.app, superusers(run.source_dsn), superuser_name(run.target.conninfo))
        binaries = find_client(run.target.major)
        for index, db in enumerate(run.app.databases):
            with connect(run.source_dsn, dbname=db.source) as src:
                source = read_owners(src)
            with connect(run.target.conninfo, dbname=db.target) as dst:
                target = read_owners(dst)
                roles = {r[0] for r in dst.execute("SELECT rolname FROM pg_roles")}
                statements, warnings = align_owners(source, target, owner_map, roles)
                with dst.transaction():
                    for stmt in statements:
                        dst.execute(stmt)
            for line in warnings:
                emit(run.sink, "log", f"{run.app.name}: {db.target}: {line}", level="warning")
            granted = self._restore_acls(run, binaries, db.source, db.target, run.work_dir / f"db{index}.acl")
            emit(run.sink, "log", f"{run.app.name}: {db.target}: {len(statements)} owners restored, {granted} "
                 "privilege entries applied from the source")  # fmt: skip

    def _restore_acls(self, run: AppRun, binaries: Any, source_db: str, target_db: str, work: Path) -> int:
        work.mkdir(parents=True, exist_ok=True)
        dump = work / "schema.dump"
        run_tool(binaries, "pg_dump", ["-Fc", "--schema-only", "--no-sync", "-f", str(dump), "-d",
                                       with_database(run.source_dsn, source_db)],
                 what=f"dumping the privileges of {source_db!r}")  # fmt: skip
        toc = run_tool(binaries, "pg_restore", ["-l", str(dump)], what=f"listing the dump of {source_db!r}")
        entries = acl_list(toc)
        if entries:
            listing = work / "acl.list"
            listing.write_text(entries, encoding="utf-8")
            run_tool(binaries, "pg_restore", ["--exit-on-error", "-L", str(listing), "-d",
                                              with_database(run.target.conninfo, target_db), str(dump)],
                     what=f"restoring the privileges of {target_db!r}")  # fmt: skip
        return entries.count("\n")
