"""Catalog SQL shared by the inventory (and later by verification).

Every query runs with ``search_path = pg_catalog`` so ``::regclass``/``::regprocedure`` print
schema-qualified names, and skips system schemas and objects that belong to extensions.
"""

from __future__ import annotations

USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'"


def not_extension_member(catalog: str, oid_expr: str) -> str:
    """SQL predicate: the object is not a member of an extension (those travel with the extension)."""
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = "
        f"'{catalog}'::regclass AND dep.objid = {oid_expr} AND dep.deptype = 'e')"
    )


TABLES = f"""
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text, pg_get_userbyid(c.relowner),
       greatest(c.reltuples, 0)::bigint,
       CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) ELSE 0 END,
       CASE WHEN c.relkind = 'r' THEN pg_indexes_size(c.oid) ELSE 0 END,
       CASE WHEN c.reltoastrelid <> 0 THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END,
       CASE WHEN c.relkind = 'r' THEN pg_total_relation_size(c.oid) ELSE 0 END,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
       c.relreplident::text,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident),
       (SELECT p.inhparent::regclass::text FROM pg_inherits p WHERE p.inhrelid = c.oid LIMIT 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'm') AND {USER_NS}
   AND {not_extension_member('pg_class', 'c.oid')}
 ORDER BY 10 DESC, 1, 2
"""

MATVIEW_POPULATED = """
SELECT n.nspname, c.relname, c.relispopulated, pg_total_relation_size(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm'
"""

SEQUENCES = f"""
SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), format_type(s.seqtypid, NULL),
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid) END,
       has_sequence_privilege(c.oid, 'SELECT')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {USER_NS} AND {not_extension_member('pg_class', 'c.oid')}
 ORDER BY 1, 2
"""

EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 ORDER BY 1
"""

SCHEMAS = f"SELECT n.nspname FROM pg_namespace n WHERE {USER_NS} ORDER BY 1"

COUNTS = f"""
SELECT
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {USER_NS} AND {not_extension_member('pg_proc', 'p.oid')}),
  (SELECT count(*) FROM pg_trigger t WHERE NOT t.tgisinternal),
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'v' AND {USER_NS} AND {not_extension_member('pg_class', 'c.oid')}),
  (SELECT count(*) FROM pg_largeobject_metadata),
  pg_total_relation_size('pg_catalog.pg_largeobject')
"""

SUPERUSER_OWNED = f"""
WITH su AS (SELECT oid FROM pg_roles WHERE rolsuper),
objs AS (
  SELECT 'table' AS kind, c.oid::regclass::text AS name, c.relowner AS owner, 'pg_class'::regclass AS cls, c.oid
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_NS}
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, p.proowner, 'pg_proc'::regclass, p.oid
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_NS}
  UNION ALL
  SELECT 'schema', quote_ident(n.nspname), n.nspowner, 'pg_namespace'::regclass, n.oid
    FROM pg_namespace n WHERE {USER_NS} AND n.nspname <> 'public'
  UNION ALL
  SELECT 'type', t.oid::regtype::text, t.typowner, 'pg_type'::regclass, t.oid
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE {USER_NS} AND (t.typtype IN ('e', 'd', 'r')
         OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
)
SELECT kind, name FROM objs o
 WHERE o.owner IN (SELECT oid FROM su)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = o.cls AND d.objid = o.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""

