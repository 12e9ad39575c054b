//! Configuration, read once and validated before anything starts.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Loads `.env` from the working directory or the nearest parent; variables
/// already set in the environment win.
pub fn load_dotenv() {
    let _ = dotenvy::dotenv();
}

/// How to reach PostgreSQL: the libpq variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
#[derive(Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl std::fmt::Debug for PgSettings {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// The name of the user running the process, as libpq uses by default.
fn os_user() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_owned)
}

impl PgSettings {
    pub fn from_env() -> Result<PgSettings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let port = match var("PGPORT") {
            None => 5555,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .with_context(|| format!("PGPORT must be a TCP port number (1-65535), not {p:?}"))?,
        };
        let user = match var("PGUSER") {
            Some(u) => u,
            None => os_user().context("PGUSER is not set and the operating-system user has no name")?,
        };
        let host = var("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into());
        if host.starts_with('/') && !PathBuf::from(&host).is_dir() {
            bail!("PGHOST={host} is not a directory: use a socket directory or a host name");
        }
        Ok(PgSettings {
            host,
            port,
            user,
            password: var("PGPASSWORD"),
            dbname: var("PGDATABASE").unwrap_or_else(|| "bot_trading_v3".into()),
        })
    }

    /// `user@host:port/db`, without the password.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    pub fn to_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname).application_name(application_name);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c.connect_timeout(std::time::Duration::from_secs(10));
        c
    }
}
