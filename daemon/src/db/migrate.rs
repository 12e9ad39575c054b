//! `botai db migrate`: applies migrations/ in order, once each, then the
//! repeatable ones (grants) every time.
//!
//! The files are compiled into the binary, so the command works from any
//! directory. Each versioned migration runs in its own transaction and is
//! recorded in `public.botai_migrations` with a checksum; an applied
//! migration whose file changed afterwards is an error, not a silent re-run.
//! When the server has a newer version of the extension than the database,
//! `ALTER EXTENSION botai UPDATE` runs its upgrade scripts, from any earlier
//! release, with the data in place.

use sha2::{Digest, Sha256};

use super::value::Cell;
use super::{Db, DbError, Result};

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_roles", include_str!("../../../migrations/0001_roles.sql")),
    ("0002_extension", include_str!("../../../migrations/0002_extension.sql")),
    ("0003_seed", include_str!("../../../migrations/0003_seed.sql")),
    ("0004_paper_exchange", include_str!("../../../migrations/0004_paper_exchange.sql")),
    ("0005_paper_query_limits", include_str!("../../../migrations/0005_paper_query_limits.sql")),
];

/// Idempotent scripts applied by every run, after the versioned ones.
const REPEATABLE: &[(&str, &str)] = &[("grants", include_str!("../../../migrations/repeatable/grants.sql"))];

/// Serialises concurrent `botai db migrate` runs.
const MIGRATE_LOCK: i64 = 0x626f_7461_6d69_6772;

pub async fn run(db: &Db) -> Result<Vec<&'static str>> {
    let c = db.client();
    let err = |context| move |e| DbError::from_pg(context, e);
    let superuser: bool = c
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(err("migrate"))?
        .col(0, "migrate")?;
    if !superuser {
        return Err(DbError::Sql {
            context: "migrate",
            code: "42501".into(),
            message: "botai db migrate needs a superuser connection (CREATE EXTENSION botai is not trusted); \
                      run `make migrate`, or set PGUSER/PGHOST to a superuser"
                .into(),
        });
    }
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK]).await.map_err(err("migrate lock"))?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.botai_migrations (
             version    text PRIMARY KEY,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(err("migrations table"))?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let checksum = format!("{:x}", Sha256::digest(sql.as_bytes()));
        let known = c
            .query_opt("SELECT checksum FROM public.botai_migrations WHERE version = $1", &[version])
            .await
            .map_err(err("migrations table"))?;
        match known {
            Some(row) if row.col::<String>(0, "migrate")? == checksum => continue,
            Some(_) => {
                return Err(DbError::Sql {
                    context: "migrate",
                    code: "55000".into(),
                    message: format!("migration {version} changed after it was applied; write a new migration instead"),
                })
            }
            None => {}
        }
        c.batch_execute("BEGIN").await.map_err(err("migrate"))?;
        let result = async {
            c.batch_execute(sql).await.map_err(err("migration"))?;
            c.execute("INSERT INTO public.botai_migrations (version, checksum) VALUES ($1, $2)", &[version, &checksum])
                .await
                .map_err(err("migrations table"))?;
            Ok::<_, DbError>(())
        }
        .await;
        match result {
            Ok(()) => {
                c.batch_execute("COMMIT").await.map_err(err("migrate"))?;
                applied.push(*version);
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]).await;
                return Err(e);
            }
        }
    }
    let result = async {
        extension_current(db).await?;
        for (name, sql) in REPEATABLE {
            c.batch_execute(sql).await.map_err(err("repeatable migration"))?;
            tracing::debug!(name, "repeatable migration applied");
        }
        Ok::<_, DbError>(())
    }
    .await;
    c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]).await.map_err(err("migrate unlock"))?;
    result?;
    Ok(applied)
}

/// Brings the extension to the version the server has. Released versions
/// are frozen (`pg_extension/sql/botai--X.sql`), and the server carries an
/// upgrade script from every earlier release, so an existing database is
/// upgraded in place with its data: no recreation is ever needed.
async fn extension_current(db: &Db) -> Result<()> {
    let c = db.client();
    let err = |context| move |e| DbError::from_pg(context, e);
    let row = c
        .query_one(
            "SELECT e.extversion, a.default_version FROM pg_extension e \
             JOIN pg_available_extensions a ON a.name = e.extname WHERE e.extname = 'botai'",
            &[],
        )
        .await
        .map_err(err("extension version"))?;
    let (installed, available): (String, String) = (row.col(0, "migrate")?, row.col(1, "migrate")?);
    if installed != available {
        c.batch_execute("ALTER EXTENSION botai UPDATE").await.map_err(err("ALTER EXTENSION botai UPDATE"))?;
        tracing::info!(from = %installed, to = %available, "extension botai updated");
    }
    Ok(())
}
