//! A failover under load: the paper exchange, an ML manager and a trading
//! engine on both servers, the test's own signals and reservations; the
//! primary lost and the standby promoted. Checked at the exchange and on
//! the new primary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botai_tests::{os_user, Daemon};
use chrono::Utc;
use serde_json::Value;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, Config, NoTls};
use uuid::Uuid;

use super::cluster::{pair, Cluster};
use super::*;

/// What the load of the test saw acknowledged by a primary.
#[derive(Default)]
struct Acknowledged {
    /// Signal fingerprints the server accepted.
    signals: BTreeSet<String>,
    reservations: BTreeSet<Uuid>,
    /// Refused by a standby (25006) or lost with the connection.
    errors: BTreeMap<String, usize>,
}

/// Where the drill's servers are and how one is lost.
pub(crate) trait Servers {
    /// PGHOST, PGPORT (both servers), PGUSER, PGPASSWORD for the daemons.
    fn daemon_env(&self) -> Vec<(&'static str, String)>;
    /// Both servers, read-write, as an application connects.
    fn client_config(&self) -> Config;
    /// Loses the primary (SIGKILL); a manual failover also promotes.
    fn fail(&mut self);
}

/// Two clusters of this test; the operator promotes by hand.
struct ManualPair {
    primary: Cluster,
    standby: Cluster,
}

impl Servers for ManualPair {
    fn daemon_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", format!("{SOCKET_DIR},{SOCKET_DIR}")),
            ("PGPORT", format!("{},{}", self.primary.port, self.standby.port)),
            ("PGTARGETSESSIONATTRS", "read-write".into()),
        ]
    }

    fn client_config(&self) -> Config {
        let mut c = Config::new();
        c.host(SOCKET_DIR)
            .port(self.primary.port)
            .host(SOCKET_DIR)
            .port(self.standby.port)
            .user(os_user())
            .dbname(DATABASE)
            .target_session_attrs(TargetSessionAttrs::ReadWrite)
            .connect_timeout(Duration::from_secs(2));
        c
    }

    fn fail(&mut self) {
        self.primary.power_cut();
        self.standby.promote();
    }
}

async fn connect_with(config: &Config) -> Client {
    let (client, conn) = config.connect(NoTls).await.expect("connect to the primary");
    tokio::spawn(conn);
    client
}

/// Operator signals and reservations, about `per_second` of each, until
/// `stop`; reconnects (multi-host, read-write) whenever the server goes.
async fn load(
    config: Config,
    per_second: u32,
    stop: tokio_util::sync::CancellationToken,
    ack: Arc<Mutex<Acknowledged>>,
) {
    let mut client: Option<Client> = None;
    let mut k = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    while !stop.is_cancelled() {
        tick.tick().await;
        let db = match &client {
            Some(c) if !c.is_closed() => c,
            _ => match config.connect(NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                    client.as_ref().unwrap()
                }
                Err(_) => {
                    *ack.lock().unwrap().errors.entry("connect".into()).or_default() += 1;
                    continue;
                }
            },
        };
        k += 1;
        let strategy = format!("fo-{k}");
        let signal = db
            .query_one(
                "SELECT accepted, fingerprint FROM botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', \
                 'direction', 'BUY', 'strategy', $1::text, 'timestamp', now(), 'price', 50000, 'qty', '0.001'))",
                &[&strategy],
            )
            .await;
        let reservation =
            db.query_one("SELECT botai_reserve_balance('failover-load', 'USDT', 1, 'failover test')", &[]).await;
        let mut a = ack.lock().unwrap();
        match signal {
            Ok(row) => {
                if row.get::<_, bool>(0) {
                    a.signals.insert(row.get(1));
                }
            }
            Err(e) => *a.errors.entry(e.code().map_or("connection".into(), |c| c.code().to_owned())).or_default() += 1,
        }
        match reservation {
            Ok(row) => {
                if let Some(id) = row.get::<_, Option<Uuid>>(0) {
                    a.reservations.insert(id);
                }
            }
            Err(e) => *a.errors.entry(e.code().map_or("connection".into(), |c| c.code().to_owned())).or_default() += 1,
        }
    }
}

/// Order placements the exchange received: (orderLinkId, retCode) in order.
async fn placements(exchange_url: &str) -> Vec<(String, i64)> {
    let requests: Value =
        reqwest::get(format!("{exchange_url}/botai-double/requests")).await.unwrap().json().await.unwrap();
    requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v5/order/create")
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or("{}")).unwrap_or_default();
            (body["orderLinkId"].as_str().unwrap_or_default().to_owned(), r["code"].as_i64().unwrap_or(-1))
        })
        .collect()
}

