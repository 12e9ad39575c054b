//! The Debian clusters of these tests: a primary with botai migrated and
//! its streaming standby (pg_createcluster, pg_basebackup -R).

use std::time::{Duration, Instant};

use botai_tests::{botai_binary, free_port, os_user};
use tokio_postgres::{Client, Config, NoTls};

use super::*;

/// A Debian cluster of this test (`pg_createcluster 15 NAME`), dropped
/// with its data when the value is.
pub(crate) struct Cluster {
    pub(crate) name: String,
    pub(crate) port: u16,
}

impl Cluster {
    /// A new, stopped cluster with botai preloaded and `settings` on top.
    fn create(name: &str, settings: &[(&str, &str)]) -> Cluster {
        let _ = as_root(&["pg_dropcluster", "15", name, "--stop"]);
        let port = free_port();
        run_root(
            "pg_createcluster",
            &[
                "pg_createcluster",
                "15",
                name,
                "--port",
                &port.to_string(),
                "--start-conf",
                "manual",
                "--",
                "--auth-local=peer",
            ],
        );
        let mut conf = format!(
            "port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{SOCKET_DIR}'\n\
             shared_preload_libraries = 'botai'\nmax_connections = 100\nmax_worker_processes = 16\njit = off\n\
             wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nbotai.monitor_interval = 1\n\
             botai.rate_limit_max_wait = {MAX_WAIT_S}\n"
        );
        for (k, v) in settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        let etc = format!("/etc/postgresql/15/{name}");
        write_root(&format!("{etc}/conf.d/00-botai.conf"), &conf);
        write_root(&format!("{etc}/pg_hba.conf"), "local all all peer\nlocal replication all peer\n");
        Cluster { name: name.to_owned(), port }
    }

    /// A standby of `primary`: its data directory is a base backup with
    /// standby.signal and primary_conninfo (pg_basebackup -R).
    fn standby_of(name: &str, primary: &Cluster, settings: &[(&str, &str)]) -> Cluster {
        let c = Cluster::create(name, settings);
        let data = c.data_directory();
        run_root("empty the data directory", &["find", &data, "-mindepth", "1", "-delete"]);
        run_root(
            "pg_basebackup",
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                "pg_basebackup",
                "-U",
                "postgres",
                "-h",
                SOCKET_DIR,
                "-p",
                &primary.port.to_string(),
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        c
    }

    fn data_directory(&self) -> String {
        format!("/var/lib/postgresql/15/{}", self.name)
    }

    fn start(&self) {
        run_root("pg_ctlcluster start", &["pg_ctlcluster", "15", &self.name, "start"]);
    }

    /// `pg_ctlcluster promote` (pg_ctl promote: waits until it is done).
    pub(crate) fn promote(&self) {
        run_root("pg_ctlcluster promote", &["pg_ctlcluster", "15", &self.name, "promote"]);
    }

    /// SIGKILL to the postmaster, then to every process left of it.
    pub(crate) fn power_cut(&self) {
        let pid_file = std::fs::read_to_string(format!("{}/postmaster.pid", self.data_directory())).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        assert!(as_root(&["kill", "-9", &postmaster]).status.success());
        let pattern = format!("postgres: 15/{} ", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let _ = as_root(&["pkill", "-9", "-u", "postgres", "-f", &pattern]);
            let left = as_root(&["pgrep", "-u", "postgres", "-f", &pattern]);
            let gone = std::fs::read_to_string(format!("/proc/{postmaster}/stat"))
                .map(|s| s.split_whitespace().nth(2) == Some("Z"))
                .unwrap_or(true);
            if left.stdout.is_empty() && gone {
                return;
            }
            assert!(Instant::now() < deadline, "the primary survives SIGKILL");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// psql as postgres on this cluster.
    pub(crate) fn psql(&self, database: &str, sql: &str) -> String {
        run_root(
            "psql",
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                "env",
                "-u",
                "PGUSER",
                "-u",
                "PGPASSWORD",
                "psql",
                "-U",
                "postgres",
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                SOCKET_DIR,
                "-p",
                &self.port.to_string(),
                "-d",
                database,
                "-c",
                sql,
            ],
        )
    }

    fn config(&self) -> Config {
        let mut c = Config::new();
        c.host(SOCKET_DIR).port(self.port).user(os_user()).dbname(DATABASE);
        c
    }

    pub(crate) async fn connect(&self) -> Client {
        let (client, conn) = self.config().connect(NoTls).await.expect("connect to the test cluster");
        tokio::spawn(conn);
        client
    }

    /// `botai db migrate` against this cluster: roles, the extension, seed.
    fn migrate(&self) {
        self.psql("postgres", &format!("CREATE ROLE \"{}\" SUPERUSER LOGIN", os_user()));
        self.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        let out = std::process::Command::new(botai_binary())
            .args(["db", "migrate"])
            .env("PGHOST", SOCKET_DIR)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", os_user())
            .env("PGDATABASE", DATABASE)
            .output()
            .unwrap();
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub(crate) fn log(&self) -> String {
        String::from_utf8_lossy(
            &as_root(&["cat", &format!("/var/log/postgresql/postgresql-15-{}.log", self.name)]).stdout,
        )
        .into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_root(&["pg_dropcluster", "15", &self.name, "--stop"]);
    }
}

fn write_root(path: &str, content: &str) {
    let script = format!("cat > '{path}' && chown postgres:postgres '{path}'");
    let mut child = std::process::Command::new(if unsafe { libc::geteuid() } == 0 { "bash" } else { "sudo" })
        .args(if unsafe { libc::geteuid() } == 0 { vec!["-c", &script] } else { vec!["bash", "-c", &script] })
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(content.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "writing {path}");
}

/// A primary with botai migrated and its streaming standby, both running;
/// `primary_settings` (synchronous replication) are applied once the
/// standby streams, or setting up would wait for a standby not there yet.
pub(crate) fn pair(tag: &str, primary_settings: &[(&str, &str)]) -> (Cluster, Cluster) {
    let primary = Cluster::create(&format!("botai_{tag}_a"), &[]);
    primary.start();
    primary.migrate();
    // The standby gets none of the primary's synchronous settings: once
    // promoted it would wait for a standby it does not have.
    let standby = Cluster::standby_of(&format!("botai_{tag}_b"), &primary, &[]);
    standby.start();
    for (k, v) in primary_settings {
        primary.psql("postgres", &format!("ALTER SYSTEM SET {k} = '{v}'"));
    }
    primary.psql("postgres", "SELECT pg_reload_conf()");
    let until = Instant::now() + Duration::from_secs(60);
    let wanted = if primary_settings.is_empty() { "async" } else { "sync" };
    while primary.psql("postgres", "SELECT sync_state FROM pg_stat_replication").trim() != wanted {
        assert!(Instant::now() < until, "the standby does not stream ({wanted})");
        std::thread::sleep(Duration::from_millis(100));
    }
    (primary, standby)
}
