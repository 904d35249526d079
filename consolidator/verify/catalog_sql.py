"""Catalog queries for the schema and globals comparison (verification.md §6).

Every query runs with ``search_path = pg_catalog`` so ``::regclass``/``::regprocedure`` print
schema-qualified names on both sides, and skips system schemas and extension members (those travel
with the extension, whose version is compared). Role names come back in their own columns so the
caller can map source roles to target roles before comparing.
"""

from __future__ import annotations

from psycopg import sql

from consolidator.inventory.sql import USER_NS, not_extension_member

_FRAGMENTS = {
    "ns": sql.SQL(USER_NS),
    "nx_class": sql.SQL(not_extension_member("pg_class", "c.oid")),
    "nx_proc": sql.SQL(not_extension_member("pg_proc", "p.oid")),
    "nx_type": sql.SQL(not_extension_member("pg_type", "t.oid")),
}
# Standalone types: enums, domains, ranges, base types and composite types created by CREATE TYPE.
_TYPES_FROM = sql.SQL("""
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {ns} AND {nx_type}
   AND ((t.typtype IN ('e', 'd', 'r', 'b') AND t.typcategory <> 'A')
        OR (t.typtype = 'c' AND (SELECT k.relkind FROM pg_class k WHERE k.oid = t.typrelid) = 'c'))
""").format(**_FRAGMENTS)


def _q(text: str) -> sql.Composed:
    """Fill the shared fragments in: {ns} (user schemas of ``n``), {nx_*} (not extension members), {types}."""
    return sql.SQL(text).format(**_FRAGMENTS, types=_TYPES_FROM)

SCHEMAS = _q("SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE {ns}")

RELATIONS = _q("""
SELECT c.oid::regclass::text, c.relkind::text, c.relpersistence::text, coalesce(pg_get_partkeydef(c.oid), ''),
       coalesce(pg_get_expr(c.relpartbound, c.oid), ''), c.relrowsecurity, c.relforcerowsecurity,
       c.relreplident::text, coalesce(array_to_string(c.reloptions, ','), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {ns} AND {nx_class}
""")

# Columns by name, never by attnum (dump/restore renumbers after dropped columns).
_COLUMNS = """
SELECT c.oid::regclass::text || '.' || quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, {generated},
       CASE WHEN a.attcollation <> t.typcollation THEN
            (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co
               JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) ELSE '' END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {ns} AND {nx_class}
"""


def columns(major: int) -> sql.Composed:
    """Column query for this major (generated columns exist from PostgreSQL 12)."""
    return _q(_COLUMNS.replace("{generated}", "a.attgenerated::text" if major >= 12 else "''"))


# NOT NULL is compared with the columns (PostgreSQL 18 also lists it here as contype 'n').
CONSTRAINTS = _q("""
SELECT CASE WHEN co.conrelid <> 0 THEN co.conrelid::regclass::text ELSE co.contypid::regtype::text END
       || ' ' || quote_ident(co.conname), pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
 WHERE {ns} AND co.contype <> 'n'
   AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.deptype = 'e' AND x.objid IN (co.conrelid, co.contypid)
                      AND x.classid IN ('pg_class'::regclass, 'pg_type'::regclass))
""")

INDEXES = _q("""
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisreplident,
       i.indisclustered
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {ns} AND {nx_class}
""")

# Definition text plus the columns it reads (pg_depend of the rewrite rule): deparsing changes between
# majors (16 drops needless "orders." qualifiers), so the text is compared without qualifiers and the
# dependencies say which relation each column comes from.
VIEWS = _q("""
SELECT c.oid::regclass::text, pg_get_viewdef(c.oid),
       array(SELECT DISTINCT d.refobjid::regclass::text || coalesce('.' || quote_ident(a.attname), '')
               FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
               LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE r.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND {ns} AND {nx_class}
""")

FUNCTIONS = _q("""
SELECT p.oid::regprocedure::text, p.prokind::text,
       CASE WHEN p.prokind <> 'a' THEN md5(pg_get_functiondef(p.oid))
            ELSE (SELECT md5(concat_ws(' ', a.aggkind, a.aggnumdirectargs, a.aggtransfn::text, a.aggfinalfn::text,
                                       a.aggcombinefn::text, format_type(a.aggtranstype, NULL), a.agginitval,
                                       a.aggsortop::regoperator::text))
                    FROM pg_aggregate a WHERE a.aggfnoid = p.oid) END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {ns} AND {nx_proc}
""")

