//! Helpers for the integration tests: connections to the real server on
//! port 5555, LISTEN sessions, client processes that can be killed, and
//! SQLSTATE checks.
//!
//! The server is the one `make test` sets up; connection settings come from
//! the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE), defaulting to
//! the developer's superuser role over the Unix socket.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Notification};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

pub fn os_user() -> String {
    let out = std::process::Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn database() -> String {
    env_or("PGDATABASE", "botai_test")
}

/// Connection settings for a superuser session on the Unix socket.
pub fn config_for(dbname: &str) -> Config {
    let mut c = Config::new();
    c.host(env_or("PGHOST", "/var/run/postgresql"))
        .port(env_or("PGPORT", "5555").parse().expect("PGPORT"))
        .user(env_or("PGUSER", &os_user()))
        .dbname(dbname)
        .application_name("botai-tests");
    c
}

/// The daemon's connection settings for `dbname` on the test server.
pub fn pg_settings(dbname: &str) -> botai_daemon::env::pg::PgSettings {
    botai_daemon::env::pg::PgSettings {
        hosts: vec![env_or("PGHOST", "/var/run/postgresql")],
        ports: vec![env_or("PGPORT", "5555").parse().expect("PGPORT")],
        target_session_attrs: tokio_postgres::config::TargetSessionAttrs::ReadWrite,
        user: env_or("PGUSER", &os_user()),
        password: None,
        dbname: dbname.to_owned(),
    }
}

pub async fn connect() -> Client {
    connect_to(&database()).await
}

/// `n` sessions of their own, for tests of many clients at once.
pub async fn sessions(n: usize) -> Vec<Client> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(connect().await);
    }
    sessions
}

pub async fn connect_to(dbname: &str) -> Client {
    let (client, conn) = config_for(dbname).connect(NoTls).await.expect("connect to the test server");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A session whose notifications arrive on the returned channel.
pub async fn listen(channels: &[&str]) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    listen_on(&database(), channels).await
}

pub async fn listen_on(dbname: &str, channels: &[&str]) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let (client, mut conn) = config_for(dbname).connect(NoTls).await.expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n);
            }
        }
    });
    for channel in channels {
        client.batch_execute(&format!("LISTEN {channel}")).await.expect("LISTEN");
    }
    (client, rx)
}

/// A short unique name for test objects, so tests never share state.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The SQLSTATE of a server error.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_owned())
}

/// Asserts `result` failed with `code`, printing the server's message.
pub fn expect_sqlstate<T: std::fmt::Debug>(what: &str, result: Result<T, tokio_postgres::Error>, code: &str) {
    match result {
        Ok(v) => panic!("{what}: expected SQLSTATE {code}, got success: {v:?}"),
        Err(e) => {
            let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
            assert_eq!(sqlstate(&e).as_deref(), Some(code), "{what}: wrong SQLSTATE; message: {message}");
            println!("  {what}: {code} {message}");
        }
    }
}

/// A `psql` client process: a real OS process with its own connection,
/// which a test can kill like a crashing bot.
pub struct PsqlProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PsqlProcess {
    pub async fn start() -> Result<PsqlProcess> {
        Self::start_on(&database()).await
    }

    pub async fn start_on(dbname: &str) -> Result<PsqlProcess> {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0"])
            .env("PGHOST", env_or("PGHOST", "/var/run/postgresql"))
            .env("PGPORT", env_or("PGPORT", "5555"))
            .env("PGUSER", env_or("PGUSER", &os_user()))
            .env("PGDATABASE", dbname)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start psql")?;
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Ok(PsqlProcess { child, stdin, stdout })
    }

