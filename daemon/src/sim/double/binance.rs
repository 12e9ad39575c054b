//! Binance USDⓈ-M futures over HTTP (`/fapi/`), as Binance documents it,
//! on the simulated venue's linear market.
//!
//! - SIGNED endpoints need X-MBX-APIKEY and `timestamp` (+ `recvWindow`,
//!   5000 by default, at most 60000) and `signature`: HMAC-SHA256 (hex) of
//!   the query string followed by the form body, exactly as received,
//!   without the signature itself. Unknown key: -2015 (HTTP 401); bad
//!   signature: -1022; `timestamp` outside `[server − recvWindow, server +
//!   1000)`: -1021.
//! - Limits: request weight per minute of the address (2400; every answer
//!   says X-MBX-USED-WEIGHT-1M), orders per 10 s (300) and per minute (1200)
//!   of the account (X-MBX-ORDER-COUNT-10S / -1M on order answers). Broken:
//!   HTTP 429 with Retry-After; a banned address (the `ban_seconds` fault):
//!   HTTP 418.
//! - Errors are `{"code": -NNNN, "msg": …}` with HTTP 400 (401 for keys).
//! - A client order id is unique among *open* orders only (-4116); a
//!   closed order's id may be used again — so a client that retries must
//!   look the order up first.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::binance_state::{account, api_restrictions, balance_list, exchange_info, order_json, position_risks};
use crate::exchange::{sign, Category, Side};
use crate::sim::venue::{LimitClass, LoggedRequest, OrderKind, PlaceError, Placement, Refusal, Venue, VenueOrder};

struct Answer {
    status: StatusCode,
    body: Value,
    /// The code of an error answer (0 for success), for the request log.
    code: i64,
    order_counts: bool,
    retry_after: Option<Duration>,
}

fn ok(body: Value) -> Answer {
    Answer { status: StatusCode::OK, body, code: 0, order_counts: false, retry_after: None }
}

fn error(status: StatusCode, code: i64, msg: impl Into<String>) -> Answer {
    let msg = msg.into();
    Answer { status, body: json!({"code": code, "msg": msg}), code, order_counts: false, retry_after: None }
}

fn bad(code: i64, msg: impl Into<String>) -> Answer {
    error(StatusCode::BAD_REQUEST, code, msg)
}

/// (weight, signed, counts as an order) of an endpoint.
fn endpoint(method: &Method, path: &str) -> Option<(u32, bool, bool)> {
    Some(match (method.as_str(), path) {
        ("GET", "/fapi/v1/ping" | "/fapi/v1/time" | "/fapi/v1/exchangeInfo") => (1, false, false),
        ("GET", "/fapi/v1/ticker/price") => (1, false, false),
        ("POST", "/fapi/v1/order") => (0, true, true),
        ("DELETE", "/fapi/v1/order") => (1, true, false),
        ("GET", "/fapi/v1/order") => (1, true, false),
        ("GET", "/fapi/v1/openOrders") => (1, true, false),
        ("GET", "/fapi/v1/allOrders" | "/fapi/v1/userTrades") => (5, true, false),
        ("GET", "/fapi/v2/balance" | "/fapi/v3/balance") => (5, true, false),
        ("GET", "/fapi/v2/account" | "/fapi/v3/account") => (5, true, false),
        ("GET", "/fapi/v2/positionRisk" | "/fapi/v3/positionRisk") => (5, true, false),
        ("GET", "/fapi/v1/leverageBracket" | "/fapi/v1/commissionRate" | "/fapi/v1/positionSide/dual") => {
            (1, true, false)
        }
        ("GET", "/fapi/v1/apiTradingStatus") => (1, true, false),
        // The spot API's coin list, which ccxt loads with the markets.
        ("GET", "/sapi/v1/capital/config/getall") => (10, true, false),
        ("GET", "/sapi/v1/margin/allPairs" | "/sapi/v1/margin/isolated/allPairs") => (1, true, false),
        ("GET", "/sapi/v1/account/apiRestrictions") => (1, true, false),
        ("POST" | "PUT" | "DELETE", "/fapi/v1/listenKey") => (1, false, false),
        _ => return None,
    })
}

