//! An engine killed, cut off from its database or stopped at any step of an
//! order's life loses no signal and places nothing twice; at start it
//! reports what it did not place and leaves it alone.

use chrono::DateTime;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_engine_restarts_without_losing_a_signal_or_placing_an_order_twice() {
    let venue = Venue::start(1200).await;
    let db = venue.db.connect().await;
    let ml = venue.ml();
    let mut engine = venue.engine("engine-a");
    // Trade for a while, then kill the engine in the middle of the replay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (filled, ..) = outcomes(&db).await;
        if filled >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no orders after 60 s:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.kill();
    let killed_at: DateTime<Utc> = Utc::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during: i64 =
        db.query_one("SELECT count(*) FROM botai.signals WHERE accepted_at > $1", &[&killed_at]).await.unwrap().get(0);
    assert!(during > 0, "signals were accepted while no engine ran");
    let _restarted = venue.engine("engine-a");
    let (status, output) = ml.wait(Duration::from_secs(120));
    assert!(status.success(), "{output}");
    venue.settled(&db).await;
    venue.check_books(&db).await;
    let caught_up: i64 = db
        .query_one(
            "SELECT count(*) FROM botai.orders o JOIN botai.signals s USING (signal_id) \
             WHERE s.accepted_at > $1 AND s.accepted_at < $1 + interval '3 seconds' AND o.status <> 'claimed'",
            &[&killed_at],
        )
        .await
        .unwrap()
        .get(0);
    println!("  {during} signals accepted while the engine was down; {caught_up} of those accepted in its first 3 s handled after the restart");
}

