//! Patroni (make test-failover): deploy/patroni/botai.yml on two nodes and
//! one etcd, all on loopback; the leader's node is lost (its Patroni and its
//! postmaster killed with SIGKILL) and Patroni promotes the synchronous
//! standby.

use std::time::{Duration, Instant};

use botai_tests::{botai_binary, free_port};
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::Config;
use uuid::Uuid;

use super::drill::{assert_nothing_acknowledged_lost, failover_drill, Servers};
use super::*;

/// A process of the Patroni drill, killed with the value.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program args` as the postgres user (exec'd: the pid is the program's).
fn spawn_as_postgres(program: &str, args: &[&str], env: &[(String, String)], log: &std::path::Path) -> Process {
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups", program])
        .args(args)
        .env("HOME", "/var/lib/postgresql")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process(cmd.spawn().unwrap_or_else(|e| panic!("start {program}: {e}")))
}

struct PatroniNode {
    name: String,
    pg_port: u16,
    api_port: u16,
    process: Option<Process>,
}

struct PatroniCluster {
    dir: std::path::PathBuf,
    password: String,
    nodes: Vec<PatroniNode>,
    _etcd: Process,
}

async fn http_status(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    client.get(url).send().await.ok().map(|r| r.status().as_u16())
}

impl PatroniCluster {
    async fn start() -> PatroniCluster {
        for program in ["patroni", "etcd"] {
            assert!(
                std::process::Command::new("which").arg(program).output().unwrap().status.success(),
                "{program} is not installed: make test-failover installs it (Debian packages patroni, etcd-server)"
            );
        }
        let dir = std::path::PathBuf::from(format!("/tmp/{}", botai_tests::unique("botai-patroni")));
        std::fs::create_dir_all(&dir).unwrap();
        run_root("chown", &["chown", "postgres:postgres", dir.to_str().unwrap()]);
        let (client_port, peer_port) = (free_port(), free_port());
        let etcd = spawn_as_postgres(
            "etcd",
            &[
                "--name=e1",
                &format!("--data-dir={}/etcd", dir.display()),
                &format!("--listen-client-urls=http://127.0.0.1:{client_port}"),
                &format!("--advertise-client-urls=http://127.0.0.1:{client_port}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-cluster=e1=http://127.0.0.1:{peer_port}"),
            ],
            &[],
            &dir.join("etcd.log"),
        );
        let until = Instant::now() + Duration::from_secs(30);
        while http_status(&format!("http://127.0.0.1:{client_port}/health")).await != Some(200) {
            assert!(Instant::now() < until, "etcd does not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The shipped configuration, with a failover detected in seconds
        // rather than half a minute (ttl, loop_wait, retry_timeout only).
        let shipped = std::fs::read_to_string(botai_tests::repo_root().join("deploy/patroni/botai.yml")).unwrap();
        let config = shipped
            .replace("    ttl: 30\n", "    ttl: 10\n")
            .replace("    loop_wait: 10\n", "    loop_wait: 2\n")
            .replace("    retry_timeout: 10\n", "    retry_timeout: 3\n");
        assert_ne!(config, shipped, "the DCS timings of deploy/patroni/botai.yml are where this test expects them");
        let config_path = dir.join("botai.yml");
        std::fs::write(&config_path, config).unwrap();
        let password = format!("pw-{}", Uuid::new_v4().simple());
        let mut cluster = PatroniCluster { dir, password, nodes: Vec::new(), _etcd: etcd };
        for name in ["node1", "node2"] {
            cluster.nodes.push(PatroniNode {
                name: name.into(),
                pg_port: free_port(),
                api_port: free_port(),
                process: None,
            });
        }
        cluster.start_node(0, client_port);
        cluster.wait_for(0, "primary", Duration::from_secs(120)).await;
        cluster.start_node(1, client_port);
        // The standby streams and is the synchronous one.
        cluster.wait_for(1, "synchronous", Duration::from_secs(180)).await;
        cluster
    }

    fn start_node(&mut self, i: usize, etcd_port: u16) {
        let n = &self.nodes[i];
        let data = self.dir.join(&n.name);
        let env: Vec<(String, String)> = [
            ("PATRONI_NAME", n.name.clone()),
            ("PATRONI_RESTAPI_LISTEN", format!("127.0.0.1:{}", n.api_port)),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", format!("127.0.0.1:{}", n.api_port)),
            ("PATRONI_POSTGRESQL_LISTEN", format!("127.0.0.1:{}", n.pg_port)),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", format!("127.0.0.1:{}", n.pg_port)),
            ("PATRONI_POSTGRESQL_DATA_DIR", data.display().to_string()),
            ("PATRONI_POSTGRESQL_PGPASS", self.dir.join(format!("{}.pgpass", n.name)).display().to_string()),
            ("PATRONI_ETCD3_HOSTS", format!("'127.0.0.1:{etcd_port}'")),
            ("PATRONI_SUPERUSER_PASSWORD", self.password.clone()),
            ("PATRONI_REPLICATION_PASSWORD", self.password.clone()),
            ("PATRONI_REWIND_PASSWORD", self.password.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = self.dir.join("botai.yml").display().to_string();
        let process = spawn_as_postgres("patroni", &[&config], &env, &self.dir.join(format!("{}.log", n.name)));
        self.nodes[i].process = Some(process);
    }

    /// Waits until node `i`'s REST API answers 200 on `/check`.
    async fn wait_for(&self, i: usize, check: &str, within: Duration) {
        let url = format!("http://127.0.0.1:{}/{check}", self.nodes[i].api_port);
        let until = Instant::now() + within;
        while http_status(&url).await != Some(200) {
            assert!(Instant::now() < until, "patroni {} is not {check}:\n{}", self.nodes[i].name, self.log(i));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.nodes[i].name))).unwrap_or_default()
    }

    /// The node whose REST API says it is the primary.
    async fn leader(&self) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.process.is_some()
                && http_status(&format!("http://127.0.0.1:{}/primary", n.api_port)).await == Some(200)
            {
                return Some(i);
            }
        }
        None
    }