pub async fn handle(venue: &Venue, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let api_key = headers.get("X-MBX-APIKEY").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut logged = LoggedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        body: raw_body.clone(),
        api_key,
        signature_valid: None,
        status: 200,
        code: 0,
    };
    let a = answer(venue, &method, &path, &raw_query, &raw_body, &headers, &mut logged);
    let Some(a) = a else {
        logged.status = 0;
        venue.log_request(logged);
        tokio::time::sleep(Duration::from_secs(120)).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    };
    logged.status = a.status.as_u16();
    logged.code = a.code;
    venue.log_request(logged);
    let mut out = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name, v);
        }
    };
    if let Some(used) = venue.used(LimitClass::Weight) {
        set("X-MBX-USED-WEIGHT-1M", used.to_string());
    }
    if a.order_counts {
        if let Some(n) = venue.used(LimitClass::Orders10s) {
            set("X-MBX-ORDER-COUNT-10S", n.to_string());
        }
        if let Some(n) = venue.used(LimitClass::Orders1m) {
            set("X-MBX-ORDER-COUNT-1M", n.to_string());
        }
    }
    if let Some(r) = a.retry_after {
        set("Retry-After", r.as_secs().max(1).to_string());
    }
    if a.status.is_server_error() {
        return (a.status, out, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response();
    }
    (a.status, out, axum::Json(a.body)).into_response()
}

