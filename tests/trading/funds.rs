//! The funds an engine sizes its orders from: what a snapshot freed, and
//! nothing of an asset the venue stopped listing.

use chrono::DateTime;

use super::*;

/// The engine sizes orders from the free funds its claim reads. A snapshot
/// that retires committed reservations frees them at once for readers, but
/// only a reservation folds them into the balance row: a claim that read the
/// row alone saw a balance short for good (free USDT -9917 in a `make run`),
/// never reserved, so never folded, and skipped every order after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_reads_the_funds_a_snapshot_freed_before_any_fold() {
    use botai_daemon::db::{Db, OrderCalls, WorkerCalls};
    use rust_decimal::Decimal;

    let t = TestDatabase::migrated(&[]).await;
    let db = t.connect().await;
    db.batch_execute(
        "SET botai.balance_safety_margin = 0; \
         SELECT botai_update_balance('paper', 'USDT', 1000, 1000, 0, now() - interval '1 minute')",
    )
    .await
    .unwrap();
    // Six committed orders spend 600; the next snapshot includes them.
    for _ in 0..6 {
        db.batch_execute(
            "SELECT botai_commit_reservation(botai_reserve_balance('paper', 'USDT', 100, 'order', NULL, '1 minute'))",
        )
        .await
        .unwrap();
    }
    // The snapshot follows the commits within milliseconds: no allowance
    // for clock skew here.
    db.batch_execute("SET botai.balance_clock_skew = 0; SELECT botai_update_balance('paper', 'USDT', 1000, 400, 0)")
        .await
        .unwrap();
    let signal_id: i64 = db
        .query_one(
            "SELECT signal_id FROM botai_register_signal(jsonb_build_object('symbol', 'BTCUSDT', \
               'direction', 'BUY', 'strategy', 'test', 'timestamp', $1::text, 'price', 40000))",
            &[&Utc::now().to_rfc3339()],
        )
        .await
        .unwrap()
        .get(0);

    let pg = botai_tests::pg_settings(&t.name);
    let engine = Db::connect(&pg, "botai-tests engine").await.unwrap();
    let id = engine.register_worker("trading_engine", Some("engine-f"), &serde_json::json!({})).await.unwrap();
    let id = id.expect("a trading_engine slot");
    let claimed = engine.order_claim(&[signal_id], &id, "paper", &["BTCUSDT"], Some(("USDT", "BTC"))).await.unwrap();
    let (_, free) = claimed.into_iter().next().and_then(|c| c.owned()).expect("the order is ours");
    assert_eq!(free, Some(Decimal::new(400, 0)), "free USDT after the snapshot retired 600");
}

/// A venue lists only the coins an account holds: once BTC is sold to
/// nothing, Bybit's unified wallet no longer names it. botai must not keep
/// the last BTC balance (the engine would SELL coins the account lacks).
#[tokio::test(flavor = "multi_thread")]
async fn an_asset_the_venue_stops_listing_is_empty_in_botai() {
    use async_trait::async_trait;
    use botai_daemon::exchange::{AssetBalance, Exchange, ExchangeError, Instrument, OrderRequest, OrderState, Wallet};
    use botai_daemon::trading::balance_sync::{sync_once, Snapshot};
    use rust_decimal::Decimal;

    /// A venue that answers a wallet of USDT only.
    struct UsdtOnly;
    #[async_trait]
    impl Exchange for UsdtOnly {
        fn name(&self) -> &str {
            "paper"
        }
        async fn place_order(&self, _: &OrderRequest) -> Result<OrderState, ExchangeError> {
            unreachable!()
        }
        async fn order(&self, _: &str, _: &str) -> Result<Option<OrderState>, ExchangeError> {
            unreachable!()
        }
        async fn cancel_order(&self, _: &str, _: &str) -> Result<(), ExchangeError> {
            unreachable!()
        }
        async fn open_orders(&self, _: &str) -> Result<Vec<OrderState>, ExchangeError> {
            unreachable!()
        }
        async fn wallet(&self) -> Result<Wallet, ExchangeError> {
            let usdt = Decimal::new(1000, 0);
            Ok(Wallet {
                as_of: Utc::now(),
                assets: vec![AssetBalance {
                    asset: "USDT".into(),
                    total: usdt,
                    available: usdt,
                    locked: Decimal::ZERO,
                }],
            })
        }
        async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
            Ok(Utc::now())
        }
        async fn instrument(&self, _: &str) -> Result<Instrument, ExchangeError> {
            unreachable!()
        }
        async fn last_price(&self, _: &str) -> Result<Decimal, ExchangeError> {
            unreachable!()
        }
    }

    let t = TestDatabase::migrated(&[]).await;
    let db = t.connect().await;
    db.batch_execute(
        "SELECT botai_update_balance('paper', 'BTC', 0.5, 0.5, 0, now() - interval '1 minute'); \
         SELECT botai_update_balance('paper', 'USDT', 10, 10, 0, now() - interval '1 minute'); \
         SELECT botai_update_balance('elsewhere', 'BTC', 2, 2, 0, now() - interval '1 minute')",
    )
    .await
    .unwrap();
    let pg = botai_tests::pg_settings(&t.name);
    let pool = botai_daemon::db::pool(&pg, "botai-tests sync", 2).unwrap();
    sync_once(&UsdtOnly, &pool, &Snapshot::default()).await.unwrap();
    let balances: BTreeMap<(String, String), Decimal> = db
        .query("SELECT exchange, asset, total FROM botai.balances", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let of = |x: &str, a: &str| balances[&(x.to_owned(), a.to_owned())];
    assert_eq!(of("paper", "BTC"), Decimal::ZERO, "BTC is no longer listed: empty, not 0.5");
    assert_eq!(of("paper", "USDT"), Decimal::new(1000, 0));
    assert_eq!(of("elsewhere", "BTC"), Decimal::new(2, 0), "another exchange's balance is not touched");
}
