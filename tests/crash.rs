//! Balances across a crash of the whole server: 32 sessions reserve,
//! release and commit against a few balances while the postmaster and every
//! backend are killed with SIGKILL (a power cut, as far as PostgreSQL can
//! tell), then the server starts again and recovers. Each balance must be
//! consistent (held = what its reservations count; never more reserved than
//! available), and every reservation, release and commit the server
//! acknowledged before the crash must be there after it, in the state
//! acknowledged.
//!
//! Kills the server: runs on its own (cargo runs test binaries in turn).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use botai_tests::{as_root, connect, reconnect_within, unique};
use rust_decimal::Decimal;
use tokio::sync::Mutex;
use tokio_postgres::Client;
use uuid::Uuid;

const SESSIONS: usize = 32;
const ROUNDS: usize = 3;

async fn reconnect() -> Client {
    reconnect_within(Duration::from_secs(60)).await
}

/// What the clients were told before the crash.
#[derive(Default)]
struct Acknowledged {
    /// reservation → its last acknowledged state: "held", "released", or
    /// "committed" with the amount used.
    state: HashMap<Uuid, (&'static str, Option<Decimal>)>,
}

/// Kills the postmaster, then every process left of the cluster, and
/// waits until none is left (a power cut, as far as PostgreSQL can tell).
fn power_cut(data_directory: &str) {
    let pid_file = std::fs::read_to_string(format!("{data_directory}/postmaster.pid")).expect("postmaster.pid");
    let postmaster = pid_file.lines().next().expect("a pid").trim().to_owned();
    assert!(as_root(&["kill", "-9", &postmaster]).status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The backends outlive their postmaster until they notice.
        let _ = as_root(&["pkill", "-9", "-u", "postgres", "-f", "postgres: 15/botai"]);
        let left = as_root(&["pgrep", "-u", "postgres", "-f", "postgres: 15/botai"]);
        let postmaster_gone = std::fs::read_to_string(format!("/proc/{postmaster}/stat"))
            .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        if left.stdout.is_empty() && postmaster_gone {
            return;
        }
        assert!(Instant::now() < deadline, "processes of the cluster survive SIGKILL");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the cluster again; the socket's lock file of the killed
/// postmaster may be checked while its process is being reaped.
fn start_again() {
    let mut last = String::new();
    for _ in 0..20 {
        let out = as_root(&["pg_ctlcluster", "15", "botai", "start"]);
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the server does not start again: {last}");
}

#[tokio::test]
async fn reservations_survive_killing_the_whole_server_consistent_and_exactly_once() {
    let admin = connect().await;
    let data_directory: String = admin.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
    let exchange = unique("crash");
    let assets = ["USDT", "BTC", "ETH"];
    for asset in assets {
        admin.execute("SELECT botai_update_balance($1, $2, 5000, 5000, 0)", &[&exchange, &asset]).await.unwrap();
    }
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut calls_total = 0u64;
    drop(admin);

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for s in 0..SESSIONS {
            let (stop, acked, exchange) = (stop.clone(), acked.clone(), exchange.clone());
            handles.push(tokio::spawn(async move {
                let Ok((db, conn)) =
                    botai_tests::config_for(&botai_tests::database()).connect(tokio_postgres::NoTls).await
                else {
                    return 0u64;
                };
                tokio::spawn(conn);
                let mut calls = 0u64;
                let mut mine: Vec<Uuid> = Vec::new();
                let mut i = s * 7919 + round * 104_729;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let asset = ["USDT", "BTC", "ETH"][(i >> 33) % 3];
                    let amount = Decimal::from(1 + (i >> 40) % 100);
                    calls += 1;
                    match (i >> 20) % 4 {
                        0 | 1 => {
                            let r = db
                                .query_one(
                                    "SELECT botai_reserve_balance($1, $2, $3, 'crash', NULL, interval '1 hour')",
                                    &[&exchange, &asset, &amount],
                                )
                                .await;
                            match r {
                                Ok(row) => {
                                    if let Some(id) = row.get::<_, Option<Uuid>>(0) {
                                        acked.lock().await.state.insert(id, ("held", None));
                                        mine.push(id);
                                    }
                                }
                                Err(_) => break, // the server is gone
                            }
                        }
                        2 => {
                            let Some(id) = mine.pop() else { continue };
                            match db.query_one("SELECT botai_release_reservation($1)", &[&id]).await {
                                Ok(row) => {
                                    if row.get::<_, bool>(0) {
                                        acked.lock().await.state.insert(id, ("released", None));
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                        _ => {
                            let Some(id) = mine.pop() else { continue };
                            let used = Decimal::new(1, 1); // 0.1 of whatever was held
                            match db.query_one("SELECT botai_commit_reservation($1, $2)", &[&id, &used]).await {
                                Ok(row) => {
                                    if row.get::<_, bool>(0) {
                                        acked.lock().await.state.insert(id, ("committed", Some(used)));
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    }
                }
                calls
            }));
        }
        // Let the load run, then cut the power mid-flight.
        tokio::time::sleep(Duration::from_millis(1500 + 700 * round as u64)).await;
        let cut_at = Instant::now();
        power_cut(&data_directory);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            calls_total += h.await.unwrap();
        }
        start_again();
        let db = reconnect().await;
        println!(
            "  round {}: power cut after {} calls in total; server back {} ms later",
            round + 1,
            calls_total,
            cut_at.elapsed().as_millis()
        );

        // --- consistent: held is what the reservations count, never above available
        let bad = botai_tests::balance_violations(&db, Some(exchange.as_str())).await;
        assert!(bad.is_empty(), "inconsistent balances after the crash: {bad:?}");
        // No snapshot is stored during the run: nothing reserved beyond what it made available.
        let over: Vec<String> = db
            .query(
                "SELECT s.asset || ': reserved ' || s.reserved || ', available ' || b.available \
                 FROM botai.balances_status s JOIN botai.balances b USING (exchange, asset) \
                 WHERE b.exchange = $1 AND s.reserved > b.available",
                &[&exchange],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(over.is_empty(), "reserved beyond available after the crash: {over:?}");

        // --- nothing acknowledged is lost, nothing is there twice
        let rows = db
            .query(
                "SELECT reservation_id, status, committed_amount FROM botai.reservations WHERE exchange = $1",
                &[&exchange],
            )
            .await
            .unwrap();
        let stored: HashMap<Uuid, (String, Option<Decimal>)> =
            rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        let acked = acked.lock().await;
        for (id, (state, used)) in &acked.state {
            let Some((status, amount)) = stored.get(id) else {
                panic!("reservation {id} was acknowledged ({state}) and is gone after the crash");
            };
            let fine = match *state {
                "held" => ["held", "committed", "released", "expired", "retired"].contains(&status.as_str()),
                "released" => status == "released",
                _ => (status == "committed" || status == "retired") && amount == used,
            };
            assert!(fine, "reservation {id}: acknowledged {state}, stored {status} {amount:?}");
        }
        println!(
            "  round {}: {} acknowledged reservations all present and as acknowledged; balances consistent",
            round + 1,
            acked.state.len()
        );
    }
    assert!(calls_total > 1000, "the sessions did work before each cut ({calls_total} calls)");
    // Leave the server as the other tests expect it: cleanly restarted, so
    // the rate limiter's windows are known again.
    let out = as_root(&["pg_ctlcluster", "15", "botai", "restart", "-m", "fast"]);
    assert!(out.status.success(), "restart: {}", String::from_utf8_lossy(&out.stderr));
    reconnect().await;
}