fn answer(
    venue: &Venue,
    method: &Method,
    path: &str,
    raw_query: &str,
    raw_body: &str,
    headers: &HeaderMap,
    logged: &mut LoggedRequest,
) -> Option<Answer> {
    if venue.take_fault(|f| &mut f.error_5xx) {
        return Some(error(StatusCode::SERVICE_UNAVAILABLE, 0, ""));
    }
    let Some((weight, signed, is_order)) = endpoint(method, path) else {
        return Some(error(StatusCode::NOT_FOUND, -1000, format!("{method} {path}: no such endpoint")));
    };
    // The address's weight first.
    match venue.admit_weighted(&[LimitClass::Weight], weight) {
        Ok(()) => {}
        Err(Refusal::Banned { retry_after }) => {
            let mut a = error(StatusCode::IM_A_TEAPOT, -1003, "Way too many requests; IP banned.");
            a.retry_after = Some(retry_after);
            return Some(a);
        }
        Err(Refusal::TooManyVisits { retry_after }) => {
            let mut a = error(
                StatusCode::TOO_MANY_REQUESTS,
                -1003,
                "Too many requests; current limit of IP is 2400 requests per minute. Please use the websocket for live updates to avoid polling the API.",
            );
            a.retry_after = Some(retry_after);
            return Some(a);
        }
    }
    let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    params.extend(url::form_urlencoded::parse(raw_body.as_bytes()).into_owned());
    if signed || path == "/fapi/v1/listenKey" {
        let key = headers.get("X-MBX-APIKEY").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if key.is_empty() {
            return Some(error(StatusCode::UNAUTHORIZED, -2014, "API-key format invalid."));
        }
        if key != venue.settings.api_key {
            return Some(error(StatusCode::UNAUTHORIZED, -2015, "Invalid API-key, IP, or permissions for action."));
        }
    }
    if signed {
        match verify(venue, raw_query, raw_body, &params) {
            Ok(()) => logged.signature_valid = Some(true),
            Err(a) => {
                logged.signature_valid = Some(a.code != -1022);
                return Some(a);
            }
        }
    }
    if is_order {
        if let Err(refusal) = venue.admit(&[LimitClass::Orders10s, LimitClass::Orders1m]) {
            let retry_after = match refusal {
                Refusal::TooManyVisits { retry_after } | Refusal::Banned { retry_after } => retry_after,
            };
            let mut a = error(
                StatusCode::TOO_MANY_REQUESTS,
                -1015,
                "Too many new orders; current limit is 300 orders per 10 SECOND.",
            );
            a.retry_after = Some(retry_after);
            a.order_counts = true;
            return Some(a);
        }
    }
    let params = Params(params);
    let get = |k: &str| params.get(k);
    Some(match (method.as_str(), path) {
        ("GET", "/fapi/v1/ping") => ok(json!({})),
        ("GET", "/fapi/v1/time") => ok(json!({"serverTime": Utc::now().timestamp_millis()})),
        ("GET", "/fapi/v1/exchangeInfo") => ok(exchange_info(venue)),
        ("GET", "/fapi/v1/ticker/price") => {
            let symbol = get("symbol").unwrap_or("BTCUSDT");
            match venue.price(symbol) {
                Some(p) => ok(json!({"symbol": symbol, "price": p.to_string(), "time": Utc::now().timestamp_millis()})),
                None => bad(-1121, "Invalid symbol."),
            }
        }
        ("POST", "/fapi/v1/order") => {
            let mut a = create(venue, &params)?;
            a.order_counts = true;
            a
        }
        ("GET", "/fapi/v1/order") => match find(venue, &params) {
            Some(o) => ok(order_json(&o)),
            None => bad(-2013, "Order does not exist."),
        },
        ("DELETE", "/fapi/v1/order") => match find(venue, &params).filter(|o| o.status.is_open()) {
            Some(o) => match venue.cancel(Category::Linear, Some(&o.order_id), None) {
                Some(c) => ok(order_json(&c)),
                None => bad(-2011, "Unknown order sent."),
            },
            None => bad(-2011, "Unknown order sent."),
        },
        ("GET", "/fapi/v1/openOrders") => {
            let list: Vec<Value> = venue
                .orders()
                .iter()
                .filter(|o| o.category == Category::Linear && o.status.is_open())
                .filter(|o| get("symbol").is_none_or(|s| s == o.symbol))
                .map(order_json)
                .collect();
            ok(json!(list))
        }
        ("GET", "/fapi/v1/allOrders") => {
            let list: Vec<Value> = venue
                .orders()
                .iter()
                .filter(|o| o.category == Category::Linear && get("symbol").is_none_or(|s| s == o.symbol))
                .map(order_json)
                .collect();
            ok(json!(list))
        }
        ("GET", "/fapi/v1/userTrades") => {
            let list: Vec<Value> = venue
                .executions()
                .iter()
                .filter(|e| e.category == Category::Linear && get("symbol").is_none_or(|s| s == e.symbol))
                .map(|e| {
                    let seq = venue.order(Some(&e.order_id), None).map_or(0, |o| o.seq);
                    json!({"symbol": e.symbol, "id": e.exec_id.trim_start_matches("exec-").parse::<u64>().unwrap_or(0),
                           "orderId": seq, "side": if e.side == Side::Buy { "BUY" } else { "SELL" },
                           "price": e.price.to_string(), "qty": e.qty.to_string(),
                           "quoteQty": (e.qty * e.price).normalize().to_string(), "commission": e.fee.to_string(),
                           "commissionAsset": e.fee_asset, "realizedPnl": "0", "positionSide": "BOTH",
                           "buyer": e.side == Side::Buy, "maker": false, "time": e.time_ms})
                })
                .collect();
            ok(json!(list))
        }
        ("GET", "/fapi/v2/balance" | "/fapi/v3/balance") => ok(json!(balance_list(venue))),
        ("GET", "/fapi/v2/account" | "/fapi/v3/account") => ok(json!(account(venue))),
        ("GET", "/fapi/v2/positionRisk" | "/fapi/v3/positionRisk") => ok(json!(position_risks(venue))),
        ("GET", "/fapi/v1/leverageBracket") => ok(json!([{"symbol": "BTCUSDT", "brackets": [{"bracket": 1,
            "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0}]}])),
        ("GET", "/fapi/v1/commissionRate") => ok(json!({"symbol": get("symbol").unwrap_or("BTCUSDT"),
            "makerCommissionRate": venue.settings.maker_fee.to_string(), "takerCommissionRate": venue.settings.taker_fee.to_string()})),
        ("GET", "/fapi/v1/positionSide/dual") => ok(json!({"dualSidePosition": venue.hedge_mode()})),
        ("GET", "/fapi/v1/apiTradingStatus") => {
            ok(json!({"indicators": {}, "updateTime": Utc::now().timestamp_millis()}))
        }
        ("POST" | "PUT", "/fapi/v1/listenKey") => ok(json!({"listenKey": listen_key(venue)})),
        ("GET", "/sapi/v1/account/apiRestrictions") => ok(json!(api_restrictions(venue))),
        // This account trades futures only: no spot margin pairs.
        ("GET", "/sapi/v1/margin/allPairs" | "/sapi/v1/margin/isolated/allPairs") => ok(json!([])),
        ("GET", "/sapi/v1/capital/config/getall") => {
            let coins: Vec<Value> = venue
                .balances()
                .keys()
                .map(|c| {
                    json!({"coin": c, "name": c, "depositAllEnable": true, "withdrawAllEnable": true, "free": "0",
                           "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0",
                           "storage": "0", "isLegalMoney": false, "trading": true,
                           "networkList": [{"network": c, "coin": c, "withdrawIntegerMultiple": "0.00000001",
                               "isDefault": true, "depositEnable": true, "withdrawEnable": true, "depositDesc": "",
                               "withdrawDesc": "", "name": c, "resetAddressStatus": false, "withdrawFee": "0",
                               "withdrawMin": "0", "withdrawMax": "9999999", "minConfirm": 1, "unLockConfirm": 0,
                               "sameAddress": false, "estimatedArrivalTime": 1, "busy": false}]})
                })
                .collect();
            ok(json!(coins))
        }
        ("DELETE", "/fapi/v1/listenKey") => ok(json!({})),
        _ => error(StatusCode::NOT_FOUND, -1000, format!("{method} {path}: no such endpoint")),
    })
}

/// The account's listen key (one per key, as on Binance while it lives).
pub fn listen_key(venue: &Venue) -> String {
    sign::hmac_sha256_hex(&venue.settings.api_secret, "listenKey")
}

fn verify(venue: &Venue, raw_query: &str, raw_body: &str, params: &BTreeMap<String, String>) -> Result<(), Answer> {
    let Some(timestamp) = params.get("timestamp") else {
        return Err(bad(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."));
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return Err(bad(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."));
    };
    let recv_window = match params.get("recvWindow").map(|r| r.parse::<i64>()) {
        None => 5000,
        Some(Ok(r)) if (1..=60_000).contains(&r) => r,
        Some(_) => return Err(bad(-1131, "recvWindow must be less than 60000")),
    };
    let server = Utc::now().timestamp_millis();
    if timestamp >= server + 1000 {
        return Err(bad(-1021, "Timestamp for this request was 1000ms ahead of the server's time."));
    }
    if server - timestamp > recv_window {
        return Err(bad(-1021, "Timestamp for this request is outside of the recvWindow."));
    }
    // totalParams: the query string, then the body, without the signature.
    let strip = |raw: &str| -> (String, Option<String>) {
        let mut signature = None;
        let kept: Vec<&str> = raw
            .split('&')
            .filter(|kv| {
                if let Some(s) = kv.strip_prefix("signature=") {
                    signature = Some(s.to_owned());
                    false
                } else {
                    !kv.is_empty()
                }
            })
            .collect();
        (kept.join("&"), signature)
    };
    let (query, s1) = strip(raw_query);
    let (body, s2) = strip(raw_body);
    let Some(signature) = s1.or(s2) else {
        return Err(bad(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."));
    };
    if !sign::verify_hex(&venue.settings.api_secret, &format!("{query}{body}"), &signature) {
        return Err(bad(-1022, "Signature for this request is not valid."));
    }
    Ok(())
}

/// A request's parameters, query and body together.
struct Params(BTreeMap<String, String>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

fn find(venue: &Venue, p: &Params) -> Option<VenueOrder> {
    let get = |k| p.get(k);
    match (get("orderId").and_then(|i| i.parse::<u64>().ok()), get("origClientOrderId")) {
        (Some(seq), _) => venue.order_by_seq(seq),
        (None, Some(link)) => venue.order(None, Some(link)),
        _ => None,
    }
    .filter(|o| o.category == Category::Linear)
}

fn create(venue: &Venue, p: &Params) -> Option<Answer> {
    let get = |k| p.get(k);
    let Some(symbol) = get("symbol") else {
        return Some(bad(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."));
    };
    let side = match get("side") {
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        _ => return Some(bad(-1117, "Invalid side.")),
    };
    let kind = match get("type") {
        Some("MARKET") => OrderKind::Market,
        Some("LIMIT") => OrderKind::Limit,
        // Since 2025-12-09 conditional orders go to the Algo Service
        // (/fapi/v1/algoOrder); this endpoint refuses them.
        Some("STOP" | "STOP_MARKET" | "TAKE_PROFIT" | "TAKE_PROFIT_MARKET" | "TRAILING_STOP_MARKET") => {
            return Some(bad(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
            ))
        }
        _ => return Some(bad(-1116, "Invalid orderType.")),
    };
    let Some(qty) = get("quantity").and_then(|q| q.parse::<Decimal>().ok()) else {
        return Some(bad(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."));
    };
    let price = get("price").and_then(|p| p.parse::<Decimal>().ok());
    if kind == OrderKind::Limit && get("timeInForce").is_none() {
        return Some(bad(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."));
    }
    if let Some(id) = get("newClientOrderId") {
        let valid = id.len() <= 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".:/_-".contains(&b));
        if !valid {
            return Some(bad(-4015, "Client order id is not valid."));
        }
    }
    let placement = Placement {
        category: Category::Linear,
        symbol: symbol.to_owned(),
        side,
        kind,
        qty,
        quote_qty: false,
        price,
        trigger: None,
        link_id: get("newClientOrderId").map(str::to_owned),
        reduce_only: get("reduceOnly") == Some("true"),
        link_unique_while_open: true,
    };
    Some(match venue.place(&placement) {
        Ok(o) => {
            if venue.take_fault(|f| &mut f.hang_after_accept) {
                return None;
            }
            if venue.take_fault(|f| &mut f.error_5xx_after_accept) {
                return Some(error(StatusCode::BAD_GATEWAY, 0, ""));
            }
            if venue.take_fault(|f| &mut f.ret_10016_after_accept) {
                // Binance's "unknown error … execution status unknown".
                return Some(bad(
                    -1007,
                    "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
                ));
            }
            // newOrderRespType ACK (the default): the order as accepted.
            let mut j = order_json(&o);
            if get("newOrderRespType") != Some("RESULT") {
                j["status"] = json!("NEW");
                j["executedQty"] = json!("0");
                j["cumQty"] = json!("0");
                j["cumQuote"] = json!("0");
                j["avgPrice"] = json!("0.00");
            }
            ok(j)
        }
        Err(PlaceError::DuplicateLinkId) => bad(-4116, "ClientOrderId is duplicated."),
        Err(PlaceError::InsufficientBalance(_)) => bad(-2019, "Margin is insufficient."),
        Err(PlaceError::Invalid(m)) => bad(-4003, m),
    })
}
