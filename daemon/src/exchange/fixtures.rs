//! The venues' documented examples (`tests/fixtures/venues/`, each with the
//! page it came from in that folder's SOURCES.md) read through the model
//! types the adapters use: every example of an endpoint or stream botai
//! uses parses, and says what the documentation says it says. Every file
//! of the folders is either read here or listed as not read, with why, so
//! a new fixture cannot sit there untested.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use super::binance::models as bn;
use super::bybit::models as by;
use super::{Category, ForcedClose, OrderStatus, Side};

fn dir(venue: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/venues").join(venue)
}

pub(crate) fn read<T: DeserializeOwned>(venue: &str, file: &str) -> T {
    let path = dir(venue).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{venue}/{file} does not parse into its model: {e}"))
}

pub(crate) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Every .json of a venue's folder is in `read` or `not_read`.
fn all_accounted_for(venue: &str, read: &[&str], not_read: &[(&str, &str)]) {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir(venue))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> =
        read.iter().copied().chain(not_read.iter().map(|(f, _)| *f)).map(str::to_owned).collect();
    assert_eq!(on_disk, listed, "{venue}: every fixture is read by a test or listed as not read, with why");
}

const BYBIT_READ: &[&str] = &[
    "account-info.json",
    "execution-list.json",
    "instruments-info.linear.json",
    "instruments-info.linear.prelisting.json",
    "instruments-info.spot.json",
    "kline.inverse.json",
    "market-time.json",
    "order-cancel.json",
    "order-create.json",
    "order-history.json",
    "order-realtime.json",
    "position-list.inverse.json",
    "tickers.inverse.json",
    "tickers.spot.json",
    "user-query-api.json",
    "wallet-balance.unified.json",
    "ws.private.auth.request.json",
    "ws.private.auth.response.json",
    "ws.private.execution.json",
    "ws.private.order.json",
    "ws.private.pong.json",
    "ws.private.position.json",
    "ws.private.wallet.json",
    "ws.public.kline.json",
    "ws.public.pong.linear.json",
    "ws.public.pong.option-spread.json",
    "ws.public.pong.spot.json",
    "ws.subscribe.request.json",
    "ws.subscribe.response.private.json",
    "ws.subscribe.response.public-linear.json",
    "ws.subscribe.response.public-spot.json",
];

const BYBIT_NOT_READ: &[(&str, &str)] = &[
    ("execution-list.pre-upgrade.funding.json", "/v5/pre-upgrade/execution/list: botai never calls it"),
    ("ws.public.all-liquidation.json", "the market's liquidations: botai does not subscribe"),
    ("ws.public.tickers.linear-futures.json", "the tickers topic: botai asks REST for the last price"),
    ("ws.public.tickers.linear-perpetual.json", "the tickers topic: botai asks REST for the last price"),
    ("ws.public.tickers.spot.json", "the tickers topic: botai asks REST for the last price"),
    (
        "ws.subscribe.response.public-option-spread.json",
        "the options and spread streams' COMMAND_RESP: botai trades neither",
    ),
    ("ws.trade.auth.response.json", "the order-entry stream: botai places orders over REST"),
    ("ws.trade.order-create-batch.response.json", "the order-entry stream: botai places orders over REST"),
    ("ws.trade.order-create.response.json", "the order-entry stream: botai places orders over REST"),
    ("ws.trade.pong.json", "the order-entry stream: botai places orders over REST"),
];

#[test]
fn every_bybit_fixture_is_accounted_for() {
    all_accounted_for("bybit", BYBIT_READ, BYBIT_NOT_READ);
}