    fn migrate(&self) {
        let leader = &self.nodes[0];
        let psql = |db: &str, sql: &str| {
            let out = std::process::Command::new("psql")
                .args(["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &leader.pg_port.to_string()])
                .args(["-U", "postgres", "-d", db, "-c", sql])
                .env("PGPASSWORD", &self.password)
                .output()
                .unwrap();
            assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        };
        psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        let out = std::process::Command::new(botai_binary())
            .args(["db", "migrate"])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", leader.pg_port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", DATABASE)
            .output()
            .unwrap();
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn postmaster_of(&self, i: usize) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.join(&self.nodes[i].name).join("postmaster.pid")).ok()?;
        pid.lines().next().map(|l| l.trim().to_owned())
    }
}

impl Servers for PatroniCluster {
    fn daemon_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", "127.0.0.1,127.0.0.1".into()),
            ("PGPORT", format!("{},{}", self.nodes[0].pg_port, self.nodes[1].pg_port)),
            ("PGUSER", "postgres".into()),
            ("PGPASSWORD", self.password.clone()),
            ("PGTARGETSESSIONATTRS", "read-write".into()),
        ]
    }

    fn client_config(&self) -> Config {
        let mut c = Config::new();
        for n in &self.nodes {
            c.host("127.0.0.1").port(n.pg_port);
        }
        c.user("postgres")
            .password(&self.password)
            .dbname(DATABASE)
            .target_session_attrs(TargetSessionAttrs::ReadWrite)
            .connect_timeout(Duration::from_secs(2));
        c
    }

    /// The leader's node is lost: its Patroni, then its postmaster and every
    /// child of it, SIGKILL. Patroni on the other node promotes it once the
    /// leader key expires.
    fn fail(&mut self) {
        let leader = 0;
        self.nodes[leader].process.take();
        let postmaster = self.postmaster_of(leader).expect("the leader's postmaster.pid");
        let children = String::from_utf8_lossy(&as_root(&["pgrep", "-P", &postmaster]).stdout).into_owned();
        assert!(as_root(&["kill", "-9", &postmaster]).status.success());
        for child in children.split_whitespace() {
            let _ = as_root(&["kill", "-9", child]);
        }
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.process.take();
        }
        for i in 0..self.nodes.len() {
            if let Some(pm) = self.postmaster_of(i) {
                let children = String::from_utf8_lossy(&as_root(&["pgrep", "-P", &pm]).stdout).into_owned();
                let _ = as_root(&["kill", "-9", &pm]);
                for child in children.split_whitespace() {
                    let _ = as_root(&["kill", "-9", child]);
                }
            }
        }
        if std::env::var("KEEP_PATRONI").is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "make test-failover: needs the patroni and etcd-server packages"]
async fn patroni_promotes_the_synchronous_standby_and_botai_follows() {
    let _serial = SERIAL.lock().await;
    let mut cluster = PatroniCluster::start().await;
    assert_eq!(cluster.leader().await, Some(0), "node1 bootstrapped the cluster");
    cluster.migrate();
    let o = failover_drill("patroni", &mut cluster).await;
    assert_eq!(cluster.leader().await, Some(1), "Patroni promoted node2:\n{}", cluster.log(1));
    let log = cluster.log(1);
    assert!(log.contains("promoted self to leader"), "Patroni says it promoted node2:\n{log}");
    assert_nothing_acknowledged_lost(&o);
}