pub(crate) struct Outcome {
    lost_signals: usize,
    lost_reservations: usize,
    orders_without_row: usize,
    duplicate_attempts: usize,
    placed: usize,
}

/// The drill of the issue on `servers`: the paper exchange, an ML manager
/// and an engine on both servers, the test's load; the primary lost; then
/// the checks at the exchange and on the new primary.
pub(crate) async fn failover_drill(tag: &str, servers: &mut dyn Servers) -> Outcome {
    let admin = connect_with(&servers.client_config()).await;
    // Funds for the test's reservations; the engine syncs its own.
    admin.batch_execute("SELECT botai_update_balance('failover-load', 'USDT', 1000000, 1000000, 0)").await.unwrap();

    let mut env = servers.daemon_env();
    env.extend([
        ("REPLAY_FROM", "2022-01-10T00:00:00Z".to_owned()),
        ("REPLAY_TO", "2022-01-10T12:00:00Z".into()),
        ("REPLAY_SPEED", "60".into()),
        ("REPLAY_EPOCH", (Utc::now() + chrono::Duration::seconds(4)).to_rfc3339()),
        ("MAX_SIGNAL_AGE", "900".into()),
        ("ORDER_SIZE", "fraction:0.0001".into()),
        ("HOLD_FOR", "300".into()),
        // The engine is under test, not the model's economics: the old fixed
        // threshold, below the round trip cost, so that it trades.
        ("SIGNAL_THRESHOLD", "0.0004".into()),
        ("BALANCE_UPDATE_INTERVAL", "2".into()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
        ("PAPER_INITIAL_BALANCE", "USDT=1000000".into()),
    ]);
    let (_exchange, exchange_url) = Daemon::double(&format!("{tag}-paper"), DATABASE, &env).await;
    env.push(("PAPER_EXCHANGE_URL", exchange_url.clone()));
    let ml = Daemon::start(&format!("{tag}-ml"), DATABASE, &["run", "--mode=ml"], &env);
    let mut engine_env = env.clone();
    engine_env.push(("ENGINE_ID", "engine-fo".into()));
    let engine = Daemon::start(&format!("{tag}-engine"), DATABASE, &["run", "--mode=core"], &engine_env);
    engine.wait_for_output("trading engine started", Duration::from_secs(60)).await;
    ml.wait_for_output("active ML manager", Duration::from_secs(60)).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let ack = Arc::new(Mutex::new(Acknowledged::default()));
    // About 12 orders a second: more than the venue's 50 per 5 s at 90 %,
    // so the limiter is at its limit when the primary dies.
    let loader = tokio::spawn(load(servers.client_config(), 12, stop.clone(), ack.clone()));

    let epoch_before: i64 = admin
        .query_one(
            "SELECT max(epoch) FROM botai.workers_status WHERE worker_type = 'ml_manager' AND state = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Trading at full speed for a while.
    let until = Instant::now() + Duration::from_secs(60);
    while placements(&exchange_url).await.len() < 60 {
        assert!(Instant::now() < until, "no trading before the failover:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(admin);

    // The failover.
    let placed_before = placements(&exchange_url).await.len();
    let killed = Instant::now();
    servers.fail();
    let failed_over_after = killed.elapsed();
    let (mut trading_again_after, mut engine_back_after) = (None, None);
    let until = Instant::now() + Duration::from_secs(180);
    // Orders the engine had booked before the kill may still go out; the
    // engine trades again once it started again on the new primary and an
    // order placed after that was accepted.
    let mut placed_when_back = usize::MAX;
    while trading_again_after.is_none() {
        let now = placements(&exchange_url).await;
        if engine_back_after.is_none() && engine.output().matches("trading engine started").count() >= 2 {
            engine_back_after = Some(killed.elapsed());
            placed_when_back = now.len();
        }
        if now.len() > placed_when_back && now[placed_when_back..].iter().any(|(_, c)| *c == 0) {
            trading_again_after = Some(killed.elapsed());
        }
        assert!(Instant::now() < until, "not trading within 3 minutes of the failover:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (trading_again_after, engine_back_after) = (trading_again_after.unwrap(), engine_back_after.unwrap());
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.cancel();
    loader.await.unwrap();

    // Settled on the new primary: every accepted signal has a final order.
    let db = connect_with(&servers.client_config()).await;
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM botai.signals s WHERE s.strategy LIKE 'fo-%' AND NOT EXISTS \
                 (SELECT 1 FROM botai.orders o WHERE o.signal_id = s.signal_id AND o.status <> 'claimed')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "{open} signals without a final order on the new primary:\n{}",
            engine.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // At the exchange: never over the limit, no order placed twice.
    let state: Value = reqwest::get(format!("{exchange_url}/botai-double/state")).await.unwrap().json().await.unwrap();
    assert_eq!(state["rejections"]["rate_limit"], 0, "no rate window exceeded across the failover: {state}");
    let placements = placements(&exchange_url).await;
    let mut attempts: BTreeMap<&str, usize> = BTreeMap::new();
    for (link, _) in &placements {
        *attempts.entry(link.as_str()).or_default() += 1;
    }
    let duplicate_attempts = attempts.values().filter(|&&n| n > 1).count();
    let accepted: Vec<&str> = placements.iter().filter(|(_, c)| *c == 0).map(|(l, _)| l.as_str()).collect();
    let distinct: BTreeSet<&str> = accepted.iter().copied().collect();
    assert_eq!(distinct.len(), accepted.len(), "the exchange accepted each client order id once");

    // On the new primary: what was acknowledged is there.
    let rows: BTreeSet<String> =
        db.query("SELECT client_order_id FROM botai.orders", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let orders_without_row = distinct.iter().filter(|l| !rows.contains(**l)).count();
    let fingerprints: BTreeSet<String> =
        db.query("SELECT fingerprint FROM botai.signals", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let reservations: BTreeSet<Uuid> = db
        .query("SELECT reservation_id FROM botai.reservations WHERE exchange = 'failover-load'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (signals, reserved, errors, lost_signals, lost_reservations) = {
        let a = ack.lock().unwrap();
        (
            a.signals.len(),
            a.reservations.len(),
            a.errors.clone(),
            a.signals.difference(&fingerprints).count(),
            a.reservations.difference(&reservations).count(),
        )
    };
    assert!(signals > 100 && reserved > 100, "the load ran: {signals} signals, {reserved} reservations");

    // The ML manager holds its slot on the new primary with a larger epoch.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let epoch_after: Option<i64> = db
            .query_one(
                "SELECT max(epoch) FROM botai.workers_status WHERE worker_type = 'ml_manager' AND state = 'active'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if epoch_after.is_some_and(|e| e > epoch_before) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the ML manager did not take its slot again with a larger epoch:\n{}",
            ml.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  {tag}: the failover step (the kill, and a promotion by hand) took {:.2} s; the engine started again (after its first balance sync, which waits out the full windows) {:.2} s and traded again {:.2} s \
         after it; {} placements ({placed_before} before the kill), 0 refused for the rate limit, \
         {duplicate_attempts} client order ids sent more than once; acknowledged {signals} signals and {reserved} \
         reservations (failed calls during the switch: {errors:?}); lost: {lost_signals} signals, \
         {lost_reservations} reservations, {orders_without_row} orders at the exchange without a row",
        failed_over_after.as_secs_f64(),
        engine_back_after.as_secs_f64(),
        trading_again_after.as_secs_f64(),
        placements.len(),
    );
    Outcome { lost_signals, lost_reservations, orders_without_row, duplicate_attempts, placed: placements.len() }
}

pub(crate) fn assert_nothing_acknowledged_lost(o: &Outcome) {
    assert_eq!(o.lost_signals, 0, "remote_apply: no acknowledged signal lost");
    assert_eq!(o.lost_reservations, 0, "remote_apply: no acknowledged reservation lost");
    assert_eq!(o.orders_without_row, 0, "remote_apply: every order at the exchange has its row");
    assert_eq!(o.duplicate_attempts, 0, "no order sent twice");
    assert!(o.placed > 100, "{} orders placed", o.placed);
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_with_synchronous_replication_loses_nothing_acknowledged() {
    let _serial = SERIAL.lock().await;
    let (primary, standby) =
        pair("fosync", &[("synchronous_standby_names", "*"), ("synchronous_commit", "remote_apply")]);
    let mut servers = ManualPair { primary, standby };
    let o = failover_drill("synchronous", &mut servers).await;
    assert_nothing_acknowledged_lost(&o);
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_with_asynchronous_replication_reports_what_it_lost() {
    let _serial = SERIAL.lock().await;
    let (primary, standby) = pair("foasync", &[]);
    let mut servers = ManualPair { primary, standby };
    let o = failover_drill("asynchronous", &mut servers).await;
    // Whatever was lost, the venue refused no order for the rate and took
    // none twice (asserted in the drill); the losses are printed there.
    assert!(o.placed > 100, "{} orders placed", o.placed);
}