#[test]
fn bybit_rest_examples_parse_into_the_adapters_models() {
    let info: by::Response<by::AccountInfo> = read("bybit", "account-info.json");
    assert_eq!((info.result.unified_margin_status, info.result.margin_mode.as_str()), (4, "REGULAR_MARGIN"));

    // The documented key is read only though its groups list trading
    // words: it cannot trade; its Wallet group has no Withdraw.
    let key: by::Response<by::ApiKeyInfo> = read("bybit", "user-query-api.json");
    let info = super::bybit::parse_key_info(&key.result);
    assert!(info.read_only && !info.can_trade && !info.can_withdraw, "{info:?}");
    assert_eq!(info.ips.len(), 3);
    assert!(info.permissions.contains("ContractTrade: Order+Position"), "{}", info.permissions);

    let time: by::Response<by::ServerTime> = read("bybit", "market-time.json");
    assert_eq!(time.result.time_nano, "1688639403423213947");

    for file in ["order-create.json", "order-cancel.json"] {
        let ack: by::Response<by::OrderAck> = read("bybit", file);
        assert!(!ack.result.order_id.is_empty(), "{file}");
    }

    for file in ["order-realtime.json", "order-history.json"] {
        let page: by::Response<by::Page<by::Order>> = read("bybit", file);
        assert!(!page.result.list.is_empty(), "{file}");
        for o in &page.result.list {
            let state = super::bybit::parse_order(o, Category::Linear).unwrap();
            assert_eq!(state.exchange_order_id, o.order_id);
            // What the venue said about the order is kept; EC_NoError is nothing.
            let said = Some(o.reject_reason.clone()).filter(|r| r != "EC_NoError");
            assert_eq!(state.venue_reason, said);
        }
    }
    let history: by::Response<by::Page<by::Order>> = read("bybit", "order-history.json");
    let reasons: Vec<Option<String>> = history
        .result
        .list
        .iter()
        .map(|o| super::bybit::parse_order(o, Category::Spot).unwrap().venue_reason)
        .collect();
    assert!(
        reasons.contains(&Some("EC_PostOnlyWillTakeLiquidity".into())),
        "the documented post-only order cancelled for taking liquidity keeps the venue's reason: {reasons:?}"
    );
    let open: by::Response<by::Page<by::Order>> = read("bybit", "order-realtime.json");
    let o = &open.result.list[0];
    assert_eq!((o.order_status, o.position_idx, o.stop_order_type.as_str()), (by::OrderStatus::New, 1, "UNKNOWN"));

    let executions: by::Response<by::Page<by::Execution>> = read("bybit", "execution-list.json");
    assert!(executions.result.list.iter().all(|e| e.exec_type == by::ExecType::Trade));

    for file in
        ["instruments-info.linear.json", "instruments-info.linear.prelisting.json", "instruments-info.spot.json"]
    {
        let page: by::Response<by::Page<by::InstrumentInfo>> = read("bybit", file);
        for i in &page.result.list {
            let rules = super::bybit::parse_instrument(i).unwrap();
            assert!(rules.qty_step > Decimal::ZERO && rules.tick_size > Decimal::ZERO, "{file}: {rules:?}");
        }
    }

    let klines: by::Response<by::KlineList> = read("bybit", "kline.inverse.json");
    assert_eq!(klines.result.list[0][0], "1670608800000");

    for file in ["tickers.inverse.json", "tickers.spot.json"] {
        let page: by::Response<by::Page<by::Ticker>> = read("bybit", file);
        assert!(page.result.list[0].last_price.known().is_some(), "{file}");
    }

    // The documented inverse position: a short of 300 at 27464.50441675.
    let page: by::Response<by::Page<by::Position>> = read("bybit", "position-list.inverse.json");
    let p = super::bybit::parse_position(&page.result.list[0]).unwrap().unwrap();
    assert_eq!((p.size, p.entry_price, p.leg), (d("-300"), d("27464.50441675"), None));
    assert_eq!(page.result.list[0].liq_price.known(), None, "liqPrice \"\" is not given, not 0");
}

#[test]
fn bybit_wallet_example_reads_own_funds_by_the_venues_figures() {
    let page: by::Response<by::Page<by::WalletAccount>> = read("bybit", "wallet-balance.unified.json");
    let account = &page.result.list[0];
    assert_eq!(account.account_type, by::AccountType::Unified);
    // BTC: walletBalance 0, availableToWithdraw 0: nothing of its own.
    let btc = account.coin[0].funds(account).unwrap();
    assert_eq!((btc.own, btc.available), (Decimal::ZERO, Decimal::ZERO));
    let w = super::bybit::parse_wallet(&page.result.list, chrono::Utc::now()).unwrap();
    assert_eq!(w.available("BTC"), Decimal::ZERO);
}

