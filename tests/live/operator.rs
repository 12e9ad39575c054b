//! The operator's commands: `botai exchange check` and orders by hand.

use botai_tests::TestDatabase;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_checks_the_key_and_trades_by_hand_through_botai() {
    let db = TestDatabase::migrated(&[]).await;
    let start_double = |withdraw: bool| {
        let env = vec![
            ("PAPER_API_KEY", KEY.to_owned()),
            ("PAPER_API_SECRET", SECRET.to_owned()),
            ("PAPER_KEY_CAN_WITHDRAW", withdraw.to_string()),
        ];
        Daemon::double_starting("double", &db.name, &env)
    };
    let (double, url) = start_double(false);
    double.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let env = |url: &str, secret: &str| {
        vec![
            ("EXCHANGE", "bybit".to_owned()),
            ("BYBIT_REST_URL", url.to_owned()),
            ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
            ("BYBIT_API_KEY", KEY.to_owned()),
            ("BYBIT_API_SECRET", secret.to_owned()),
        ]
    };

    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["exchange", "check"]);
    assert!(ok, "{out}");
    for line in
        ["clock", "key          accepted", "permissions  ContractTrade", "balance      USDT 10000", "ready to trade"]
    {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains(SECRET), "the secret never printed");
    let (ok, out) = botai(&db.name, &env(&url, "wrong-secret"), &["exchange", "check"]);
    assert!(!ok && out.contains("10004"), "a wrong secret fails the check:\n{out}");

    // A key that can withdraw is refused unless the operator says so.
    let (withdrawing, wurl) = start_double(true);
    withdrawing.wait_for_output("paper exchange serving", Duration::from_secs(30)).await;
    let (ok, out) = botai(&db.name, &env(&wurl, SECRET), &["exchange", "check"]);
    assert!(!ok && out.contains("can WITHDRAW"), "{out}");
    let (ok, out) = botai(&db.name, &env(&wurl, SECRET), &["exchange", "check", "--allow-withdraw-permission"]);
    assert!(ok && out.contains("WARNING: the key can withdraw"), "{out}");

    // A market order, by hand: booked, funded, filled, recorded — once at the exchange.
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.001"]);
    assert!(ok && out.contains("filled"), "{out}");
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.00001"]);
    assert!(!ok && out.contains("does not meet"), "a quantity off the rules is refused before the venue:\n{out}");
    // A limit order far below the market rests; cancelling it ends it.
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "buy", "BTCUSDT", "0.001", "--price", "10000"]);
    assert!(ok && out.contains("not final yet"), "{out}");
    let client = db.connect().await;
    let id: String = client
        .query_one(
            "SELECT client_order_id FROM botai.orders o JOIN botai.signals s USING (signal_id) \
                    WHERE s.payload->>'limit_price' = '10000'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["order", "cancel", &id]);
    assert!(ok, "{out}");
    let orders = get(&format!("{url}/botai-double/orders")).await;
    let statuses: Vec<(String, String)> = orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["kind"].as_str().unwrap().to_owned(), o["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        statuses,
        vec![("Market".to_owned(), "Filled".to_owned()), ("Limit".to_owned(), "Cancelled".to_owned())],
        "at the exchange: the market order once, filled; the limit order cancelled; nothing else"
    );
    let (ok, out) = botai(&db.name, &env(&url, SECRET), &["orders"]);
    assert!(ok && out.contains("filled") && out.contains(&id), "{out}");
    let committed: i64 = client
        .query_one("SELECT count(*) FROM botai.reservations WHERE status IN ('committed', 'retired')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(committed, 1, "the market order's funds were reserved and committed");
}