    /// Runs one statement and returns its output lines; the session then
    /// sits idle, as a bot between requests does.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<String>> {
        const END: &str = "__botai_end__";
        self.stdin.write_all(format!("{sql}\n\\echo {END}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let mut lines = Vec::new();
        let read = async {
            loop {
                let mut line = String::new();
                if self.stdout.read_line(&mut line).await? == 0 {
                    bail!("psql exited");
                }
                let line = line.trim_end().to_owned();
                if line == END {
                    return Ok::<_, anyhow::Error>(());
                }
                lines.push(line);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.context("psql did not answer")??;
        Ok(lines)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL: the process dies without any chance to clean up.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Runs python3 with `script` (arguments in sys.argv[1:]) and returns its stdout.
pub fn python(script: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("python3").arg("-c").arg(script).args(args).output().context("run python3")?;
    if !out.status.success() {
        bail!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A database of its own for one test, with the extension and the given
/// per-database settings (set before CREATE EXTENSION, so the monitor the
/// extension starts reads them). Dropped (FORCE) when the test ends.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    /// A new database with per-database settings and nothing in it yet.
    async fn empty(settings: &[(&str, &str)]) -> String {
        let name = unique("botai_t");
        let admin = connect_to("postgres").await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
        for (setting, value) in settings {
            admin
                .batch_execute(&format!("ALTER DATABASE {name} SET {setting} = '{value}'"))
                .await
                .expect("ALTER DATABASE");
        }
        name
    }

    /// A database with no extension yet (the test creates it, e.g. at an
    /// older version).
    pub async fn without_extension(settings: &[(&str, &str)]) -> TestDatabase {
        TestDatabase { name: Self::empty(settings).await }
    }

    pub async fn create(settings: &[(&str, &str)]) -> TestDatabase {
        let name = Self::empty(settings).await;
        let db = connect_to(&name).await;
        db.batch_execute("CREATE EXTENSION botai").await.expect("CREATE EXTENSION botai");
        TestDatabase { name }
    }

    pub async fn connect(&self) -> Client {
        connect_to(&self.name).await
    }

    /// A session on this database whose notifications arrive on the channel.
    pub async fn listen(&self, channels: &[&str]) -> (Client, mpsc::UnboundedReceiver<Notification>) {
        listen_on(&self.name, channels).await
    }

    /// The monitor's state (botai_monitor_state()).
    pub async fn monitor(&self) -> serde_json::Value {
        let db = self.connect().await;
        db.query_one("SELECT botai_monitor_state()", &[]).await.unwrap().get(0)
    }

    /// Waits for the monitor of this database to complete `rounds` more rounds.
    pub async fn wait_rounds(&self, rounds: u64) {
        let start = self.monitor().await["rounds"].as_u64().unwrap_or(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.monitor().await["rounds"].as_u64().unwrap_or(0) < start + rounds {
            assert!(std::time::Instant::now() < deadline, "the monitor did not complete {rounds} rounds in 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, outside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((admin, conn)) = config_for("postgres").connect(NoTls).await {
                    tokio::spawn(conn);
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// `onnx` written as `<name>.onnx` in `dir` with the shipped model's
/// manifest (`models/patchtst.json`) beside it, renamed to it, with the
/// file's checksum, then `edit`ed: the model file of a contract test.
pub fn model_with_manifest(
    dir: &std::path::Path,
    name: &str,
    onnx: &[u8],
    edit: impl FnOnce(&mut serde_json::Value),
) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, onnx).unwrap();
    let shipped = std::fs::read_to_string(repo_root().join("models/patchtst.json")).expect("models/patchtst.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    manifest["onnx"] = format!("{name}.onnx").into();
    manifest["sha256"] = format!("{:x}", Sha256::digest(onnx)).into();
    edit(&mut manifest);
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    path
}

/// The `botai` binary of the profile these tests were built with.
pub fn botai_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let bin = profile_dir.join("botai");
    assert!(bin.exists(), "{} is missing: build it first (cargo build -p botai-daemon, or make test)", bin.display());
    bin
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().unwrap().port()
}

/// The market data every test daemon replays unless told otherwise.
pub const FTX_MONTH: &str = "data/market/btc-perp-1m-2022-01.csv.gz";

/// A `botai` process of a test: its own environment (database, ports, log
/// directory under target/), output in a file, killable like a crash.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
    pub name: String,
}

impl Daemon {
    /// Starts `botai <args>` against `database` with `env` on top of the
    /// test defaults (superuser over the socket, no .env, quiet ports).
    pub fn start(name: &str, database: &str, args: &[&str], env: &[(&str, String)]) -> Daemon {
        let dir = repo_root().join("target/test-daemons").join(unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("output.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(botai_binary());
        cmd.args(args)
            .current_dir(repo_root())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("PGHOST", env_or("PGHOST", "/var/run/postgresql"))
            .env("PGPORT", env_or("PGPORT", "5555"))
            .env("PGUSER", env_or("PGUSER", &os_user()))
            .env("PGDATABASE", database)
            .env("LOG_DIR", dir.join("logs"))
            .env("REPORT_DIR", dir.join("reports"))
            .env("API_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("PAPER_LISTEN", "off")
            .env("BOTAI_LOG", "info")
            .env("NO_COLOR", "1")
            // The tests replay the FTX month (their fixture), not make run's default.
            .env("MARKET_DATA", FTX_MONTH)
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start botai");
        Daemon { child, log, name: name.to_owned() }
    }

    /// The exchange double (`botai paper-exchange`: the simulated venue in
    /// Bybit's and Binance's dialects) as its own process on a free port,
    /// with `env` (everything but PAPER_LISTEN), serving when this returns:
    /// (the process, its URL — PAPER_EXCHANGE_URL for engines).
    pub async fn double(name: &str, database: &str, env: &[(&str, String)]) -> (Daemon, String) {
        let double = Daemon::double_starting(name, database, env);
        double.0.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
        double
    }

    /// `double`, without waiting for it to serve.
    pub fn double_starting(name: &str, database: &str, env: &[(&str, String)]) -> (Daemon, String) {
        let port = free_port();
        let mut env: Vec<(&str, String)> = env.iter().filter(|(k, _)| *k != "PAPER_LISTEN").cloned().collect();
        env.push(("PAPER_LISTEN", format!("127.0.0.1:{port}")));
        (Daemon::start(name, database, &["paper-exchange"], &env), format!("http://127.0.0.1:{port}"))
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no clean-up of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its status and output.
    pub fn wait(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.output());
            }
            if std::time::Instant::now() > deadline {
                self.kill();
                panic!("{} did not finish within {within:?}; output:\n{}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the output contains `text`.
    pub async fn wait_for_output(&self, text: &str, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.output().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never printed {text:?}; output:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl TestDatabase {
    /// A database made like the real one: `botai db migrate` (roles,
    /// extension, seed configuration), plus per-database settings.
    pub async fn migrated(settings: &[(&str, &str)]) -> TestDatabase {
        let name = Self::empty(settings).await;
        let out = std::process::Command::new(botai_binary())
            .args(["db", "migrate"])
            .env("PGHOST", env_or("PGHOST", "/var/run/postgresql"))
            .env("PGPORT", env_or("PGPORT", "5555"))
            .env("PGUSER", env_or("PGUSER", &os_user()))
            .env("PGDATABASE", &name)
            .output()
            .expect("botai db migrate");
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
        TestDatabase { name }
    }
}

/// Runs a command as root (directly when the tests run as root, else with
/// sudo): the server is managed with Debian's pg_ctlcluster.
pub fn as_root(args: &[&str]) -> std::process::Output {
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root { std::process::Command::new(args[0]) } else { std::process::Command::new("sudo") };
    if root {
        cmd.args(&args[1..]);
    } else {
        cmd.args(args);
    }
    cmd.output().expect("run as root")
}

/// A new session once the server accepts connections again (after a
/// restart or a crash), within `within`.
pub async fn reconnect_within(within: Duration) -> Client {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok((client, conn)) = config_for(&database()).connect(NoTls).await {
            tokio::spawn(conn);
            if client.simple_query("SELECT 1").await.is_ok() {
                return client;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the server did not come back within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers `n` operator BUY orders of `qty` BTC of BTCUSDT at `price` at
/// once (strategies `<prefix>-0` … so none is a duplicate of another).
pub async fn operator_buys(db: &Client, prefix: &str, n: usize, price: &str, qty: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let orders: Vec<String> = (0..n)
        .map(|k| {
            format!(
                "SELECT botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', 'direction', 'BUY', \
                 'strategy', '{prefix}-{k}', 'timestamp', '{now}', 'price', {price}, 'qty', '{qty}'))"
            )
        })
        .collect();
    db.batch_execute(&orders.join(";")).await.unwrap();
}

/// The first column of the first row of `sql`, a count.
pub async fn count(db: &Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits until `check` holds, failing with `what` after `within`.
pub async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `botai` command in the foreground (`status`, `positions`, …) on
/// `database` as the test's superuser, with no environment but the
/// database's: its exit code and what it printed.
pub fn botai_command(database: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(botai_binary())
        .args(args)
        .current_dir(repo_root())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PGHOST", env_or("PGHOST", "/var/run/postgresql"))
        .env("PGPORT", env_or("PGPORT", "5555"))
        .env("PGUSER", env_or("PGUSER", &os_user()))
        .env("PGDATABASE", database)
        .output()
        .expect("run botai");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The balance invariant, in one statement (one snapshot): every balance
/// row's `held` is the sum of its reservations' `counted`, no reservation
/// counts against a balance row that does not exist, and the reserved
/// figure of `botai.balances_status` lies within `0..=held`. A line per
/// violation, of `exchange` or of every exchange.
pub async fn balance_violations(db: &Client, exchange: Option<&str>) -> Vec<String> {
    let rows = db
        .query(
            "WITH counted AS (SELECT exchange, asset, sum(counted) AS sum FROM botai.reservations GROUP BY 1, 2)
             SELECT b.exchange || '/' || b.asset || ': held ' || b.held || ', sum(counted) ' || coalesce(c.sum, 0)
             FROM botai.balances b LEFT JOIN counted c USING (exchange, asset)
             WHERE b.held <> coalesce(c.sum, 0) AND ($1::text IS NULL OR b.exchange = $1)
             UNION ALL
             SELECT c.exchange || '/' || c.asset || ': reservations count ' || c.sum || ' without a balance row'
             FROM counted c
             WHERE c.sum > 0 AND ($1::text IS NULL OR c.exchange = $1)
               AND NOT EXISTS (SELECT 1 FROM botai.balances b WHERE b.exchange = c.exchange AND b.asset = c.asset)
             UNION ALL
             SELECT s.exchange || '/' || s.asset || ': reserved ' || s.reserved || ' outside 0..held ' || b.held
             FROM botai.balances_status s JOIN botai.balances b USING (exchange, asset)
             WHERE (s.reserved < 0 OR s.reserved > b.held) AND ($1::text IS NULL OR s.exchange = $1)",
            &[&exchange],
        )
        .await
        .unwrap_or_else(|e| panic!("the balance invariant's query: {e}"));
    rows.iter().map(|r| r.get(0)).collect()
}