#[test]
fn bybit_stream_examples_parse_into_the_adapters_models() {
    let auth: by::OpRequest = read("bybit", "ws.private.auth.request.json");
    assert_eq!((auth.op.as_str(), auth.args.len()), ("auth", 3));
    let subscribe: by::OpRequest = read("bybit", "ws.subscribe.request.json");
    assert_eq!(subscribe.op, "subscribe");
    for file in [
        "ws.private.auth.response.json",
        "ws.subscribe.response.private.json",
        "ws.subscribe.response.public-linear.json",
        "ws.subscribe.response.public-spot.json",
        "ws.public.pong.linear.json",
        "ws.public.pong.spot.json",
    ] {
        let answer: by::OpResponse = read("bybit", file);
        assert_eq!(answer.success, Some(true), "{file}");
    }
    // The private stream's pong (and the options stream's) carries no success.
    for file in ["ws.private.pong.json", "ws.public.pong.option-spread.json"] {
        let pong: by::OpResponse = read("bybit", file);
        assert_eq!((pong.op.as_str(), pong.success), ("pong", None), "{file}");
    }

    let orders: by::Push<by::Order> = read("bybit", "ws.private.order.json");
    let o = &orders.data[0];
    assert_eq!((o.order_status, o.category.as_deref()), (by::OrderStatus::Filled, Some("option")));
    let state = super::bybit::parse_order(o, Category::Linear).unwrap();
    assert_eq!((state.status, state.filled_qty, state.fee), (OrderStatus::Filled, d("1"), d("0.358635")));

    let executions: by::Push<by::Execution> = read("bybit", "ws.private.execution.json");
    let e = &executions.data[0];
    assert_eq!((e.exec_type, e.exec_pnl), (by::ExecType::Trade, Some(by::Figure::of(d("0.05")))));
    assert_eq!(super::bybit::stream::account_event(e), None, "a trade of ours is no account event");

    // The position topic names the entry price entryPrice; a flat hedge leg has side "".
    let positions: by::Push<by::Position> = read("bybit", "ws.private.position.json");
    let leg = &positions.data[0];
    assert_eq!((leg.position_idx, leg.side, leg.size.known()), (2, by::PositionSide::Flat, Some(Decimal::ZERO)));
    assert_eq!(super::bybit::parse_position(leg).unwrap(), None);

    let wallets: by::Push<by::WalletAccount> = read("bybit", "ws.private.wallet.json");
    let account = &wallets.data[0];
    assert_eq!(account.coin[0].total_order_im.known(), None, "\"\" under cross margin: not given");
    let btc = account.coin[0].funds(account).unwrap();
    assert_eq!(btc.own, d("0.00102964"));

    let klines: by::PublicPush<Vec<by::WsKline>> = read("bybit", "ws.public.kline.json");
    assert_eq!((klines.topic.as_str(), klines.data[0].confirm), ("kline.5.BTCUSDT", false));
}

/// The forced-close executions, in the documented shape of an execution
/// with the documented execType words (the documentation shows none).
#[test]
fn bybit_forced_closes_and_funding_are_account_events() {
    let executions: by::Push<by::Execution> = read("bybit", "ws.private.execution.json");
    for (word, kind) in
        [("AdlTrade", ForcedClose::Adl), ("BustTrade", ForcedClose::Liquidation), ("Delivery", ForcedClose::Delisting)]
    {
        let mut e = serde_json::to_value(&executions.data[0]).unwrap();
        e["execType"] = serde_json::json!(word);
        let e: by::Execution = serde_json::from_value(e).unwrap();
        match super::bybit::stream::account_event(&e) {
            Some(super::AccountEvent::ForcedClose { kind: k, side, qty, price, fee, .. }) => {
                assert_eq!((k, side, qty, price, fee), (kind, Side::Sell, d("0.5"), d("95900.1"), d("26.3725275")))
            }
            other => panic!("{word}: {other:?}"),
        }
    }
    let mut e = serde_json::to_value(&executions.data[0]).unwrap();
    e["execType"] = serde_json::json!("Funding");
    let e: by::Execution = serde_json::from_value(e).unwrap();
    assert!(matches!(
        super::bybit::stream::account_event(&e),
        Some(super::AccountEvent::Funding { amount, .. }) if amount == d("26.3725275")
    ));
}

