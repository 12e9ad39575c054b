//! Releases and upgrades: a database made by the frozen 0.1.0 release
//! (`pg_extension/sql/botai--0.1.0.sql`), filled with data in every state,
//! is upgraded in place by `ALTER EXTENSION botai UPDATE`; its data and the
//! guarantees survive, and its catalog then equals a fresh install of the
//! current version. Before the upgrade, the current library refuses to run
//! against the old SQL objects with one line that says what to do.

use std::collections::BTreeSet;

use tokio_postgres::Client;

mod first_release;
mod previous_releases;

/// The first release; its SQL is frozen in pg_extension/sql/.
const FIRST_RELEASE: &str = "0.1.0";

/// Every object of the extension, described by the server itself, one line
/// (or block) per object, so two databases can be compared as sets:
/// functions with their definition (language, symbol, settings, security),
/// tables with columns, defaults, constraints, indexes, triggers and storage
/// options, views with their query, comments and privileges of all of them.
const CATALOG: &str = r#"
WITH ext AS (SELECT oid, extconfig FROM pg_extension WHERE extname = 'botai'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT 'function ' || p.oid::regprocedure::text || E'\n' || pg_get_functiondef(p.oid)
       || E'\nacl ' || coalesce(p.proacl::text, '-') || E'\ncomment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation ' || c.oid::regclass::text || ' kind ' || c.relkind::text
       || ' options ' || coalesce(c.reloptions::text, '-') || ' acl ' || coalesce(c.relacl::text, '-')
       || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
       || CASE WHEN c.relkind = 'v' THEN E'\n' || pg_get_viewdef(c.oid) ELSE '' END
FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT 'column ' || a.attrelid::regclass::text || ' #' || row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)
       || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
       || ' comment ' || coalesce(col_description(a.attrelid, a.attnum), '-')
FROM pg_attribute a
JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = a.attrelid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || con.conrelid::regclass::text || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = con.conrelid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = t.tgrelid
WHERE NOT t.tgisinternal
UNION ALL
SELECT 'schema ' || n.nspname || ' acl ' || coalesce(n.nspacl::text, '-')
       || ' comment ' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
UNION ALL
SELECT 'member of another kind ' || m.classid::regclass::text || ' ' || pg_describe_object(m.classid, m.objid, 0)
FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_namespace'::regclass)
UNION ALL
SELECT 'dumped configuration ' || coalesce((SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
                                            FROM unnest(ext.extconfig) c), '-')
FROM ext
"#;

async fn catalog(db: &Client) -> BTreeSet<String> {
    db.query(CATALOG, &[]).await.expect("describe the catalog").iter().map(|r| r.get::<_, String>(0)).collect()
}

async fn version(db: &Client) -> String {
    db.query_one("SELECT extversion FROM pg_extension WHERE extname = 'botai'", &[]).await.unwrap().get(0)
}

async fn library_version(db: &Client) -> String {
    db.query_one("SELECT default_version FROM pg_available_extensions WHERE name = 'botai'", &[]).await.unwrap().get(0)
}
