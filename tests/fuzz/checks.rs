//! Checks of the state the run left: reserving on it, the balance
//! invariants, and the daemon's readers over it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use botai_tests::sqlstate;
use tokio_postgres::Client;

use crate::generator::{printable, shorten};
use crate::run::open_session;
use crate::{Role, LONGEST_TRANSACTION};

/// Reserving on the state the run left (pending folds, expired and retired
/// reservations, odd amounts): four sessions reserve a seventh of what is
/// available on up to ten balances until refused. No error, and afterwards
/// each balance that admitted any has reserved at most what is available
/// (nothing lowered `available` meanwhile).
pub(crate) async fn probe_admission(database: &str, db: &Client, failures: &mut Vec<String>) {
    let targets: Vec<(String, String, String)> = db
        .query(
            "SELECT exchange, asset, round(available / 7, 8)::text FROM botai.balances \
             WHERE available BETWEEN 0.000001 AND 1e12 ORDER BY exchange <> 'fuzz', exchange, asset LIMIT 10",
            &[],
        )
        .await
        .expect("balances to probe")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let targets = Arc::new(targets);
    let sessions: Vec<_> = [Role::Superuser, Role::Service, Role::Superuser, Role::Service]
        .into_iter()
        .map(|role| {
            let (targets, database) = (targets.clone(), database.to_owned());
            tokio::spawn(async move {
                let db = open_session(&database, role).await;
                let mut admitted = vec![0u32; targets.len()];
                let mut errors = Vec::new();
                for (t, (exchange, asset, amount)) in targets.iter().enumerate() {
                    for _ in 0..100 {
                        let r = db
                            .query_one(
                                "SELECT botai_reserve_balance($1, $2, $3::text::numeric, 'fuzz-probe')::text",
                                &[exchange, asset, amount],
                            )
                            .await;
                        match r {
                            Ok(row) if row.get::<_, Option<String>>(0).is_some() => admitted[t] += 1,
                            Ok(_) => break,
                            Err(e) => {
                                errors.push(format!(
                                    "botai_reserve_balance({exchange:?}, {asset:?}, {amount}) as {}: {} {}",
                                    role.label(),
                                    sqlstate(&e).unwrap_or_default(),
                                    e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string())
                                ));
                                break;
                            }
                        }
                    }
                }
                (admitted, errors)
            })
        })
        .collect();
    let mut admitted = vec![0u32; targets.len()];
    for s in sessions {
        let (counts, errors) = s.await.expect("a probe session panicked");
        for (total, n) in admitted.iter_mut().zip(counts) {
            *total += n;
        }
        if !errors.is_empty() {
            failures.push(format!("reserving after the run failed:\n    {}", errors.join("\n    ")));
        }
    }
    for ((exchange, asset, amount), n) in targets.iter().zip(&admitted) {
        let row = db
            .query_one(
                "SELECT available::text, reserved::text, reserved <= available FROM botai.balances_status \
                 WHERE exchange = $1 AND asset = $2",
                &[exchange, asset],
            )
            .await
            .expect("balances_status");
        let (available, reserved, within): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        println!(
            "  {}/{}: {n} reservations of {amount} admitted; available {}, reserved {}",
            printable(exchange),
            printable(asset),
            shorten(&available, 40),
            shorten(&reserved, 40)
        );
        if *n > 0 && !within {
            failures.push(format!(
                "{exchange}/{asset}: after {n} reservations of {amount}, reserved {reserved} exceeds available {available}"
            ));
        }
    }
}