/// A cut database connection (a restart, a failover, an administrator's
/// pg_terminate_backend) does not stop an engine: it takes its slot again
/// and trades on, losing nothing. SIGTERM (systemd, docker stop) stops it
/// as Ctrl-C does: in-flight orders settle and the slot is given back.
#[tokio::test(flavor = "multi_thread")]
async fn an_engine_outlives_its_database_connection_and_stops_in_order_on_sigterm() {
    let venue = Venue::start(1200).await;
    let db = venue.db.connect().await;
    let ml = venue.ml();
    let engine = venue.engine("engine-s");
    engine.wait_for_output("trading engine started", Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while outcomes(&db).await.0 < 3 {
        assert!(Instant::now() < deadline, "no orders after 60 s:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut: i64 = db
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name LIKE 'botai trading_engine%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cut > 0, "the engine's connections were found and cut");
    let cut_at = Utc::now();
    engine.wait_for_output("starting it again", Duration::from_secs(30)).await;
    let (status, output) = ml.wait(Duration::from_secs(120));
    assert!(status.success(), "{output}");
    venue.settled(&db).await;
    venue.check_books(&db).await;
    let after: i64 = db
        .query_one(
            "SELECT count(*) FROM botai.orders o JOIN botai.signals s USING (signal_id) \
             WHERE s.accepted_at > $1::timestamptz + interval '2 seconds' AND o.engine = 'engine-s' AND o.status <> 'claimed'",
            &[&cut_at],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after > 0, "the engine traded after its connections were cut:\n{}", engine.output());
    let term = std::process::Command::new("kill").args(["-TERM", &engine.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let (status, output) = engine.wait(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM ends the engine cleanly:\n{output}");
    assert!(output.contains("trading engine stopped"), "{output}");
    let state: String =
        db.query_one("SELECT state FROM botai.workers_status WHERE worker_id = 'engine-s'", &[]).await.unwrap().get(0);
    assert_eq!(state, "unregistered", "the slot was given back, not left to time out");
    println!("  {cut} connections cut; {after} signals accepted after it traded by the same engine; SIGTERM: stopped in order");
}

/// Stops an engine at `step` of an order's life (BOTAI_FAULT, the process
/// ends there as if killed) and starts it again: checked at the exchange,
/// no order is placed twice and none is lost, the order the crash
/// interrupted is recorded with exactly what the exchange filled, and the
/// position book equals the BTC the venue holds. The exchange runs in its
/// own process and confirms fills over 2 s (half after 1 s); the crashing
/// engine trades one order at a time, so the second order is the one at
/// `step` when the process ends.
async fn crash_at(step: &str) {
    let venue = Venue::start_with(1200, &[("PAPER_FILL_DELAY", "2")]).await;
    let db = venue.db.connect().await;
    botai_tests::operator_buys(&db, "crash", 4, "50000", "0.001").await;
    let mut env = venue.env.clone();
    env.extend([
        ("ENGINE_ID", "engine-a".to_owned()),
        ("BOTAI_FAULT", format!("{step}:2")),
        ("ENGINE_CONCURRENCY", "1".to_owned()),
    ]);
    let crashing = Daemon::start("engine-a", &venue.db.name, &["run", "--mode=core"], &env);
    let (status, output) = crashing.wait(Duration::from_secs(90));
    assert_eq!(status.code(), Some(86), "the engine did not end at {step}:\n{output}");
    assert!(output.contains(&format!("BOTAI_FAULT: the process ends at {step} of order botai-")), "{output}");
    // What the crash left behind: one order claimed and unrecorded — at the
    // exchange unless the process ended before sending it.
    let claimed: Vec<String> = db
        .query("SELECT client_order_id FROM botai.orders WHERE status = 'claimed'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(claimed.len(), 1, "one order in flight when the process ended: {claimed:?}");
    let sent = venue.exchange_orders().await.contains_key(&claimed[0]);
    assert_eq!(sent, step != "before_send", "{step}: the interrupted order at the exchange: {sent}");
    // The same engine again, without the fault: it takes its claim over.
    let engine = venue.engine("engine-a");
    venue.settled(&db).await;
    venue.check_books(&db).await;
    let filled: BTreeMap<String, Decimal> = db
        .query("SELECT client_order_id, qty FROM botai.orders WHERE status = 'filled'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(filled.len(), 4, "every order filled: {filled:?}\n{}", engine.output());
    for o in venue.exchange_order_states().await {
        let id = o["link_id"].as_str().unwrap();
        assert_eq!(filled[id], dec(&o["cum_qty"]), "{id}: recorded as the exchange filled it ({o})");
    }
    let book: Decimal = db
        .query_one("SELECT qty FROM botai.positions WHERE exchange = 'paper' AND symbol = 'BTCUSDT'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(book, venue.exchange_total("BTC").await, "the position book against the BTC the venue holds");
    println!(
        "  {step}: the interrupted order {} (sent: {sent}) recorded {}; book {book} BTC",
        claimed[0], filled[&claimed[0]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_stopped_before_the_send_sends_the_order_once_after_restart() {
    crash_at("before_send").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_stopped_before_reading_the_answer_adopts_its_order_after_restart() {
    crash_at("after_send").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_stopped_mid_fill_records_the_whole_fill_after_restart() {
    crash_at("mid_fill").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_stopped_between_the_answer_and_the_record_records_it_once_after_restart() {
    crash_at("after_answer").await;
}

/// An order open at the venue that botai did not place (an operator's,
/// placed by hand with another client order id) is reported critical by the
/// engine's reconciliation at start, and left alone.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_order_botai_did_not_place_is_reported_and_left_alone() {
    use botai_daemon::exchange::bybit::{BybitClient, BybitSettings};
    use botai_daemon::exchange::{limits::Unlimited, Category, Exchange, OrderRequest, Side};

    let venue = Venue::start(1200).await;
    let db = venue.db.connect().await;
    let settings = BybitSettings {
        rest_url: venue.exchange_url.clone(),
        api_key: "botai-paper-key".into(),
        api_secret: "botai-paper-secret".into(),
        recv_window: Duration::from_secs(5),
        category: Category::Spot,
        timeout: Duration::from_secs(5),
        ws_url: None,
    };
    let by_hand = BybitClient::new("by-hand", settings, std::sync::Arc::new(Unlimited)).unwrap();
    // A bid far below the market: it rests.
    let request = OrderRequest {
        client_order_id: "operator-bid-1".into(),
        symbol: "BTCUSDT".into(),
        side: Side::Buy,
        qty: Decimal::new(1, 2),
        price: Some(Decimal::new(1000, 0)),
        trigger: None,
    };
    by_hand.place_order(&request).await.unwrap();
    let engine = venue.engine("engine-a");
    engine.wait_for_output("trading engine started", Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let reported: String = loop {
        let row = db
            .query_opt(
                "SELECT error FROM botai.component_errors WHERE is_critical AND error LIKE '%operator-bid-1%'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "no critical error for the order placed by hand:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reported.contains("botai did not place it"), "{reported}");
    let still_open = by_hand.order("BTCUSDT", "operator-bid-1").await.unwrap().unwrap();
    assert!(!still_open.status.is_final(), "botai left the operator's order alone: {still_open:?}");
    println!("  reported: {reported}");
}
