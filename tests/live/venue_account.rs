//! The account as the venue holds it (issue 27): borrowed money and hedge
//! mode, a position opened elsewhere and its forced closes.

use std::time::Instant;

use botai_tests::TestDatabase;

use super::*;

/// Issue 27 items 2 and 1 (hedge mode): a unified account that borrowed
/// 200 USDT shows walletBalance 10200 and spotBorrow 200; botai counts the
/// 10000 of its own. An account in hedge mode is refused by `botai exchange
/// check` in one line, on either venue.
#[tokio::test(flavor = "multi_thread")]
async fn exchange_check_counts_no_borrowed_money_and_refuses_hedge_mode() {
    let db = TestDatabase::migrated(&[]).await;
    let (_double, url) = start_double(&db.name, &[]).await;
    account(&url, serde_json::json!({"borrow": {"USDT": "200"}})).await;
    let (ok, out) = botai(&db.name, &bybit_env(&url, "spot"), &["exchange", "check"]);
    assert!(ok, "{out}");
    assert!(out.contains("balance      USDT 10000 (available 10000"), "own funds only, not the 10200:\n{out}");

    account(&url, serde_json::json!({"hedge_mode": true, "borrow": {}})).await;
    let (ok, out) = botai(&db.name, &bybit_env(&url, "linear"), &["exchange", "check"]);
    assert!(!ok && out.contains("hedge mode"), "Bybit hedge mode refused:\n{out}");
    let (ok, out) = botai(&db.name, &binance_env(&url), &["exchange", "check"]);
    assert!(!ok && out.contains("hedge mode"), "Binance hedge mode refused:\n{out}");
    account(&url, serde_json::json!({"hedge_mode": false})).await;
    let (ok, out) = botai(&db.name, &binance_env(&url), &["exchange", "check"]);
    assert!(ok, "one-way mode passes:\n{out}");
}

/// Issue 27 items 1 and 3 on Binance, through a real engine: a position
/// the venue holds (0.002 @ 50,000, opened elsewhere) is adopted at the
/// venue's entry price, not the ticker; an ADL then a liquidation pushed by
/// the user stream close it in the book, with their fees, in the day's P&L,
/// each with a critical alert — and a repeated push books nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_venue_position_is_adopted_at_its_entry_and_forced_closes_are_booked() {
    let db = TestDatabase::migrated(&[]).await;
    let (double, url) = start_double(&db.name, &[]).await;
    account(&url, serde_json::json!({"position": ["BTCUSDT", "0.002", "50000"]})).await;
    let mut env = binance_env(&url);
    env.push(("ENGINE_ID", "venue-engine".to_owned()));
    let engine = Daemon::start("engine", &db.name, &["run", "--mode=core"], &env);
    engine.wait_for_output("user data stream connected", Duration::from_secs(30)).await;
    let client = db.connect().await;
    let position = || async {
        client
            .query_opt(
                "SELECT qty, avg_entry FROM botai.positions WHERE exchange = 'binance' AND symbol = 'BTCUSDT'",
                &[],
            )
            .await
            .unwrap()
            .map(|r| (r.get::<_, rust_decimal::Decimal>(0), r.get::<_, Option<rust_decimal::Decimal>>(1)))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while position().await.map(|p| p.0) != Some("0.002".parse().unwrap()) {
        assert!(Instant::now() < deadline, "never adopted; engine:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(position().await, Some(("0.002".parse().unwrap(), Some("50000".parse().unwrap()))), "the venue's entry");

    account(
        &url,
        serde_json::json!({"forced_close": {"kind": "adl", "symbol": "BTCUSDT", "qty": "0.001",
        "price": "41000", "fee": "0.5"}}),
    )
    .await;
    account(
        &url,
        serde_json::json!({"forced_close": {"kind": "liquidation", "symbol": "BTCUSDT", "qty": "0.001",
        "price": "39000", "fee": "0.3"}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let booked: i64 = client.query_one("SELECT count(*) FROM botai.venue_trades", &[]).await.unwrap().get(0);
        if booked == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{booked} forced closes booked; engine:\n{}", engine.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trades: Vec<(String, rust_decimal::Decimal, rust_decimal::Decimal)> = client
        .query("SELECT kind, realized_pnl, fee_quote FROM botai.venue_trades ORDER BY trade_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(
        trades,
        vec![("adl".to_owned(), d("-9"), d("0.5")), ("liquidation".to_owned(), d("-11"), d("0.3"))],
        "each closed 0.001 against the venue's entry of 50,000, with its fee"
    );
    assert_eq!(position().await.map(|p| p.0), Some(d("0")), "the book is flat, as the venue");
    let day = client
        .query_one("SELECT realized_pnl, fees FROM botai.pnl_today WHERE exchange = 'binance'", &[])
        .await
        .unwrap();
    assert_eq!((day.get::<_, rust_decimal::Decimal>(0), day.get::<_, rust_decimal::Decimal>(1)), (d("-20"), d("0.8")));
    let alerts: Vec<String> = client
        .query(
            "SELECT error FROM botai.component_errors WHERE is_critical AND error LIKE 'the venue %' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts.iter().any(|m| m.contains("AUTO-DELEVERAGED")) && alerts.iter().any(|m| m.contains("LIQUIDATED")));
    drop(engine);
    drop(double);
}