const BINANCE_READ: &[&str] = &[
    "account.v2.multi-assets.json",
    "account.v2.single-asset.json",
    "account.v3.multi-assets.json",
    "account.v3.single-asset.json",
    "apiRestrictions.json",
    "balance.v2.json",
    "balance.v3.json",
    "error.json",
    "exchangeInfo.json",
    "exchangeInfo.snapshot-2025-05.json",
    "listenKey.post.json",
    "listenKey.put.json",
    "openOrder.json",
    "openOrders.json",
    "order.cancel.json",
    "order.new.json",
    "order.new.snapshot-2025-05.json",
    "order.query.json",
    "positionRisk.v2.hedge.json",
    "positionRisk.v2.one-way.json",
    "positionRisk.v3.hedge.json",
    "positionRisk.v3.one-way.json",
    "positionSide.dual.get.json",
    "positionSide.dual.post.json",
    "ticker.price.all.json",
    "ticker.price.single.json",
    "time.json",
    "ws.ACCOUNT_UPDATE.json",
    "ws.MARGIN_CALL.json",
    "ws.ORDER_TRADE_UPDATE.json",
    "ws.ORDER_TRADE_UPDATE.snapshot-2025-05.json",
    "ws.TRADE_LITE.json",
    "ws.listenKeyExpired.json",
    "ws.listenKeyExpired.snapshot-2025-05.json",
];

const BINANCE_NOT_READ: &[(&str, &str)] = &[
    ("forceOrders.json", "/fapi/v1/forceOrders: the user stream carries forced closes"),
    ("klines.json", "botai's market data comes from Bybit or the replay"),
    ("listenKey.delete.json", "an empty object: botai never deletes its key"),
    ("premiumIndex.all.json", "mark prices: botai marks at the last price"),
    ("premiumIndex.single.json", "mark prices: botai marks at the last price"),
    ("ticker.bookTicker.all.json", "botai asks /fapi/v1/ticker/price"),
    ("ticker.bookTicker.single.json", "botai asks /fapi/v1/ticker/price"),
    ("userTrades.json", "/fapi/v1/userTrades: fees come from the user stream"),
    ("userTrades.snapshot-2025-05.json", "/fapi/v1/userTrades: fees come from the user stream"),
    ("ws.bookTicker.json", "market streams: botai does not subscribe"),
    ("ws.kline.json", "market streams: botai does not subscribe"),
    ("ws.markPriceUpdate.arr.json", "market streams: botai does not subscribe"),
    ("ws.markPriceUpdate.json", "market streams: botai does not subscribe"),
];

#[test]
fn every_binance_fixture_is_accounted_for() {
    all_accounted_for("binance", BINANCE_READ, BINANCE_NOT_READ);
}

