//! How to reach PostgreSQL: the libpq variables, read through the
//! configuration's [`Source`]. Below `db/`, which connects with it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio_postgres::config::TargetSessionAttrs;

use super::Source;

/// How to reach PostgreSQL: the libpq variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
#[derive(Clone)]
pub struct PgSettings {
    /// One host, or several (`PGHOST=a,b`), tried in order as libpq does:
    /// a primary and its standbys.
    pub hosts: Vec<String>,
    /// One port for every host, or one per host (`PGPORT=5555,5556`).
    pub ports: Vec<u16>,
    /// `PGTARGETSESSIONATTRS`: `read-write` (the default: every daemon
    /// writes, and a standby refuses writes) or `any`.
    pub target_session_attrs: TargetSessionAttrs,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

impl std::fmt::Debug for PgSettings {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("hosts", &self.hosts)
            .field("ports", &self.ports)
            .field("target_session_attrs", &self.target_session_attrs)
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
        Self::from_source(&Source::environment_only())
    }

    pub fn from_source(src: &Source) -> Result<PgSettings> {
        let ports = src.parse(
            "PGPORT",
            vec![5555u16],
            "a TCP port number (1-65535), or one per host separated by commas",
            |v| v.split(',').map(|p| p.trim().parse().ok().filter(|&p: &u16| p > 0)).collect(),
        )?;
        let user = match src.raw("PGUSER") {
            Some(u) => u,
            None => os_user().context("PGUSER is not set and the operating-system user has no name")?,
        };
        let hosts: Vec<String> =
            src.string("PGHOST", "/var/run/postgresql").split(',').map(|h| h.trim().to_owned()).collect();
        for host in &hosts {
            if host.is_empty() {
                bail!("PGHOST has an empty host: use host names or socket directories separated by commas");
            }
            if host.starts_with('/') && !PathBuf::from(host).is_dir() {
                bail!("PGHOST: {host} is not a directory: use a socket directory or a host name");
            }
        }
        if ports.len() > 1 && ports.len() != hosts.len() {
            bail!(
                "PGPORT has {} ports for {} hosts in PGHOST: give one port for all, or one per host",
                ports.len(),
                hosts.len()
            );
        }
        let target_session_attrs =
            src.parse("PGTARGETSESSIONATTRS", TargetSessionAttrs::ReadWrite, "read-write or any", |v| match v {
                "read-write" => Some(TargetSessionAttrs::ReadWrite),
                "any" => Some(TargetSessionAttrs::Any),
                _ => None,
            })?;
        Ok(PgSettings {
            hosts,
            ports,
            target_session_attrs,
            user,
            password: src.raw("PGPASSWORD"),
            dbname: src.string("PGDATABASE", "bot_trading_v3"),
        })
    }

    /// The operator's connection (`botai halt`, `resume`, `alerts apply`):
    /// the daemon's server and database, as OPERATOR_PGUSER with
    /// OPERATOR_PGPASSWORD when set (make writes them to operator.env);
    /// without them, PG* as they are (a superuser over the socket, or a
    /// person's own login granted botai_operator).
    pub fn operator(src: &Source) -> Result<PgSettings> {
        let mut pg = Self::from_source(src)?;
        if let Some(user) = src.raw("OPERATOR_PGUSER") {
            pg.user = user;
            pg.password = src.raw("OPERATOR_PGPASSWORD");
        }
        Ok(pg)
    }

    /// `host:port`, comma-separated when there are several.
    pub fn servers(&self) -> String {
        let port = |i: usize| self.ports.get(i).or(self.ports.first()).copied().unwrap_or(5555);
        self.hosts.iter().enumerate().map(|(i, h)| format!("{h}:{}", port(i))).collect::<Vec<_>>().join(",")
    }

    /// `user@host:port/db`, without the password.
    pub fn describe(&self) -> String {
        format!("{}@{}/{}", self.user, self.servers(), self.dbname)
    }

    /// Hosts are tried in order; with `read-write`, a standby (in recovery,
    /// `transaction_read_only` on) is passed over, so after a failover the
    /// next connection finds the new primary.
    pub fn to_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        for host in &self.hosts {
            c.host(host);
        }
        for port in &self.ports {
            c.port(*port);
        }
        c.user(&self.user)
            .dbname(&self.dbname)
            .application_name(application_name)
            .target_session_attrs(self.target_session_attrs);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c.connect_timeout(Duration::from_secs(10));
        c
    }
}