/// The balances are consistent by design (README "Balances: reserving costs
/// the same however many are open"):
/// - `held` is exactly the sum of the reservations' `counted`, always;
/// - each reservation counts what its state says (held: its amount,
///   committed: the committed amount, released: nothing, expired and
///   retired: nothing once folded, what it counted before until then);
/// - `reserved` of botai.balances_status is `held` minus what is pending,
///   so between 0 and `held`;
/// - reserving never takes more than was available: the reservations
///   admitted after the stored snapshot (by more than any transaction of the
///   run lasts) and still holding count at most its `available`.
///
/// A plain `reserved <= available` does not hold by design: a newer
/// snapshot may report less available than is already reserved (listed,
/// not failed).
pub(crate) async fn check_balances(db: &Client, failures: &mut Vec<String>) {
    let broken = botai_tests::balance_violations(db, None).await;
    if broken.is_empty() {
        println!("  ok: the balance invariant (held = sum(counted), reserved within 0..held)");
    } else {
        failures.push(format!("the balance invariant:\n    {}", broken.join("\n    ")));
    }
    let checks: [(&str, String); 2] = [
        (
            "reservations counting other than their state says",
            "SELECT r.reservation_id || ' ' || r.status || ': amount ' || r.amount || ', committed ' || \
                    coalesce(r.committed_amount::text, '-') || ', counted ' || r.counted \
             FROM botai.reservations r \
             WHERE NOT CASE r.status \
                 WHEN 'held' THEN r.counted = r.amount \
                 WHEN 'committed' THEN r.counted = r.committed_amount \
                 WHEN 'released' THEN r.counted = 0 \
                 WHEN 'expired' THEN r.counted IN (0, r.amount) \
                 WHEN 'retired' THEN r.counted IN (0, r.committed_amount) \
                 ELSE false END \
             LIMIT 20"
                .into(),
        ),
        (
            "reservations admitted after the stored snapshot hold more than it made available",
            format!(
                "SELECT b.exchange || '/' || b.asset || ': available ' || b.available || ' (stored ' || b.updated_at || \
                        '), held since by ' || count(*) || ' reservations: ' || sum(r.counted) \
                 FROM botai.balances b \
                 JOIN botai.reservations r ON r.exchange = b.exchange AND r.asset = b.asset \
                 WHERE r.created_at > b.updated_at + interval '{LONGEST_TRANSACTION}' \
                   AND (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now())) \
                 GROUP BY b.exchange, b.asset, b.available, b.updated_at \
                 HAVING sum(r.counted) > b.available"
            ),
        ),
    ];
    for (what, sql) in checks {
        // One statement: one snapshot, whatever the monitor does meanwhile.
        let rows = db.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        if rows.is_empty() {
            println!("  ok: no {what}");
        } else {
            let lines: Vec<String> = rows.iter().map(|r| format!("    {}", r.get::<_, String>(0))).collect();
            failures.push(format!("{what}:\n{}", lines.join("\n")));
        }
    }
    let covered: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM botai.balances b \
                 JOIN botai.reservations r ON r.exchange = b.exchange AND r.asset = b.asset \
                 WHERE r.created_at > b.updated_at + interval '{LONGEST_TRANSACTION}' \
                   AND (r.status = 'committed' OR (r.status = 'held' AND r.expires_at > now()))"
            ),
            &[],
        )
        .await
        .expect("coverage")
        .get(0);
    println!("  (the last check covered {covered} reservations holding funds)");
    let over = db
        .query(
            "SELECT s.exchange || '/' || s.asset || ': available ' || s.available || ', reserved ' || s.reserved \
             FROM botai.balances_status s WHERE s.reserved > s.available",
            &[],
        )
        .await
        .expect("balances_status");
    println!(
        "  balances whose reserved exceeds available (a later snapshot reported less; allowed by design): {}",
        over.len()
    );
    for r in over.iter().take(5) {
        println!("    {}", r.get::<_, String>(0));
    }
    let summary = db
        .query(
            "SELECT count(*)::text || ' balances, ' || (SELECT count(*) FROM botai.reservations)::text || \
                    ' reservations (' || (SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM \
                    (SELECT status, count(*) AS n FROM botai.reservations GROUP BY status) s) || ')' \
             FROM botai.balances",
            &[],
        )
        .await
        .expect("summary");
    println!("  {}", summary[0].get::<_, Option<String>>(0).unwrap_or_default());
}

/// `botai run --mode=api` and `botai status|positions|orders` on the state
/// the run left: the API answers /api/status, /health and /metrics, the
/// commands end with their own exit codes, nothing panics.
pub(crate) async fn daemon_readers(database: &str, failures: &mut Vec<String>) {
    let port = botai_tests::free_port();
    let api = botai_tests::Daemon::start(
        "fuzz-api",
        database,
        &["run", "--mode=api"],
        &[("API_LISTEN", format!("127.0.0.1:{port}"))],
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/health/live")).await.is_err() {
        if Instant::now() > deadline {
            failures.push(format!("the API did not start on the fuzzed state:\n{}", api.output()));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/api/status", "/health", "/metrics", "/health/ready"] {
        match reqwest::get(format!("{base}{path}")).await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                println!("  GET {path}: {status}, {} bytes", body.len());
                let json_ok = path == "/metrics" || serde_json::from_str::<serde_json::Value>(&body).is_ok();
                if !(status == 200 || (path == "/health" && status == 503)) || !json_ok {
                    failures.push(format!("GET {path} on the fuzzed state: {status} {}", shorten(&body, 300)));
                }
            }
            Err(e) => failures.push(format!("GET {path} on the fuzzed state failed: {e}")),
        }
    }
    for args in [&["status"][..], &["positions"], &["orders"]] {
        let (code, text) = botai_tests::botai_command(database, args);
        println!("  botai {}: exit {code:?}, {} lines", args.join(" "), text.lines().count());
        if !matches!(code, Some(0) | Some(2)) || text.contains("panicked") {
            failures.push(format!(
                "botai {} on the fuzzed state exited {code:?}:\n{}",
                args.join(" "),
                shorten(&text, 2000)
            ));
        }
    }
    let output = api.output();
    if output.contains("panicked") {
        failures.push(format!("the API daemon panicked on the fuzzed state:\n{}", shorten(&output, 3000)));
    }
}