TRIGGERS = _q("""
SELECT 'trigger ' || quote_ident(tg.tgname) || ' on ' || c.oid::regclass::text,
       pg_get_triggerdef(tg.oid) || ' [' || tg.tgenabled::text || ']'
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT tg.tgisinternal AND {ns} AND {nx_class}
UNION ALL
SELECT 'event trigger ' || quote_ident(e.evtname),
       concat_ws(' ', e.evtevent, e.evtfoid::regprocedure::text, array_to_string(e.evttags, ','), e.evtenabled::text)
  FROM pg_event_trigger e
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_event_trigger'::regclass AND x.objid = e.oid
                      AND x.deptype = 'e')
UNION ALL
SELECT 'rule ' || quote_ident(r.rulename) || ' on ' || c.oid::regclass::text, md5(pg_get_ruledef(r.oid))
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {ns} AND {nx_class}
UNION ALL
SELECT 'policy ' || quote_ident(po.polname) || ' on ' || c.oid::regclass::text,
       concat_ws(' ', po.polcmd::text, po.polpermissive, pg_get_expr(po.polqual, po.polrelid),
                 pg_get_expr(po.polwithcheck, po.polrelid),
                 (SELECT string_agg(CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, ','
                                    ORDER BY CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE g.rolname END)
                    FROM unnest(po.polroles) r(oid) LEFT JOIN pg_roles g ON g.oid = r.oid))
  FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {ns}
""")

TYPES = _q(
    """
SELECT t.oid::regtype::text, t.typtype::text || ' ' || CASE t.typtype
         WHEN 'e' THEN (SELECT coalesce(string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder), '')
                          FROM pg_enum e WHERE e.enumtypid = t.oid)
         WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
                       || coalesce(' DEFAULT ' || t.typdefault, '')
         WHEN 'r' THEN (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid)
         ELSE '' END{types}"""
)

SEQUENCES = _q("""
SELECT c.oid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle,
       coalesce((SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname)
                        || CASE d.deptype WHEN 'i' THEN ' (identity)' ELSE '' END
                   FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                    AND d.refclassid = 'pg_class'::regclass LIMIT 1), '')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {ns} AND {nx_class}
""")

# A NULL last value is "never used" only when we may read it: the privilege comes back too.
SEQUENCE_VALUES = _q("""
SELECT c.oid::regclass::text, s.seqincrement, has_sequence_privilege(c.oid, 'SELECT,USAGE'),
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(c.oid) END
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {ns} AND {nx_class}
""")

EXTENSIONS = _q("""
SELECT e.extname, e.extversion || ' in schema ' || quote_ident(n.nspname)
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
""")

# (object, owner): owners are compared apart from definitions since some strategies change them all.
OWNERS = _q(
    """
SELECT 'relation ' || c.oid::regclass::text, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {ns} AND {nx_class}
UNION ALL
SELECT 'schema ' || quote_ident(n.nspname), pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE {ns}
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {ns} AND {nx_proc}
UNION ALL
SELECT 'database', pg_get_userbyid(d.datdba) FROM pg_database d WHERE d.datname = current_database()
UNION ALL
SELECT 'event trigger ' || quote_ident(e.evtname), pg_get_userbyid(e.evtowner) FROM pg_event_trigger e
UNION ALL
SELECT 'type ' || t.oid::regtype::text, pg_get_userbyid(t.typowner){types}"""
)

# A recorded database ACL (aclitem[] text, NULL = defaults) expanded like the live one below.
DATABASE_ACL_OF = sql.SQL(
    """
SELECT coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM aclexplode(coalesce(%s::aclitem[],
                           acldefault('d', (SELECT datdba FROM pg_database WHERE datname = current_database())))) a
  LEFT JOIN pg_roles g ON g.oid = a.grantee
"""
)

