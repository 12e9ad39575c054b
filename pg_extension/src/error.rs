//! The extension's errors, each carrying its SQLSTATE, so a caller can tell
//! "bad argument" from "not found" without parsing messages.

use botai_core::InputError;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BotaiError {
    /// 22023 invalid_parameter_value
    #[error("{0}")]
    Input(#[from] InputError),
    /// 22004 null_value_not_allowed
    #[error("{argument} must not be NULL")]
    Null { argument: &'static str },
    /// 22003 numeric_value_out_of_range
    #[error("{0}")]
    OutOfRange(String),
    /// P0002 no_data_found
    #[error("{0}")]
    NotFound(String),
    /// 42501 insufficient_privilege: the caller's role may not do this
    /// with these arguments (roles.rs).
    #[error("{0}")]
    Denied(String),
    /// 55006 object_in_use
    #[error("{0}")]
    InUse(String),
    /// 55000 object_not_in_prerequisite_state
    #[error("{0}")]
    WrongState(String),
    /// 53200 out_of_memory: a shared-memory table is full.
    #[error("{message}")]
    SharedMemoryFull { message: String, hint: String },
    /// 54000 program_limit_exceeded
    #[error("{message}")]
    Limit { message: String, hint: String },
    /// 55000: the database has the SQL objects of another release.
    #[error(
        "this database has the SQL objects of botai {installed}, the server runs the botai {library} library: \
         run ALTER EXTENSION botai UPDATE (botai db migrate does it)"
    )]
    StaleSql { installed: String, library: &'static str },
    /// 55000: the library was not preloaded.
    #[error("botai must be loaded at server start: add 'botai' to shared_preload_libraries and restart")]
    NotPreloaded,
    /// 25006 read_only_sql_transaction: the server is a standby.
    #[error(
        "this server ({server}) is a standby in recovery: botai changes nothing here, only on the primary \
         (clients connect with target_session_attrs=read-write to find it)"
    )]
    Standby { server: String },
    /// XX000: an SPI failure; a bug or a broken installation.
    #[error("internal SPI error: {0}")]
    Spi(#[from] pgrx::spi::SpiError),
}

pub type Result<T> = std::result::Result<T, BotaiError>;

/// The longest error message botai raises, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// `message`, cut at [`MAX_MESSAGE_CHARS`] characters (saying so).
pub fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push_str("… (message cut)");
    cut
}

impl BotaiError {
    pub fn invalid(argument: &str, message: impl Into<String>) -> Self {
        BotaiError::Input(InputError::invalid(argument, message))
    }

    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            BotaiError::Input(InputError::OutOfRange { .. }) => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            BotaiError::Input(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            BotaiError::Null { .. } => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            BotaiError::OutOfRange(_) => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            BotaiError::NotFound(_) => ERRCODE_NO_DATA_FOUND,
            BotaiError::InUse(_) => ERRCODE_OBJECT_IN_USE,
            BotaiError::Denied(_) => ERRCODE_INSUFFICIENT_PRIVILEGE,
            BotaiError::WrongState(_) | BotaiError::StaleSql { .. } | BotaiError::NotPreloaded => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            BotaiError::SharedMemoryFull { .. } => ERRCODE_OUT_OF_MEMORY,
            BotaiError::Limit { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            BotaiError::Standby { .. } => ERRCODE_READ_ONLY_SQL_TRANSACTION,
            BotaiError::Spi(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    /// Raises the error in PostgreSQL (ERROR level: the statement and its
    /// writes are rolled back). The message is cut at [`MAX_MESSAGE_CHARS`]:
    /// one that quotes a hostile argument must not write megabytes to the
    /// server log on every call.
    pub fn raise(self, function: &'static str) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), bounded(format!("{function}: {self}")), function);
        if let BotaiError::SharedMemoryFull { hint, .. } | BotaiError::Limit { hint, .. } = &self {
            report = report.set_hint(hint.clone());
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) does not return")
    }
}

/// `result.or_raise("botai_x")` unwraps or raises with the right SQLSTATE.
pub trait OrRaise<T> {
    fn or_raise(self, function: &'static str) -> T;
}

impl<T, E: Into<BotaiError>> OrRaise<T> for std::result::Result<T, E> {
    fn or_raise(self, function: &'static str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(function),
        }
    }
}

/// A required argument of a non-strict function.
pub fn required<T>(value: Option<T>, argument: &'static str) -> Result<T> {
    value.ok_or(BotaiError::Null { argument })
}
