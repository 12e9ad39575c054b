//! The typed client of the botai extension: every SQL function the daemon
//! calls has exactly one wrapper here, so SQL text does not spread across the
//! code.

pub mod migrate;

use thiserror::Error;
use tokio_postgres::{Client, NoTls};

use crate::config::PgSettings;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: tokio_postgres::Error },
    #[error("{context}: {message} (SQLSTATE {code})")]
    Sql { context: &'static str, code: String, message: String },
    #[error("{context}: {source}")]
    Other { context: &'static str, source: tokio_postgres::Error },
}

impl DbError {
    pub fn from_pg(context: &'static str, e: tokio_postgres::Error) -> DbError {
        match e.as_db_error() {
            Some(db) => DbError::Sql { context, code: db.code().code().to_owned(), message: db.message().to_owned() },
            None => DbError::Other { context, source: e },
        }
    }
}

pub type Result<T> = std::result::Result<T, DbError>;

/// One connection. Worker registrations hold session locks, so a `Db` that
/// registers a worker must stay dedicated to it.
pub struct Db {
    client: Client,
}

impl Db {
    pub async fn connect(pg: &PgSettings, application_name: &str) -> Result<Db> {
        let (client, connection) = pg
            .to_config(application_name)
            .connect(NoTls)
            .await
            .map_err(|source| DbError::Connect { target: pg.describe(), source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "database connection closed");
            }
        });
        Ok(Db { client })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn server_version(&self) -> Result<String> {
        let row = self
            .client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| DbError::from_pg("server_version", e))?;
        Ok(row.get(0))
    }

    /// The installed version of the botai extension, if any.
    pub async fn extension_version(&self) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt("SELECT extversion FROM pg_extension WHERE extname = 'botai'", &[])
            .await
            .map_err(|e| DbError::from_pg("extension_version", e))?;
        Ok(row.map(|r| r.get(0)))
    }
}
