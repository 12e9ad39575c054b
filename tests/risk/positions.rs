//! The position book follows the fills: marked at the market, never at an
//! order's own price, and every position it holds has an entry price.

use botai_daemon::db::RiskCalls;
use botai_tests::expect_sqlstate;

use super::*;

/// Issue 26 item 6: an order's own price never marks the position. A limit
/// SELL far above the market, refused, leaves the book marked at the market.
#[tokio::test(flavor = "multi_thread")]
async fn an_orders_own_price_never_marks_the_position() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    db.batch_execute(&format!(
        "INSERT INTO botai.risk_limits (exchange, symbol, max_order_notional) VALUES ('{EXCHANGE}', '*', 100)"
    ))
    .await
    .unwrap();
    let (c, engine) = &fleet[0];
    let one = Decimal::new(1, 3);
    let buy = signals(&db, 1, "BUY", "mark-buy").await[0];
    let (order, asset, r) = reserve(c, engine, buy, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    // The market falls to 30,000: a market price marks the book.
    assert!(c.mark_price(EXCHANGE, "BTCUSDT", Decimal::from(30_000)).await.unwrap());
    let sell = signals(&db, 1, "SELL", "mark-sell").await[0];
    let claimed = c.order_claim(&[sell], engine, EXCHANGE, &["BTCUSDT"], None).await.unwrap();
    let (o, _) = claimed.into_iter().next().and_then(|c| c.owned()).unwrap();
    let r = c
        .reserve_orders(
            engine,
            Duration::from_secs(60),
            &[OrderReservation {
                order_id: o.order_id,
                target: None,
                signal_id: sell,
                qty: one,
                price: Decimal::from(1_000_000),
                asset: "BTC".into(),
                amount: one,
                mark: None,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(&r[0], Reserved::Refused(w) if w.starts_with("max_order_notional")), "{r:?}");
    let book = db
        .query_one("SELECT last_price, unrealized_pnl FROM botai.positions_status WHERE exchange = $1", &[&EXCHANGE])
        .await
        .unwrap();
    let (last, unrealized): (Decimal, Decimal) = (book.get(0), book.get(1));
    println!("  after a refused limit SELL at 1,000,000: marked at {last}, unrealised {unrealized}");
    assert_eq!(last, Decimal::from(30_000), "the limit price did not mark the book");
    assert_eq!(unrealized, Decimal::from(-10));
}

/// Issue 26 item 7: a reconciliation that would give the book a position
/// without an entry price is refused; one with the price enters it, and
/// the closing fill is booked (a row left without an entry by 0.6.0
/// closes too).
#[tokio::test(flavor = "multi_thread")]
async fn a_reconciled_position_always_has_an_entry_price() {
    let t = TestDatabase::create(&[]).await;
    let (db, fleet) = account(&t, 1).await;
    let (c, engine) = &fleet[0];
    expect_sqlstate(
        "a flat book taking the venue's 0.001 without a price",
        db.query_one("SELECT botai_position_reconcile($1, 'BTCUSDT', 0.001)", &[&EXCHANGE]).await,
        "22023",
    );
    let qty: Option<Decimal> = db
        .query_opt("SELECT qty FROM botai.positions WHERE exchange = $1 AND qty <> 0", &[&EXCHANGE])
        .await
        .unwrap()
        .map(|r| r.get(0));
    assert_eq!(qty, None, "nothing written");
    let correction: Decimal = db
        .query_one("SELECT botai_position_reconcile($1, 'BTCUSDT', 0.001, 40000)", &[&EXCHANGE])
        .await
        .unwrap()
        .get(0);
    assert_eq!(correction, Decimal::new(1, 3));
    // A position 0.6.0 left without an entry: its closing fill is booked.
    db.batch_execute(&format!("UPDATE botai.positions SET avg_entry = NULL WHERE exchange = '{EXCHANGE}'"))
        .await
        .unwrap();
    let sell = signals(&db, 1, "SELL", "entry-sell").await[0];
    let one = Decimal::new(1, 3);
    let (order, asset, r) = reserve(c, engine, sell, one).await;
    let Reserved::Ok { reservation, .. } = r else { panic!("{r:?}") };
    fill(c, engine, order, &asset, reservation, one, PRICE).await;
    let (qty, status): (Decimal, String) = {
        let r = db
            .query_one(
                "SELECT p.qty, o.status FROM botai.positions p, botai.orders o WHERE p.exchange = $1 AND o.order_id = $2",
                &[&EXCHANGE, &order],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((qty, status.as_str()), (Decimal::ZERO, "filled"), "the closing fill is recorded");
}
