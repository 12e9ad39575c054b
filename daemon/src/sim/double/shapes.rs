//! The double answers in the venues' documented shapes: what it serialises
//! for an order, an execution, a position, a wallet and a key, field by
//! field against the same messages in the venues' own examples
//! (`tests/fixtures/venues/`, read by `exchange::fixtures`).

use rust_decimal::Decimal;

use super::{binance_state as bn_double, bybit as by_double};
use crate::exchange::fixtures::{d, read};
use crate::exchange::{Category, Side};
use crate::sim::venue::tests::{settings, Fixed};
use crate::sim::venue::{OrderKind, Placement, Venue};

/// The JSON type of a value, for comparing shapes.
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Every field the double sends is one the venue documents for the same
/// message, with the same JSON type (`documented` holds each field's type
/// as the examples show it); `what` names the message.
fn same_shape(what: &str, ours: &serde_json::Value, documented: &std::collections::BTreeMap<String, &'static str>) {
    let ours = ours.as_object().unwrap_or_else(|| panic!("{what}: the double's answer is no object"));
    for (key, value) in ours {
        let Some(doc) = documented.get(key) else {
            panic!("{what}: the double sends {key:?}, which the venue's examples never show")
        };
        assert_eq!(kind(value), *doc, "{what}.{key}: the double sends a {}, the venue a {doc}", kind(value));
    }
}

/// The fields (and their types) of every object at `pointer` in the given
/// examples of one message.
fn documented_fields(examples: &[(&str, &str, &str)]) -> std::collections::BTreeMap<String, &'static str> {
    let mut fields = std::collections::BTreeMap::new();
    for (venue, file, pointer) in examples {
        let v: serde_json::Value = read(venue, file);
        let items: Vec<&serde_json::Value> = match v.pointer(pointer) {
            Some(serde_json::Value::Array(list)) => list.iter().collect(),
            Some(one) => vec![one],
            None => panic!("{venue}/{file} has nothing at {pointer}"),
        };
        for item in items {
            for (k, value) in item.as_object().into_iter().flatten() {
                fields.insert(k.clone(), kind(value));
            }
        }
    }
    fields
}

/// The double answers in the documented shapes: an order, an execution, a
/// position and a wallet of the simulated venue, serialised by the double,
/// against the same messages in the venues' own examples.
#[test]
fn the_doubles_answers_have_the_documented_shapes() {
    use std::sync::{Arc, Mutex};

    let prices = Arc::new(Fixed(Mutex::new(Decimal::new(40_000, 0))));
    let venue = Venue::new(settings(std::time::Duration::ZERO), "BTCUSDT", "BTC", "USDT", prices);
    let placement = Placement {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
        side: Side::Buy,
        kind: OrderKind::Market,
        qty: d("0.01"),
        quote_qty: false,
        price: None,
        trigger: None,
        link_id: Some("shape-1".into()),
        reduce_only: false,
        link_unique_while_open: false,
    };
    venue.place(&placement).unwrap();
    venue.advance();
    let order = venue.orders().pop().unwrap();
    let execution = venue.executions().pop().unwrap();
    let (symbol, position) = venue.positions().into_iter().next().unwrap();

    let orders = documented_fields(&[
        ("bybit", "order-realtime.json", "/result/list"),
        ("bybit", "order-history.json", "/result/list"),
        ("bybit", "ws.private.order.json", "/data"),
    ]);
    same_shape("bybit order", &by_double::order_json(&order), &orders);
    let executions = documented_fields(&[
        ("bybit", "execution-list.json", "/result/list"),
        ("bybit", "ws.private.execution.json", "/data"),
    ]);
    same_shape("bybit execution", &by_double::execution_json(&execution), &executions);
    let positions = documented_fields(&[
        ("bybit", "position-list.inverse.json", "/result/list"),
        ("bybit", "ws.private.position.json", "/data"),
    ]);
    same_shape("bybit position", &by_double::position_json(&venue, &symbol, &position), &positions);
    let accounts = documented_fields(&[
        ("bybit", "wallet-balance.unified.json", "/result/list"),
        ("bybit", "ws.private.wallet.json", "/data"),
    ]);
    let account = serde_json::to_value(by_double::wallet_account(&venue)).unwrap();
    let mut top = account.clone();
    top.as_object_mut().unwrap().remove("coin");
    same_shape("bybit wallet", &top, &accounts);
    let coins = documented_fields(&[
        ("bybit", "wallet-balance.unified.json", "/result/list/0/coin"),
        ("bybit", "ws.private.wallet.json", "/data/0/coin"),
    ]);
    for c in account["coin"].as_array().unwrap() {
        same_shape("bybit wallet coin", c, &coins);
    }

    let info = documented_fields(&[("bybit", "account-info.json", "/result")]);
    same_shape("bybit account info", &serde_json::to_value(by_double::account_info()).unwrap(), &info);
    let key = documented_fields(&[("bybit", "user-query-api.json", "/result")]);
    same_shape("bybit api key", &serde_json::to_value(by_double::api_key(&venue)).unwrap(), &key);

    let orders = documented_fields(&[
        ("binance", "order.new.json", ""),
        ("binance", "order.query.json", ""),
        ("binance", "order.cancel.json", ""),
        ("binance", "openOrders.json", ""),
    ]);
    same_shape("binance order", &bn_double::order_json(&order), &orders);
    let balances = documented_fields(&[("binance", "balance.v2.json", "")]);
    for b in bn_double::balance_list(&venue) {
        same_shape("binance balance", &serde_json::to_value(b).unwrap(), &balances);
    }
    let risks = documented_fields(&[
        ("binance", "positionRisk.v2.one-way.json", ""),
        ("binance", "positionRisk.v2.hedge.json", ""),
    ]);
    for p in bn_double::position_risks(&venue) {
        same_shape("binance position", &serde_json::to_value(p).unwrap(), &risks);
    }
    let account = serde_json::to_value(bn_double::account(&venue)).unwrap();
    let mut top = account.clone();
    top.as_object_mut().unwrap().retain(|k, _| k != "assets" && k != "positions");
    let documented = [("binance", "account.v2.single-asset.json", ""), ("binance", "account.v2.multi-assets.json", "")];
    same_shape("binance account", &top, &documented_fields(&documented));
    let assets = documented_fields(&documented.map(|(v, f, _)| (v, f, "/assets")));
    let positions = documented_fields(&documented.map(|(v, f, _)| (v, f, "/positions")));
    assert!(!account["positions"].as_array().unwrap().is_empty(), "the venue holds the position opened above");
    for a in account["assets"].as_array().unwrap() {
        same_shape("binance account asset", a, &assets);
    }
    for p in account["positions"].as_array().unwrap() {
        same_shape("binance account position", p, &positions);
    }
    let key = serde_json::to_value(bn_double::api_restrictions(&venue)).unwrap();
    same_shape("binance api key", &key, &documented_fields(&[("binance", "apiRestrictions.json", "")]));
}
