//! Bybit V5's market endpoints on the venue: `/v5/market/instruments-info`
//! and `/v5/market/tickers` (`/v5/market/kline` is bybit_public.rs's).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{category, Answer};
use crate::exchange::Category;
use crate::sim::venue::Venue;

pub(super) fn instruments(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    let c = match category(q.get("category").map(String::as_str)) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let cat = q.get("category").cloned().unwrap_or_default();
    let list: Vec<Value> = c
        .map(|c| venue.instruments(c))
        .unwrap_or_default()
        .into_iter()
        .filter(|i| q.get("symbol").is_none_or(|s| *s == i.symbol))
        .filter(|_| q.get("status").is_none_or(|s| s == "Trading"))
        .map(|i| match c {
            Some(Category::Linear) => json!({
                "symbol": i.symbol, "contractType": "LinearPerpetual", "status": "Trading",
                "baseCoin": i.base, "quoteCoin": i.quote, "settleCoin": i.quote,
                "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": i.tick_size.to_string()},
                "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": i.min_qty.to_string(),
                                  "qtyStep": i.qty_step.to_string(), "postOnlyMaxOrderQty": "1190.000",
                                  "maxMktOrderQty": "500.000", "minNotionalValue": i.min_notional.to_string()},
                "unifiedMarginTrade": true, "fundingInterval": 480, "copyTrading": "both",
                "upperFundingRate": "0.005", "lowerFundingRate": "-0.005", "isPreListing": false,
            }),
            _ => json!({
                "symbol": i.symbol, "baseCoin": i.base, "quoteCoin": i.quote, "innovation": "0",
                "status": "Trading", "marginTrading": "utaOnly",
                "lotSizeFilter": {"basePrecision": i.qty_step.to_string(), "quotePrecision": "0.00000001",
                                  "minOrderQty": i.min_qty.to_string(), "maxOrderQty": "71.73956243",
                                  "minOrderAmt": i.min_notional.to_string(), "maxOrderAmt": "2000000"},
                "priceFilter": {"tickSize": i.tick_size.to_string()},
                "riskParameters": {"limitParameter": "0.03", "marketParameter": "0.03"},
            }),
        })
        .collect();
    Answer::ok(json!({"category": cat, "list": list, "nextPageCursor": ""}))
}

pub(super) fn tickers(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    let c = match category(q.get("category").map(String::as_str)) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let list: Vec<Value> = c
        .map(|c| venue.instruments(c))
        .unwrap_or_default()
        .into_iter()
        .filter(|i| q.get("symbol").is_none_or(|s| *s == i.symbol))
        .filter_map(|i| {
            let p = venue.price(&i.symbol)?.to_string();
            Some(json!({"symbol": i.symbol, "lastPrice": p, "bid1Price": p, "ask1Price": p,
                        "bid1Size": "1", "ask1Size": "1", "volume24h": "0", "turnover24h": "0"}))
        })
        .collect();
    Answer::ok(json!({"category": q.get("category"), "list": list}))
}
