//! The releases before the current one, each with its own state in it,
//! upgraded in place: their data kept, the new rules applied to it at once,
//! the catalog a fresh install's.

use botai_tests::{expect_sqlstate, TestDatabase};

use super::*;

/// Data in the tables 0.7.0 changes, as 0.6.0 wrote them (the library
/// refuses 0.6.0's functions, so they are written directly): the kill switch
/// halted by an operator, an open alert of the halting daily_loss rule, a
/// position left without an entry price, a channel with a delivery owed.
const FILL_0_6_0: &str = r#"
UPDATE botai.trading_state SET mode = 'halted', reason = 'ops review', changed_by = 'alice';
INSERT INTO botai.risk_limits (exchange, symbol, max_position_notional, max_daily_loss) VALUES ('six', '*', 5000, 100);
INSERT INTO botai.positions (exchange, symbol, qty, avg_entry, last_price, realized_pnl, fees, trades)
VALUES ('six', 'BTCUSDT', 0.5, NULL, 40000, -12.5, 1.25, 3);
INSERT INTO botai.balances (exchange, asset, total, available, locked, as_of) VALUES ('six', 'USDT', 1000, 900, 100, now());
INSERT INTO botai.alert_channels (channel, triggers) VALUES ('telegram', ARRAY['critical_error']);
WITH a AS (INSERT INTO botai.alerts (rule, subject, severity, action, value, details)
           VALUES ('daily_loss', 'six', 'critical', 'halt', 150, '{"loss": 150}') RETURNING alert_id)
INSERT INTO botai.alert_events (alert_id, event) SELECT alert_id, 'opened' FROM a;
INSERT INTO botai.alerts (rule, subject, severity, action, status, opened_at, resolved_at, value)
VALUES ('daily_loss', 'six', 'critical', 'halt', 'resolved', now() - interval '1 day', now() - interval '20 hours', 120);
INSERT INTO botai.rule_status (rule, last_evaluated_at, last_error, last_error_at)
VALUES ('daily_loss', now(), NULL, NULL), ('low_balance', now(), 'a bad params row', now());
"#;