#[test]
fn binance_rest_examples_parse_into_the_adapters_models() {
    for file in ["balance.v2.json", "balance.v3.json"] {
        let list: Vec<bn::Balance> = read("binance", file);
        let (total, available) = list[0].funds().unwrap();
        assert!(available <= total, "{file}");
    }
    // The documented USDT: balance 122607.35137903, availableBalance 23.72469206.
    let list: Vec<bn::Balance> = read("binance", "balance.v2.json");
    assert_eq!(list[0].funds().unwrap(), (d("122607.35137903"), d("23.72469206")));

    // /fapi/v2/account and v3: botai reads /fapi/v2/balance, the double
    // answers these for ccxt in the model's shape; every example parses.
    for file in [
        "account.v2.multi-assets.json",
        "account.v2.single-asset.json",
        "account.v3.multi-assets.json",
        "account.v3.single-asset.json",
    ] {
        let account: bn::Account = read("binance", file);
        assert!(!account.assets.is_empty(), "{file}");
        let v3 = file.contains("v3");
        assert_eq!(account.fee_tier.is_none(), v3, "{file}: v3 has no top-level flags");
        assert!(account.positions.iter().all(|p| p.entry_price.is_none() == v3), "{file}");
    }
    let single: bn::Account = read("binance", "account.v2.single-asset.json");
    assert_eq!(single.can_trade, None, "the documented example hides canTrade inside a comment");

    // The documented key may not trade USDⓈ-M futures (portfolio margin).
    let key: bn::ApiRestrictions = read("binance", "apiRestrictions.json");
    let info = super::binance::parse_key_info(&key);
    assert!(info.read_only && !info.can_trade && !info.can_withdraw, "{info:?}");
    assert_eq!(info.permissions, "enableReading");

    let error: bn::ApiError = read("binance", "error.json");
    assert_eq!(error.code, -1121);
    let switched: bn::ApiError = read("binance", "positionSide.dual.post.json");
    assert_eq!(switched.code, 200);
    let mode: bn::PositionMode = read("binance", "positionSide.dual.get.json");
    assert!(mode.dual_side_position);

    for file in ["exchangeInfo.json", "exchangeInfo.snapshot-2025-05.json"] {
        let info: bn::ExchangeInfo = read("binance", file);
        for s in &info.symbols {
            let rules = super::binance::parse_instrument(s).unwrap();
            assert!(rules.qty_step > Decimal::ZERO, "{file}: {rules:?}");
        }
    }
    for file in ["listenKey.post.json", "listenKey.put.json"] {
        let key: bn::ListenKey = read("binance", file);
        assert!(!key.listen_key.is_empty());
    }
    for file in
        ["order.new.json", "order.new.snapshot-2025-05.json", "order.query.json", "order.cancel.json", "openOrder.json"]
    {
        let o: bn::Order = read("binance", file);
        super::binance::parse_order(&o).unwrap();
    }
    let open: Vec<bn::Order> = read("binance", "openOrders.json");
    assert!(!open.is_empty());

    let one: bn::TickerPrice = read("binance", "ticker.price.single.json");
    assert!(one.price.known().is_some());
    let all: Vec<bn::TickerPrice> = read("binance", "ticker.price.all.json");
    assert!(!all.is_empty());
    let time: bn::ServerTime = read("binance", "time.json");
    assert!(time.server_time > 0);

    // One-way: positionSide BOTH, no leg; hedge: LONG and SHORT legs, the
    // SHORT negative, each at the venue's entry price.
    for file in ["positionRisk.v2.one-way.json", "positionRisk.v3.one-way.json"] {
        let list: Vec<bn::PositionRisk> = read("binance", file);
        let positions = super::binance::parse_positions(&list).unwrap();
        assert!(positions.iter().all(|p| p.leg.is_none()), "{file}");
    }
    let list: Vec<bn::PositionRisk> = read("binance", "positionRisk.v2.hedge.json");
    let positions = super::binance::parse_positions(&list).unwrap();
    assert_eq!(positions.len(), 1, "the flat SHORT leg is no position");
    assert_eq!(
        (positions[0].size, positions[0].entry_price, positions[0].leg),
        (d("0.001"), d("22185.2"), Some(Side::Buy))
    );
    let list: Vec<bn::PositionRisk> = read("binance", "positionRisk.v3.hedge.json");
    assert!(list.iter().any(|p| p.position_side != bn::PositionSide::Both));
}

#[test]
fn binance_user_stream_examples_parse_into_the_adapters_models() {
    for file in ["ws.ORDER_TRADE_UPDATE.json", "ws.ORDER_TRADE_UPDATE.snapshot-2025-05.json"] {
        let event: bn::UserEvent = read("binance", file);
        let bn::UserEvent::OrderTradeUpdate { order, .. } = event else { panic!("{file}: {event:?}") };
        assert_eq!(
            (order.order_type, order.status, order.forced_close()),
            (bn::OrderType::TrailingStopMarket, bn::OrderStatus::New, None)
        );
        assert_eq!(order.position_side, bn::PositionSide::Long);
    }
    let event: bn::UserEvent = read("binance", "ws.ACCOUNT_UPDATE.json");
    let bn::UserEvent::AccountUpdate { update, .. } = event else { panic!("{event:?}") };
    assert_eq!(update.reason, bn::AccountUpdateReason::Order);
    assert_eq!(update.balances.len(), 2);
    let short = update.positions.iter().find(|p| p.position_side == bn::PositionSide::Short).unwrap();
    assert_eq!((short.position_amt.known(), short.entry_price.known()), (Some(d("-10")), Some(d("6563.86000"))));

    let event: bn::UserEvent = read("binance", "ws.MARGIN_CALL.json");
    assert!(matches!(event, bn::UserEvent::MarginCall { .. }));
    for file in ["ws.listenKeyExpired.json", "ws.listenKeyExpired.snapshot-2025-05.json"] {
        let event: bn::UserEvent = read("binance", file);
        assert!(matches!(event, bn::UserEvent::ListenKeyExpired { .. }), "{file}");
    }
    // TRADE_LITE repeats what ORDER_TRADE_UPDATE says: read as nothing.
    let event: bn::UserEvent = read("binance", "ws.TRADE_LITE.json");
    assert_eq!(event, bn::UserEvent::Other);
}
