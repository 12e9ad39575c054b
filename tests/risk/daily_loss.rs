//! A daily loss past its limit halts trading within one monitor round,
//! whatever another session holds and whatever another account stores.

use std::time::Instant;

use botai_tests::expect_sqlstate;
use serde_json::Value;

use super::*;

/// A day's loss at its limit: the monitor halts trading within one round
/// and opens a critical alert; the position book holds the realised loss.
#[tokio::test(flavor = "multi_thread")]
async fn a_daily_loss_breach_halts_trading_within_one_monitor_round() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('{EXCHANGE}', '*', 15)"
    ))
    .await
    .unwrap();
    let (c, engine) = &fleet[0];
    let buy = signals(&db, 1, "BUY", "loss-buy").await[0];
    let sell = signals(&db, 1, "SELL", "loss-sell").await[0];
    let later = signals(&db, 1, "BUY", "loss-later").await[0];
    let one = Decimal::new(1, 3);
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    // Sold 0.001 BTC 15,000 lower: a loss of 15 plus 0.2 of fees.
    fill(c, engine, order, &asset, reservation, one, PRICE - 15_000).await;
    let book = db
        .query_one("SELECT qty, realized_pnl, fees FROM botai.positions WHERE exchange = $1", &[&EXCHANGE])
        .await
        .unwrap();
    assert_eq!(book.get::<_, Decimal>(0), Decimal::ZERO);
    assert_eq!(book.get::<_, Decimal>(1), Decimal::new(-15, 0));
    assert_eq!(book.get::<_, Decimal>(2), Decimal::new(2, 1));
    let net: Decimal =
        db.query_one("SELECT net_pnl FROM botai.pnl_today WHERE exchange = $1", &[&EXCHANGE]).await.unwrap().get(0);
    assert_eq!(net, Decimal::new(-152, 1));
    let breached = Instant::now();
    t.wait_rounds(2).await;
    let state = db.query_one("SELECT mode, reason, changed_by FROM botai.trading_state", &[]).await.unwrap();
    let (mode, reason, by): (String, String, String) = (state.get(0), state.get(1), state.get(2));
    println!("  halted {:.1} s after the losing fill: {reason}", breached.elapsed().as_secs_f64());
    assert_eq!((mode.as_str(), by.as_str()), ("halted", "botai monitor"), "{reason}");
    let alert: Value = db
        .query_one(
            "SELECT details FROM botai.alerts WHERE rule = 'daily_loss' AND subject = $1 AND status = 'open'",
            &[&EXCHANGE],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alert["max_daily_loss"], json!(15));
    let (_, _, r) = reserve(c, engine, later, one).await;
    assert!(matches!(r, Reserved::Refused(ref w) if w.starts_with("halted: alert rule daily_loss")), "{r:?}");
    // Resuming needs the operator's explicit acknowledgement of the alert,
    // also once its condition has cleared (here: the rule disabled, as the
    // engine's own role could never do, and the alert resolved).
    let alert_id: i64 = db
        .query_one("SELECT alert_id FROM botai.alerts WHERE rule = 'daily_loss' AND status = 'open'", &[])
        .await
        .unwrap()
        .get(0);
    db.batch_execute("UPDATE botai.alert_rules SET enabled = false WHERE rule = 'daily_loss'").await.unwrap();
    t.wait_rounds(2).await;
    let (mode, status): (String, String) = {
        let r = db
            .query_one(
                "SELECT t.mode, a.status FROM botai.trading_state t, botai.alerts a WHERE a.alert_id = $1",
                &[&alert_id],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((mode.as_str(), status.as_str()), ("halted", "resolved"), "a rule's halt outlives its condition");
    expect_sqlstate("a resume that acknowledges nothing", db.query_one("SELECT botai_resume('x')", &[]).await, "55000");
    db.batch_execute("SET ROLE botai_operator").await.unwrap();
    let said: String = db
        .query_one("SELECT botai_resume('loss reviewed', acknowledge => ARRAY[$1::bigint])", &[&alert_id])
        .await
        .unwrap()
        .get(0);
    db.batch_execute("RESET ROLE").await.unwrap();
    assert!(said.starts_with("active") && said.contains("1 alert(s) acknowledged"), "{said}");
    let ack = db
        .query_one(
            "SELECT acknowledged_by, reason, acknowledged_at IS NOT NULL FROM botai.alert_acknowledgements \
             WHERE alert_id = $1",
            &[&alert_id],
        )
        .await
        .unwrap();
    let (by, why, at): (String, String, bool) = (ack.get(0), ack.get(1), ack.get(2));
    println!("  resumed by the operator ({by}): {said}");
    assert_eq!((why.as_str(), at), ("loss reviewed", true));
    // An acknowledged resume stands; the next breach opens a new alert,
    // which halts again.
    db.batch_execute("UPDATE botai.alert_rules SET enabled = true WHERE rule = 'daily_loss'").await.unwrap();
    t.wait_rounds(2).await;
    let (mode, holding): (String, Vec<i64>) = {
        let r = db.query_one("SELECT mode, halting_alerts FROM botai.trading_state", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(mode, "halted", "the loss is still there: a new alert, a new halt");
    assert!(!holding.contains(&alert_id) && holding.len() == 1, "{holding:?}");
}

/// Issue 26 item 2: a session holding the switch's row lock (an operator's
/// halt waiting for orders in flight, a `BEGIN; SELECT botai_resume(…)` left
/// open) cannot keep a rule's halt from force: the open alert itself holds
/// trading halted, in the round that opens it.
#[tokio::test(flavor = "multi_thread")]
async fn a_rule_halts_trading_while_another_session_holds_the_switch_row() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('{EXCHANGE}', '*', 15)"
    ))
    .await
    .unwrap();
    // The row the monitor wrote in 0.6.0, held for the whole test.
    let holder = t.connect().await;
    holder.batch_execute("BEGIN; SELECT * FROM botai.trading_switch FOR UPDATE").await.unwrap();
    let (c, engine) = &fleet[0];
    let one = Decimal::new(1, 3);
    let buy = signals(&db, 1, "BUY", "lock-buy").await[0];
    let sell = signals(&db, 1, "SELL", "lock-sell").await[0];
    let later = signals(&db, 1, "BUY", "lock-later").await[0];
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE - 15_000).await;
    t.wait_rounds(2).await;
    let (mode, by): (String, String) = {
        let r = db.query_one("SELECT mode, changed_by FROM botai.trading_state", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((mode.as_str(), by.as_str()), ("halted", "botai monitor"), "halted although the row is locked");
    let (_, _, r) = reserve(c, engine, later, one).await;
    assert!(matches!(r, Reserved::Refused(ref w) if w.starts_with("halted: alert rule daily_loss")), "{r:?}");
    let failing: i64 =
        db.query_one("SELECT count(*) FROM botai.rule_status WHERE last_error IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(failing, 0, "no rule failed meanwhile");
    holder.batch_execute("ROLLBACK").await.unwrap();
}

/// Issue 26 item 8: one account's absurd figures (stored before 0.7.0
/// refused them) never stop the daily-loss rule for another account.
#[tokio::test(flavor = "multi_thread")]
async fn one_accounts_absurd_figures_never_stop_the_daily_loss_rule_for_another() {
    let t = TestDatabase::create(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.batch_execute(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_daily_loss) VALUES ('forged', '*', 10), ('sane', '*', 10);          INSERT INTO botai.positions (exchange, symbol, qty, avg_entry, last_price) VALUES            ('forged', 'BTCUSDT', 1e200, 1, 1e200), ('forged', 'ETHUSDT', -1e200, 1e200, 1),            ('sane', 'BTCUSDT', 1, 100, 50)",
    )
    .await
    .unwrap();
    // And a forged fill of the day on the forged account.
    db.batch_execute(
        "INSERT INTO botai.signals (fingerprint, symbol, direction, strategy, signal_ts, payload)            VALUES ('forged-1', 'BTCUSDT', 'BUY', 'x', now(), '{}');          INSERT INTO botai.orders (signal_id, fingerprint, client_order_id, engine, engine_epoch, exchange, symbol, side,            status, qty, price, realized_pnl, fee_quote, signal_accepted_at, finished_at)          SELECT signal_id, 'forged-1', 'botai-forged-1', 'e', 1, 'forged', 'BTCUSDT', 'BUY', 'filled', 1e200, 1e200,                 -1e400, 1e200, now(), now() FROM botai.signals WHERE fingerprint = 'forged-1'",
    )
    .await
    .unwrap();
    t.wait_rounds(2).await;
    let open: Vec<String> = db
        .query("SELECT subject FROM botai.alerts WHERE rule = 'daily_loss' AND status = 'open' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let error: Option<String> =
        db.query_one("SELECT last_error FROM botai.rule_status WHERE rule = 'daily_loss'", &[]).await.unwrap().get(0);
    println!("  daily_loss open on {open:?}; rule error: {error:?}");
    assert_eq!(error, None, "the rule evaluates");
    assert!(open.contains(&"sane".to_owned()), "the sane account 50 down against 10 is alerted: {open:?}");
}