# (object, grantee, privilege, grantable). A NULL ACL means the owner's defaults: expanded with
# acldefault() so "never granted" and "granted exactly the defaults" compare equal.
ACL = _q(
    """
SELECT o.obj, coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM (
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'table ' END || c.oid::regclass::text AS obj,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {ns} AND {nx_class}
    UNION ALL
    SELECT 'column ' || c.oid::regclass::text || '.' || quote_ident(att.attname), att.attacl
      FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped AND {ns} AND {nx_class}
    UNION ALL
    SELECT 'schema ' || quote_ident(n.nspname), coalesce(n.nspacl, acldefault('n', n.nspowner))
      FROM pg_namespace n WHERE {ns}
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text, coalesce(p.proacl, acldefault('f', p.proowner))
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {ns} AND {nx_proc}
    UNION ALL
    SELECT 'database', coalesce(d.datacl, acldefault('d', d.datdba))
      FROM pg_database d WHERE d.datname = current_database()
    UNION ALL
    SELECT 'large object ' || l.oid::text, l.lomacl FROM pg_largeobject_metadata l WHERE l.lomacl IS NOT NULL
    UNION ALL
    SELECT 'type ' || t.oid::regtype::text, coalesce(t.typacl, acldefault('T', t.typowner)){types}
  ) o CROSS JOIN LATERAL aclexplode(o.acl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
"""
)

# (for role, in schema or '', object type, grantee, privilege, grantable)
DEFAULT_ACL = sql.SQL("""
SELECT pg_get_userbyid(d.defaclrole), coalesce(quote_ident(n.nspname), ''), d.defaclobjtype::text,
       coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
 CROSS JOIN LATERAL aclexplode(d.defaclacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
""")

ROLES = sql.SQL("""
SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
       rolconnlimit, rolvaliduntil::text
  FROM pg_roles WHERE rolname = ANY (%s::text[])
""")

MEMBERSHIPS = sql.SQL("""
SELECT r.rolname, m.rolname, bool_or(am.admin_option)
  FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
 WHERE r.rolname = ANY (%s::text[]) OR m.rolname = ANY (%s::text[])
 GROUP BY 1, 2
""")

CAN_READ_AUTHID = sql.SQL("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")
PASSWORD_TYPES = sql.SQL("""
SELECT rolname, CASE WHEN rolpassword IS NULL THEN 'none' WHEN rolpassword LIKE 'SCRAM-SHA-256$%%' THEN 'scram'
                     WHEN rolpassword LIKE 'md5%%' THEN 'md5' ELSE 'plain' END
  FROM pg_authid WHERE rolname = ANY (%s::text[])
""")

# (database-wide or role-wide, role or '', "name=value") for this database and for the given roles.
SETTINGS = sql.SQL("""
SELECT s.setdatabase <> 0, coalesce(r.rolname, ''), cfg
  FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole CROSS JOIN LATERAL unnest(s.setconfig) cfg
 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    OR (s.setdatabase = 0 AND r.rolname = ANY (%s::text[]))
""")

# Version-proof: to_jsonb keeps whichever locale columns this major has (daticulocale, datlocale…).
DATABASE = sql.SQL("""
SELECT pg_encoding_to_char(d.encoding), to_jsonb(d) FROM pg_database d WHERE d.datname = current_database()
""")

LARGE_OBJECT_SUMMARY = sql.SQL("""
SELECT count(*), coalesce(sum(hashtextextended(l.oid::text || ':' || md5(lo_get(l.oid)), 0)), 0)::text
  FROM pg_largeobject_metadata l
""")
LARGE_OBJECT_COUNT = sql.SQL("SELECT count(*) FROM pg_largeobject_metadata")
LARGE_OBJECT_OWNERS = sql.SQL(
    "SELECT pg_get_userbyid(l.lomowner), count(*) FROM pg_largeobject_metadata l GROUP BY 1"
)
LARGE_OBJECTS = sql.SQL("SELECT l.oid::text, md5(lo_get(l.oid)) FROM pg_largeobject_metadata l")

# Materialized views whose query calls non-immutable functions (now(), random(), CURRENT_TIMESTAMP…):
# their contents depend on when they were refreshed. Read from the rewrite rule's node tree because
# dependencies on built-in functions are not recorded in pg_depend.
MATVIEWS_VOLATILE = _q(r"""
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_rewrite r ON r.ev_class = c.oid
 WHERE c.relkind = 'm' AND {ns}
   AND (r.ev_action::text ~ '\{{SQLVALUEFUNCTION'
        OR EXISTS (SELECT 1 FROM regexp_matches(r.ev_action::text, ':(?:funcid|opfuncid|aggfnoid) (\d+)', 'g') f(m)
                     JOIN pg_proc p ON p.oid = f.m[1]::oid WHERE p.provolatile <> 'i'))
""")
