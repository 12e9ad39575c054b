//! The database: connections, the pool, migrations, and (in `functions`) the
//! one typed wrapper per SQL function of the botai extension, so SQL text
//! does not spread across the code.

pub mod batch;
pub mod dashboard;
pub mod functions;
pub mod migrate;
pub mod outbox;
pub mod report;
pub mod settings;
pub mod value;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

use crate::env::pg::PgSettings;

pub use batch::Batcher;
pub use functions::{
    BalanceCalls, Claim, ClaimedOrder, MonitorCalls, OrderCalls, OrderFilter, OrderRecord, OrderReservation,
    PositionRecord, RateLimitCalls, Reserved, RiskCalls, Settlement, SignalCalls, SignalVerdict, Sql, TradingState,
    WorkerCalls,
};
pub use value::{Amount, Cell, Json};

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: tokio_postgres::Error },
    #[error("{context}: {message} (SQLSTATE {code})")]
    Sql { context: &'static str, code: String, message: String },
    #[error("{context}: {source}")]
    Other { context: &'static str, source: tokio_postgres::Error },
    #[error("database pool: {0}")]
    Pool(String),
    /// A value the database holds that this type cannot read (out of
    /// range, NULL where none was expected): reported, never a panic.
    #[error("{context}: column {column} holds a value botai cannot read: {message}")]
    Decode { context: &'static str, column: String, message: String },
}

impl DbError {
    pub fn from_pg(context: &'static str, e: tokio_postgres::Error) -> DbError {
        match e.as_db_error() {
            Some(db) => DbError::Sql { context, code: db.code().code().to_owned(), message: db.message().to_owned() },
            None => DbError::Other { context, source: e },
        }
    }

    /// The SQLSTATE when the server raised the error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Sql { code, .. } => Some(code),
            _ => None,
        }
    }

    /// An operator's command refused for its role (42501) says how to get
    /// the right one; any other error as it is.
    pub fn for_operator(self) -> anyhow::Error {
        if self.sqlstate() == Some("42501") {
            anyhow::anyhow!(
                "{self}\n  this is the operator's: make writes the botai_operator login to {} (OPERATOR_PGUSER, \
                 OPERATOR_PGPASSWORD), or connect (PGUSER) as a member of botai_operator",
                crate::env::OPERATOR_ENV
            )
        } else {
            self.into()
        }
    }

    /// The connection is gone (closed, reset): the caller must reconnect and,
    /// if it held a worker slot on it, has lost that slot.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Other { source, .. } => source.is_closed() || source.as_db_error().is_none(),
            DbError::Connect { .. } | DbError::Pool(_) => true,
            DbError::Sql { code, .. } => code.starts_with("08") || code == "57P01",
            DbError::Decode { .. } => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, DbError>;

/// One dedicated connection. Worker registrations hold session locks, so a
/// `Db` that registers a worker stays dedicated to it; its notifications
/// (LISTEN) arrive on `notifications`.
pub struct Db {
    client: Client,
    /// Statements prepared on this connection, by SQL text.
    statements: std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
    notifications: Option<mpsc::UnboundedReceiver<Notification>>,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Db {
    pub async fn connect(pg: &PgSettings, application_name: &str) -> Result<Db> {
        let (client, mut connection) = pg
            .to_config(application_name)
            .connect(NoTls)
            .await
            .map_err(|source| DbError::Connect { target: pg.describe(), source })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        let _ = tx.send(n);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "database connection lost");
                        break;
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        Ok(Db { client, statements: Default::default(), notifications: Some(rx), closed })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Takes the stream of notifications of this connection (once).
    pub fn take_notifications(&mut self) -> mpsc::UnboundedReceiver<Notification> {
        self.notifications.take().expect("notifications taken once")
    }

    /// Resolves when the connection closes, for whatever reason.
    pub async fn closed(&self) {
        let mut c = self.closed.clone();
        let _ = c.wait_for(|closed| *closed).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow() || self.client.is_closed()
    }

    pub async fn listen(&self, channel: &str) -> Result<()> {
        self.client.batch_execute(&format!("LISTEN {channel}")).await.map_err(|e| DbError::from_pg("LISTEN", e))
    }

    pub async fn server_version(&self) -> Result<String> {
        let row = self
            .client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| DbError::from_pg("server_version", e))?;
        row.col(0, "server_version")
    }

    /// The installed version of the botai extension, if any.
    pub async fn extension_version(&self) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt("SELECT extversion FROM pg_extension WHERE extname = 'botai'", &[])
            .await
            .map_err(|e| DbError::from_pg("extension_version", e))?;
        row.map(|r| r.col(0, "extension_version")).transpose()
    }
}

impl Sql for Db {
    fn raw(&self) -> &Client {
        &self.client
    }

    async fn statement(&self, sql: &str) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(st) = self.statements.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).await?;
        self.statements.lock().unwrap_or_else(|p| p.into_inner()).insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

impl std::ops::Deref for Db {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A pool of connections for stateless calls (never for worker slots).
pub fn pool(pg: &PgSettings, application_name: &str, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        pg.to_config(application_name),
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// A connection from the pool, or the error that says why not.
pub async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get().await.map_err(|e| DbError::Pool(e.to_string()))
}