# Roles this database needs, with why: owners, grantees (tables, columns, schemas, functions, types,
# large objects, foreign servers), default privileges, user mappings, publications.
ROLE_NEEDS = f"""
WITH needs(role_oid, why) AS (
  SELECT c.relowner, 'owns objects' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE {USER_NS} AND {not_extension_member('pg_class', 'c.oid')}
  UNION ALL SELECT p.proowner, 'owns objects' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE {USER_NS} AND {not_extension_member('pg_proc', 'p.oid')}
  UNION ALL SELECT n.nspowner, 'owns a schema' FROM pg_namespace n WHERE {USER_NS}
  UNION ALL SELECT t.typowner, 'owns objects' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE {USER_NS} AND {not_extension_member('pg_type', 't.oid')}
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         aclexplode(c.relacl) a WHERE {USER_NS}
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(att.attacl) a WHERE {USER_NS}
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_namespace n, aclexplode(n.nspacl) a WHERE {USER_NS}
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
         aclexplode(p.proacl) a WHERE {USER_NS}
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace,
         aclexplode(t.typacl) a WHERE {USER_NS}
  UNION ALL SELECT l.lomowner, 'owns large objects' FROM pg_largeobject_metadata l
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_largeobject_metadata l, aclexplode(l.lomacl) a
  UNION ALL SELECT s.srvowner, 'owns a foreign server' FROM pg_foreign_server s
  UNION ALL SELECT a.grantee, 'granted privileges' FROM pg_foreign_server s, aclexplode(s.srvacl) a
  UNION ALL SELECT um.umuser, 'has a user mapping' FROM pg_user_mapping um
  UNION ALL SELECT d.defaclrole, 'default privileges' FROM pg_default_acl d
  UNION ALL SELECT a.grantee, 'default privileges' FROM pg_default_acl d, aclexplode(d.defaclacl) a
  UNION ALL SELECT p.pubowner, 'owns a publication' FROM pg_publication p
)
SELECT r.rolname, array_agg(DISTINCT nd.why ORDER BY nd.why)
  FROM needs nd JOIN pg_roles r ON r.oid = nd.role_oid
 WHERE nd.role_oid <> 0
 GROUP BY r.rolname ORDER BY 1
"""

FOREIGN_SERVERS = """
SELECT s.srvname, w.fdwname,
       coalesce((SELECT string_agg(o, ' ' ORDER BY o) FROM unnest(s.srvoptions) o
                  WHERE split_part(o, '=', 1) IN ('host', 'hostaddr', 'port', 'dbname')), '')
  FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 ORDER BY 1
"""

DBLINK_CALLERS = f"""
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {USER_NS} AND {not_extension_member('pg_proc', 'p.oid')} AND p.prosrc ~* 'dblink'
 ORDER BY 1
"""

# Catalog digest per category: DDL only (no data, no statistics), so a busy database keeps its digest.
DIGEST = f"""
WITH parts(category, item) AS (
  SELECT 'relations', format('%s %s %s %s', c.oid::regclass, c.relkind, c.relpersistence,
                             pg_get_userbyid(c.relowner))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE {USER_NS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
  UNION ALL
  SELECT 'columns', format('%s.%I %s %s %s', a.attrelid::regclass, a.attname,
                           format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped AND {USER_NS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
  UNION ALL
  SELECT 'constraints', format('%s %I %s', co.conrelid::regclass, co.conname, pg_get_constraintdef(co.oid))
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE {USER_NS}
  UNION ALL
  SELECT 'indexes', pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE {USER_NS}
  UNION ALL
  SELECT 'functions', format('%s %s', p.oid::regprocedure, md5(coalesce(p.prosrc, '')))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE {USER_NS} AND {not_extension_member('pg_proc', 'p.oid')}
  UNION ALL
  SELECT 'triggers', pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'types', format('%s %s', t.oid::regtype, t.typtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE {USER_NS} AND t.typtype IN ('e', 'd', 'r', 'c') AND {not_extension_member('pg_type', 't.oid')}
  UNION ALL
  SELECT 'extensions', format('%s %s', e.extname, e.extversion) FROM pg_extension e
)
SELECT category, count(*), md5(string_agg(item, E'\\n' ORDER BY item COLLATE "C"))
  FROM parts GROUP BY category ORDER BY 1
"""

DIGEST_CATEGORIES = (
    "relations", "columns", "constraints", "indexes", "functions", "triggers", "types", "extensions",
)  # fmt: skip

# Relations taking 95 % of block accesses since the last stats reset (cumulative form).
WORKING_SET = """
WITH acc AS (
  SELECT s.relid, pg_total_relation_size(s.relid) AS bytes,
         coalesce(s.heap_blks_hit, 0) + coalesce(s.heap_blks_read, 0)
       + coalesce(s.idx_blks_hit, 0) + coalesce(s.idx_blks_read, 0)
       + coalesce(s.toast_blks_hit, 0) + coalesce(s.toast_blks_read, 0) AS blk
    FROM pg_statio_user_tables s),
ranked AS (
  SELECT bytes, blk, sum(blk) OVER (ORDER BY blk DESC, relid ROWS UNBOUNDED PRECEDING) AS cum,
         sum(blk) OVER () AS tot
    FROM acc)
SELECT coalesce(sum(bytes) FILTER (WHERE blk > 0 AND cum - blk < 0.95 * tot), 0)::bigint,
       coalesce(max(tot), 0)::bigint
  FROM ranked
"""