/// From the previous release, 0.6.0, with its own state in it: the switch,
/// the halting alert, the position book and the outbox survive 0.7.0's
/// upgrade, and 0.7.0's rules apply to them at once (the open daily_loss
/// alert holds trading until an operator acknowledges it).
#[tokio::test]
async fn a_filled_0_6_0_database_upgrades_with_its_halt_its_alerts_and_its_book() {
    let old = TestDatabase::without_extension(&[("botai.monitor_enabled", "off")]).await;
    let db = old.connect().await;
    db.batch_execute("CREATE EXTENSION botai VERSION '0.6.0'").await.expect("install 0.6.0");
    db.batch_execute(FILL_0_6_0).await.expect("fill the 0.6.0 database");
    db.batch_execute("ALTER EXTENSION botai UPDATE").await.expect("ALTER EXTENSION botai UPDATE");
    drop(db);
    let db = old.connect().await;
    let current = library_version(&db).await;
    assert_eq!(version(&db).await, current);

    let switch = db.query_one("SELECT mode, reason, changed_by FROM botai.trading_switch", &[]).await.unwrap();
    let (mode, reason, by): (String, String, String) = (switch.get(0), switch.get(1), switch.get(2));
    assert_eq!((mode.as_str(), reason.as_str(), by.as_str()), ("halted", "ops review", "alice"), "the switch is kept");
    let alert_id: i64 = db
        .query_one("SELECT alert_id FROM botai.alerts WHERE rule = 'daily_loss' AND status = 'open'", &[])
        .await
        .unwrap()
        .get(0);
    // The alert 0.6.0 had resolved is acknowledged by the upgrade; the open
    // one, which the switch still halts for, is not.
    let acknowledged: Vec<(String, String)> = db
        .query(
            "SELECT a.status, k.acknowledged_by FROM botai.alert_acknowledgements k JOIN botai.alerts a USING (alert_id)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(acknowledged, vec![("resolved".to_owned(), "botai 0.7.0 upgrade".to_owned())]);
    let state = db.query_one("SELECT mode, halting_alerts FROM botai.trading_state", &[]).await.unwrap();
    let (mode, holding): (String, Vec<i64>) = (state.get(0), state.get(1));
    assert_eq!((mode.as_str(), holding), ("halted", vec![alert_id]), "the open daily_loss alert holds trading");
    // Lifting both takes the operator's acknowledgement of the alert.
    expect_sqlstate("a resume that acknowledges nothing", db.query_one("SELECT botai_resume('x')", &[]).await, "55000");
    let said: String = db
        .query_one("SELECT botai_resume('reviewed', acknowledge => ARRAY[$1::bigint])", &[&alert_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(said, "active (was halted); 1 alert(s) acknowledged");
    // The book, the balance and the outbox are as 0.6.0 left them, but for
    // the position 0.6.0 left without an entry price: the upgrade enters it
    // at its last price (with a WARNING), so its fill can be booked.
    let book = db
        .query_one("SELECT qty, avg_entry, realized_pnl FROM botai.positions WHERE exchange = 'six'", &[])
        .await
        .unwrap();
    let (qty, entry, realized): (rust_decimal::Decimal, Option<rust_decimal::Decimal>, rust_decimal::Decimal) =
        (book.get(0), book.get(1), book.get(2));
    assert_eq!(
        (qty, entry, realized),
        (
            rust_decimal::Decimal::new(5, 1),
            Some(rust_decimal::Decimal::new(40000, 0)),
            rust_decimal::Decimal::new(-125, 1)
        )
    );
    let owed: i64 = db
        .query_one("SELECT count(*) FROM botai.alert_deliveries WHERE channel = 'telegram' AND status = 'pending'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owed, 1, "the delivery 0.6.0 owed is still owed");
    let channels: Vec<(String, bool)> = db
        .query("SELECT channel, enabled FROM botai.alert_channels ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(channels, vec![("log".into(), true), ("telegram".into(), true)], "0.7.0 adds the log channel");
    let failing: Vec<(String, i32)> = db
        .query("SELECT rule, failed_rounds FROM botai.rule_status ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(failing, vec![("daily_loss".into(), 0), ("low_balance".into(), 0)]);
    // The catalog is a fresh install's.
    let fresh = TestDatabase::create(&[("botai.monitor_enabled", "off")]).await;
    let fresh_db = fresh.connect().await;
    let (upgraded, installed) = (catalog(&db).await, catalog(&fresh_db).await);
    let differs: Vec<_> = upgraded.symmetric_difference(&installed).collect();
    assert!(differs.is_empty(), "the upgraded catalog differs from a fresh install: {differs:#?}");
    println!("  0.6.0 with data upgraded to {current}: its halt, alert, book and outbox kept; catalog as fresh");
}

/// Data 0.7.0 wrote, in the tables 0.8.0's functions and views read: a
/// position with its entry, the account's limits, an acknowledged halt.
const FILL_0_7_0: &str = r#"
INSERT INTO botai.risk_limits (exchange, symbol, max_position_notional, max_daily_loss) VALUES ('seven', '*', 5000, 100);
INSERT INTO botai.positions (exchange, symbol, qty, avg_entry, last_price, realized_pnl, fees, trades, opened_at)
VALUES ('seven', 'BTCUSDT', 0.002, 50000, 40000, -5, 0.1, 2, now());
WITH a AS (INSERT INTO botai.alerts (rule, subject, severity, action, status, opened_at, resolved_at, value)
           VALUES ('daily_loss', 'seven', 'critical', 'halt', 'resolved', now() - interval '1 day',
                   now() - interval '20 hours', 120) RETURNING alert_id)
INSERT INTO botai.alert_acknowledgements (alert_id, acknowledged_by, reason) SELECT alert_id, 'alice', 'seen' FROM a;
"#;

/// From the previous release, 0.7.0, with its book in it: 0.8.0 keeps every
/// row, books the venue's own trades into that book and the day's P&L once
/// per venue id, adopts the venue's position at its entry price, and ends
/// with a fresh install's catalog.
#[tokio::test]
async fn a_filled_0_7_0_database_upgrades_and_books_the_venues_own_trades() {
    let old = TestDatabase::without_extension(&[("botai.monitor_enabled", "off")]).await;
    let db = old.connect().await;
    db.batch_execute("CREATE EXTENSION botai VERSION '0.7.0'").await.expect("install 0.7.0");
    db.batch_execute(FILL_0_7_0).await.expect("fill the 0.7.0 database");
    db.batch_execute("ALTER EXTENSION botai UPDATE").await.expect("ALTER EXTENSION botai UPDATE");
    drop(db);
    let db = old.connect().await;
    assert_eq!(version(&db).await, library_version(&db).await);
    let state = db.query_one("SELECT mode FROM botai.trading_state", &[]).await.unwrap();
    assert_eq!(state.get::<_, String>(0), "active", "the acknowledged halt stays lifted");
    let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    let book = || async {
        let r = db
            .query_one("SELECT qty, avg_entry, realized_pnl, fees FROM botai.positions WHERE exchange = 'seven'", &[])
            .await
            .unwrap();
        (
            r.get::<_, rust_decimal::Decimal>(0),
            r.get::<_, Option<rust_decimal::Decimal>>(1),
            r.get::<_, rust_decimal::Decimal>(2),
            r.get::<_, rust_decimal::Decimal>(3),
        )
    };
    assert_eq!(book().await, (d("0.002"), Some(d("50000")), d("-5"), d("0.1")), "the book as 0.7.0 left it");

    // A liquidation of half, booked once however often the venue says it.
    let liquidate = "SELECT botai_venue_trade('seven', 'BTCUSDT', 'liquidation', 'L-1', 'SELL', 0.001, 39000, 0.3)";
    let realized: Option<rust_decimal::Decimal> = db.query_one(liquidate, &[]).await.unwrap().get(0);
    assert_eq!(realized, Some(d("-11")));
    let again: Option<rust_decimal::Decimal> = db.query_one(liquidate, &[]).await.unwrap().get(0);
    assert_eq!(again, None, "the same venue id books nothing");
    db.execute("SELECT botai_venue_trade('seven', 'BTCUSDT', 'funding', 'F-1', NULL, NULL, NULL, 0.2)", &[])
        .await
        .unwrap();
    assert_eq!(book().await, (d("0.001"), Some(d("50000")), d("-16"), d("0.6")));
    let day = db
        .query_one("SELECT realized_pnl, fees, fills FROM botai.pnl_today WHERE exchange = 'seven'", &[])
        .await
        .unwrap();
    assert_eq!(
        (day.get::<_, rust_decimal::Decimal>(0), day.get::<_, rust_decimal::Decimal>(1), day.get::<_, i64>(2)),
        (d("-11"), d("0.5"), 1),
        "the day's P&L counts the forced close and the funding fee (one fill)"
    );
    // The venue's position, adopted at its entry price (not the mark).
    let correction: Option<rust_decimal::Decimal> =
        db.query_one("SELECT botai_position_adopt('seven', 'BTCUSDT', 0.003, 46000, 44000)", &[]).await.unwrap().get(0);
    assert_eq!(correction, Some(d("0.002")));
    assert_eq!(book().await, (d("0.003"), Some(d("46000")), d("-16"), d("0.6")));
    for (what, sql, state) in [
        (
            "a forced close without a side",
            "SELECT botai_venue_trade('seven', 'BTCUSDT', 'adl', 'A-1', NULL, 1, 1, 0)",
            "22004",
        ),
        (
            "a funding fee with a quantity",
            "SELECT botai_venue_trade('seven', 'BTCUSDT', 'funding', 'F-2', NULL, 1, NULL, 0)",
            "22023",
        ),
        (
            "an unknown kind",
            "SELECT botai_venue_trade('seven', 'BTCUSDT', 'margin_call', 'M-1', 'SELL', 1, 1, 0)",
            "22023",
        ),
        ("a position without its entry", "SELECT botai_position_adopt('seven', 'BTCUSDT', 0.5, NULL)", "22023"),
        (
            "a price outside the domain",
            "SELECT botai_venue_trade('seven', 'BTCUSDT', 'adl', 'A-2', 'SELL', 1, 1e300, 0)",
            "22003",
        ),
    ] {
        expect_sqlstate(what, db.query_one(sql, &[]).await, state);
    }
    let fresh = TestDatabase::create(&[("botai.monitor_enabled", "off")]).await;
    let fresh_db = fresh.connect().await;
    let (upgraded, installed) = (catalog(&db).await, catalog(&fresh_db).await);
    let differs: Vec<_> = upgraded.symmetric_difference(&installed).collect();
    assert!(differs.is_empty(), "the upgraded catalog differs from a fresh install: {differs:#?}");
}

/// From the previous release, 0.8.0, with a venue's trade and a rate limit
/// in it: 0.9.0 keeps them and books a request's moment itself
/// (`botai_rate_book`, the 100 ms rule of the limiter in one place), a
/// moment no earlier than the transaction's start; the catalog ends as a
/// fresh install's.
#[tokio::test]
async fn a_filled_0_8_0_database_upgrades_and_books_the_moment_itself() {
    let old = TestDatabase::without_extension(&[("botai.monitor_enabled", "off")]).await;
    let db = old.connect().await;
    db.batch_execute("CREATE EXTENSION botai VERSION '0.8.0'").await.expect("install 0.8.0");
    let exchange = botai_tests::unique("eight");
    db.execute(
        "INSERT INTO botai.rate_limits (exchange, endpoint, max_weight, window_seconds) VALUES ($1, 'order', 10, 1)",
        &[&exchange],
    )
    .await
    .expect("a rate limit in 0.8.0");
    // As 0.8.0's botai_venue_trade wrote it (the 0.9.0 library serves only
    // 0.9.0's objects: the rows are written as they would be).
    db.batch_execute(
        "INSERT INTO botai.venue_trades (exchange, symbol, kind, venue_id, fee_quote) \
         VALUES ('eight', 'BTCUSDT', 'funding', 'F-8', 0.25)",
    )
    .await
    .expect("a venue trade in 0.8.0");
    db.batch_execute("ALTER EXTENSION botai UPDATE").await.expect("ALTER EXTENSION botai UPDATE");
    drop(db);
    let db = old.connect().await;
    assert_eq!(version(&db).await, library_version(&db).await);
    let kept: i64 =
        db.query_one("SELECT count(*) FROM botai.venue_trades WHERE venue_id = 'F-8'", &[]).await.unwrap().get(0);
    assert_eq!(kept, 1, "the venue's trade stays");
    let (booked, start): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = {
        let r = db.query_one("SELECT botai_rate_book($1, 'order'), now()", &[&exchange]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert!(booked >= start, "booked {booked} before the transaction began {start}");
    let fresh = TestDatabase::create(&[("botai.monitor_enabled", "off")]).await;
    let fresh_db = fresh.connect().await;
    let (upgraded, installed) = (catalog(&db).await, catalog(&fresh_db).await);
    let differs: Vec<_> = upgraded.symmetric_difference(&installed).collect();
    assert!(differs.is_empty(), "the upgraded catalog differs from a fresh install: {differs:#?}");
}
