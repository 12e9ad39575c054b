//! Bybit V5 over HTTP, as Bybit's documentation describes it, on the
//! simulated venue.
//!
//! - Every answer is `{retCode, retMsg, result, retExtInfo, time}`.
//! - Private endpoints (everything but `/v5/market/*`) need X-BAPI-API-KEY,
//!   X-BAPI-TIMESTAMP, X-BAPI-SIGN and optionally X-BAPI-RECV-WINDOW (5000
//!   by default): an unknown key is 10003, a wrong signature 10004, a
//!   timestamp outside `[server − recv_window, server + 1000)` 10002. The
//!   signature is checked over the query string or the body exactly as
//!   received.
//! - Limits: the address's 600 requests per 5 s (broken: HTTP 403 and a
//!   ban), then the UID's per-endpoint limits, answered 10006 "Too many
//!   visits!"; every private answer carries X-Bapi-Limit-Status,
//!   X-Bapi-Limit and X-Bapi-Limit-Reset-Timestamp of its endpoint.
//! - `category` is required and honoured (spot, linear; inverse and option
//!   list nothing); `orderLinkId` is optional; a spot market BUY's `qty` is
//!   in the quote coin unless `marketUnit=baseCoin`, as on Bybit.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::exchange::venue::{LimitClass, LoggedRequest, OrderKind, PlaceError, Placement, Refusal, Venue, VenueOrder};
use crate::exchange::{ret_code, sign, Category, Side};

/// Bybit's answer to an order it accepted but whose outcome it cannot tell.
const SERVER_ERROR_MESSAGE: &str = "Server Error.";

struct Answer {
    status: StatusCode,
    code: i64,
    message: String,
    result: Value,
    class: Option<LimitClass>,
}

impl Answer {
    fn ok(result: Value) -> Answer {
        Answer { status: StatusCode::OK, code: 0, message: "OK".into(), result, class: None }
    }

    fn error(code: i64, message: impl Into<String>) -> Answer {
        Answer { status: StatusCode::OK, code, message: message.into(), result: json!({}), class: None }
    }
}

fn params_error(message: impl Into<String>) -> Answer {
    Answer::error(ret_code::PARAMS_ERROR, message)
}

/// Which limit a path counts against, and whether it is private.
fn classify(path: &str) -> (Option<LimitClass>, bool) {
    if path.starts_with("/v5/market/") {
        return (None, false);
    }
    let class = match path {
        "/v5/order/create" | "/v5/order/cancel" | "/v5/order/amend" | "/v5/order/cancel-all" => LimitClass::Order,
        "/v5/order/realtime" | "/v5/order/history" | "/v5/execution/list" => LimitClass::OrderQuery,
        _ => LimitClass::Wallet,
    };
    (Some(class), true)
}

pub async fn handle(venue: &Venue, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let api_key = headers.get("X-BAPI-API-KEY").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut logged = LoggedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        body: raw_body.clone(),
        api_key: api_key.clone(),
        signature_valid: None,
        status: 200,
        code: 0,
    };
    let answer = answer(venue, &method, &path, &raw_query, &raw_body, &headers, &mut logged).await;
    let Some(answer) = answer else {
        // The order was accepted; the client gets no answer in time.
        logged.status = 0;
        venue.log_request(logged);
        tokio::time::sleep(Duration::from_secs(120)).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    };
    logged.status = answer.status.as_u16();
    logged.code = answer.code;
    venue.log_request(logged);
    if answer.status == StatusCode::FORBIDDEN {
        return (StatusCode::FORBIDDEN, "403 Forbidden: access too frequent").into_response();
    }
    if answer.status.is_server_error() {
        return (answer.status, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response();
    }
    let mut headers = HeaderMap::new();
    if let Some(status) = answer.class.and_then(|c| venue.limit_status(c)) {
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("X-Bapi-Limit-Status", status.remaining.to_string());
        set("X-Bapi-Limit", status.limit.to_string());
        set("X-Bapi-Limit-Reset-Timestamp", status.reset_at.timestamp_millis().to_string());
    }
    let body = json!({
        "retCode": answer.code, "retMsg": answer.message, "result": answer.result,
        "retExtInfo": {}, "time": Utc::now().timestamp_millis(),
    });
    (answer.status, headers, axum::Json(body)).into_response()
}

/// None: accepted, then no answer (a fault).
async fn answer(
    venue: &Venue,
    method: &Method,
    path: &str,
    raw_query: &str,
    raw_body: &str,
    headers: &HeaderMap,
    logged: &mut LoggedRequest,
) -> Option<Answer> {
    if venue.take_fault(|f| &mut f.error_5xx) {
        return Some(Answer { status: StatusCode::SERVICE_UNAVAILABLE, ..Answer::error(0, "") });
    }
    let (class, private) = classify(path);
    // The address's limit comes first, before the request is even read.
    if let Err(Refusal::Banned { .. }) = venue.admit(&[LimitClass::Ip]) {
        return Some(Answer { status: StatusCode::FORBIDDEN, ..Answer::error(403, "access too frequent") });
    }
    if private {
        match authenticate(venue, method, raw_query, raw_body, headers) {
            Ok(()) => logged.signature_valid = Some(true),
            Err(a) => {
                logged.signature_valid = Some(a.code != ret_code::SIGNATURE_ERROR);
                return Some(a);
            }
        }
    }
    if let Some(class) = class {
        if let Err(refusal) = venue.admit(&[LimitClass::Account, class]) {
            let mut a = match refusal {
                Refusal::TooManyVisits { .. } => Answer::error(ret_code::TOO_MANY_VISITS, "Too many visits!"),
                Refusal::Banned { .. } => {
                    return Some(Answer { status: StatusCode::FORBIDDEN, ..Answer::error(403, "access too frequent") })
                }
            };
            a.class = Some(class);
            return Some(a);
        }
    }
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let body: Value = if *method == Method::POST {
        match serde_json::from_str::<Value>(if raw_body.trim().is_empty() { "{}" } else { raw_body }) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Some(params_error("the request body is not a JSON object")),
        }
    } else {
        Value::Null
    };
    let mut a = match (method.clone(), path) {
        (Method::GET, "/v5/market/time") => {
            let now = Utc::now();
            Answer::ok(json!({"timeSecond": now.timestamp().to_string(),
                              "timeNano": now.timestamp_nanos_opt().unwrap_or_default().to_string()}))
        }
        (Method::GET, "/v5/market/instruments-info") => instruments(venue, &query),
        (Method::GET, "/v5/market/tickers") => tickers(venue, &query),
        (Method::GET, "/v5/market/kline") => match super::bybit_public::kline(venue, &query) {
            Ok(result) => Answer::ok(result),
            Err((code, message)) => Answer::error(code, message),
        },
        (Method::POST, "/v5/order/create") => return create(venue, &body),
        (Method::POST, "/v5/order/cancel") => cancel(venue, &body),
        (Method::GET, "/v5/order/realtime") => order_list(venue, &query, true),
        (Method::GET, "/v5/order/history") => order_list(venue, &query, false),
        (Method::GET, "/v5/execution/list") => executions(venue, &query),
        (Method::GET, "/v5/account/wallet-balance") => wallet(venue, &query),
        (Method::GET, "/v5/account/info") => Answer::ok(json!({
            "unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN", "isMasterTrader": false,
            "spotHedgingStatus": "OFF", "updatedTime": Utc::now().timestamp_millis().to_string(),
            "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0,
        })),
        (Method::GET, "/v5/user/query-api") => api_key_info(venue),
        (Method::GET, "/v5/position/list") => positions(venue, &query),
        (Method::GET, "/v5/asset/coin/query-info") => coins(venue),
        (Method::GET | Method::POST, _) if path.starts_with("/v5/") => Answer {
            status: StatusCode::NOT_FOUND,
            ..Answer::error(ret_code::PARAMS_ERROR, format!("{path} is not an endpoint of this venue"))
        },
        _ => Answer { status: StatusCode::NOT_FOUND, ..Answer::error(ret_code::PARAMS_ERROR, "Not Found") },
    };
    if a.class.is_none() {
        a.class = class;
    }
    Some(a)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn authenticate(
    venue: &Venue,
    method: &Method,
    raw_query: &str,
    raw_body: &str,
    headers: &HeaderMap,
) -> Result<(), Answer> {
    let key = header(headers, "X-BAPI-API-KEY").unwrap_or_default();
    if key.is_empty() || key != venue.settings.api_key {
        return Err(Answer::error(ret_code::INVALID_API_KEY, "API key is invalid."));
    }
    let timestamp = header(headers, "X-BAPI-TIMESTAMP").and_then(|t| t.parse::<i64>().ok());
    let recv_window = match header(headers, "X-BAPI-RECV-WINDOW") {
        None => 5000,
        Some(r) => match r.parse::<i64>() {
            Ok(r) if r > 0 => r,
            _ => return Err(params_error("X-BAPI-RECV-WINDOW must be a positive number of milliseconds")),
        },
    };
    let Some(timestamp) = timestamp else {
        return Err(params_error("X-BAPI-TIMESTAMP is missing or not a number"));
    };
    let server = Utc::now().timestamp_millis();
    if !(server - recv_window <= timestamp && timestamp < server + 1000) {
        return Err(Answer::error(
            ret_code::TIMESTAMP_OUT_OF_WINDOW,
            format!(
                "invalid request, please check your server timestamp or recv_window param. req_timestamp[{timestamp}],server_timestamp[{server}],recv_window[{recv_window}]"
            ),
        ));
    }
    let payload = if *method == Method::POST { raw_body } else { raw_query };
    let signed = format!("{timestamp}{key}{}{payload}", header(headers, "X-BAPI-RECV-WINDOW").unwrap_or(""));
    let signature = header(headers, "X-BAPI-SIGN").unwrap_or_default();
    if !sign::verify_hex(&venue.settings.api_secret, &signed, signature) {
        return Err(Answer::error(
            ret_code::SIGNATURE_ERROR,
            "error sign! please check your signature generation algorithm",
        ));
    }
    Ok(())
}

fn category(v: Option<&str>) -> Result<Option<Category>, Answer> {
    match v {
        None | Some("") => Err(params_error("category is required")),
        Some("inverse" | "option") => Ok(None),
        Some(c) => Category::parse(c).map(Some).ok_or_else(|| params_error(format!("category {c:?} is invalid"))),
    }
}

fn instruments(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
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

fn tickers(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
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

/// A body field Bybit sends as a string.
fn field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

fn decimal_field(body: &Value, name: &str) -> Result<Option<Decimal>, Answer> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            s.parse::<Decimal>().map(Some).map_err(|_| params_error(format!("{name} {s:?} is not a number")))
        }
        Some(other) => Err(params_error(format!("{name} must be a string, got {other}"))),
    }
}

fn create(venue: &Venue, body: &Value) -> Option<Answer> {
    let with_class = |mut a: Answer| {
        a.class = Some(LimitClass::Order);
        Some(a)
    };
    let cat = match category(field(body, "category")) {
        Ok(Some(c)) => c,
        Ok(None) => return with_class(params_error("this venue trades spot and linear")),
        Err(a) => return with_class(a),
    };
    let Some(symbol) = field(body, "symbol") else { return with_class(params_error("symbol is required")) };
    let side = match field(body, "side") {
        Some("Buy") => Side::Buy,
        Some("Sell") => Side::Sell,
        _ => return with_class(params_error("side must be Buy or Sell")),
    };
    let kind = match field(body, "orderType") {
        Some("Market") => OrderKind::Market,
        Some("Limit") => OrderKind::Limit,
        _ => return with_class(params_error("orderType must be Market or Limit")),
    };
    let qty = match decimal_field(body, "qty") {
        Ok(Some(q)) => q,
        Ok(None) => return with_class(params_error("qty is required")),
        Err(a) => return with_class(a),
    };
    let price = match decimal_field(body, "price") {
        Ok(p) => p,
        Err(a) => return with_class(a),
    };
    let quote_qty = cat == Category::Spot
        && kind == OrderKind::Market
        && side == Side::Buy
        && field(body, "marketUnit").unwrap_or("quoteCoin") == "quoteCoin";
    let placement = Placement {
        category: cat,
        symbol: symbol.to_owned(),
        side,
        kind,
        qty,
        quote_qty,
        price: if kind == OrderKind::Limit { price } else { None },
        link_id: field(body, "orderLinkId").filter(|s| !s.is_empty()).map(str::to_owned),
        reduce_only: body.get("reduceOnly").and_then(Value::as_bool).unwrap_or(false),
        link_unique_while_open: false,
    };
    let answer = match venue.place(&placement) {
        Ok(o) => {
            if venue.take_fault(|f| &mut f.hang_after_accept) {
                return None;
            }
            if venue.take_fault(|f| &mut f.error_5xx_after_accept) {
                return Some(Answer { status: StatusCode::BAD_GATEWAY, ..Answer::error(0, "") });
            }
            if venue.take_fault(|f| &mut f.ret_10016_after_accept) {
                Answer::error(ret_code::SERVER_ERROR, SERVER_ERROR_MESSAGE)
            } else {
                Answer::ok(json!({"orderId": o.order_id, "orderLinkId": o.link_id}))
            }
        }
        Err(PlaceError::DuplicateLinkId) => {
            Answer::error(ret_code::DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        }
        Err(PlaceError::InsufficientBalance(m)) => {
            Answer::error(ret_code::INSUFFICIENT_BALANCE, format!("Insufficient available balance. {m}"))
        }
        Err(PlaceError::Invalid(m)) => params_error(m),
    };
    with_class(answer)
}

fn cancel(venue: &Venue, body: &Value) -> Answer {
    let cat = match category(field(body, "category")) {
        Ok(Some(c)) => c,
        Ok(None) => return params_error("this venue trades spot and linear"),
        Err(a) => return a,
    };
    let (order_id, link_id) = (field(body, "orderId"), field(body, "orderLinkId"));
    if order_id.is_none_or(str::is_empty) && link_id.is_none_or(str::is_empty) {
        return params_error("orderId or orderLinkId is required");
    }
    match venue.cancel(cat, order_id, link_id) {
        Some(o) => Answer::ok(json!({"orderId": o.order_id, "orderLinkId": o.link_id})),
        None => Answer::error(ret_code::ORDER_NOT_EXISTS, "Order does not exist."),
    }
}

/// An execution in /v5/execution/list's shape.
pub fn execution_json(e: &crate::exchange::venue::Execution) -> Value {
    json!({"category": e.category.as_str(), "symbol": e.symbol, "orderId": e.order_id, "orderLinkId": e.link_id,
           "side": e.side.as_str(), "execId": e.exec_id, "execPrice": e.price.to_string(),
           "execQty": e.qty.to_string(), "execValue": (e.qty * e.price).normalize().to_string(),
           "execFee": e.fee.to_string(), "feeCurrency": e.fee_asset, "execType": "Trade", "isMaker": false,
           "execTime": e.time_ms.to_string()})
}

/// An order in Bybit's /v5/order/realtime shape.
pub fn order_json(o: &VenueOrder) -> Value {
    let mut v = order_fields(o);
    v["category"] = json!(o.category.as_str());
    v["feeCurrency"] = json!(o.fee_asset);
    v
}

fn order_fields(o: &VenueOrder) -> Value {
    let price = o.price.map_or_else(|| "0".to_owned(), |p| p.to_string());
    json!({
        "orderId": o.order_id, "orderLinkId": o.link_id, "blockTradeId": "", "symbol": o.symbol,
        "price": price, "qty": o.qty.to_string(), "side": o.side.as_str(), "isLeverage": "",
        "positionIdx": 0, "orderStatus": o.status.bybit(), "cancelType": "UNKNOWN",
        "rejectReason": o.reject_reason.clone().unwrap_or_else(|| "EC_NoError".into()),
        "avgPrice": if o.cum_qty.is_zero() { String::new() } else { o.avg_price().to_string() },
        "leavesQty": o.leaves_qty().to_string(),
        "leavesValue": o.price.map_or(Decimal::ZERO, |p| p * o.leaves_qty()).to_string(),
        "cumExecQty": o.cum_qty.to_string(), "cumExecValue": o.cum_value.normalize().to_string(),
        "cumExecFee": o.cum_fee.to_string(),
        "timeInForce": if o.kind == OrderKind::Market { "IOC" } else { "GTC" },
        "orderType": if o.kind == OrderKind::Market { "Market" } else { "Limit" },
        "stopOrderType": "", "orderIv": "", "triggerPrice": "", "takeProfit": "", "stopLoss": "",
        "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "",
        "lastPriceOnCreated": "", "reduceOnly": o.reduce_only, "closeOnTrigger": false,
        "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "",
        "slLimitPrice": "", "placeType": "",
        "marketUnit": if o.quote_amount.is_some() { "quoteCoin" } else { "" },
        "createdTime": o.created_ms.to_string(), "updatedTime": o.updated_ms.to_string(),
    })
}

fn order_list(venue: &Venue, q: &BTreeMap<String, String>, open: bool) -> Answer {
    let c = match category(q.get("category").map(String::as_str)) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let by_id = q.get("orderId").filter(|s| !s.is_empty());
    let by_link = q.get("orderLinkId").filter(|s| !s.is_empty());
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 50);
    let mut list: Vec<Value> = venue
        .orders()
        .iter()
        .rev()
        .filter(|o| Some(o.category) == c)
        .filter(|o| q.get("symbol").is_none_or(|s| *s == o.symbol))
        .filter(|o| by_id.is_none_or(|id| *id == o.order_id))
        .filter(|o| by_link.is_none_or(|id| *id == o.link_id))
        // /realtime: open orders, and any order asked for by id;
        // /history: closed orders (Bybit lists open ones there too).
        .filter(|o| !open || o.status.is_open() || by_id.is_some() || by_link.is_some())
        .filter(|o| q.get("orderStatus").is_none_or(|s| s.split(',').any(|s| s == o.status.bybit())))
        .map(order_json)
        .collect();
    list.truncate(limit);
    Answer::ok(json!({"category": q.get("category"), "list": list, "nextPageCursor": ""}))
}

fn executions(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    let c = match category(q.get("category").map(String::as_str)) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
    let mut list: Vec<Value> = venue
        .executions()
        .iter()
        .rev()
        .filter(|e| Some(e.category) == c)
        .filter(|e| q.get("symbol").is_none_or(|s| *s == e.symbol))
        .filter(|e| q.get("orderLinkId").is_none_or(|id| *id == e.link_id))
        .filter(|e| q.get("orderId").is_none_or(|id| *id == e.order_id))
        .map(execution_json)
        .collect();
    list.truncate(limit);
    Answer::ok(json!({"category": q.get("category"), "list": list, "nextPageCursor": ""}))
}

fn wallet(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    match q.get("accountType").map(String::as_str) {
        Some("UNIFIED") => {}
        Some(other) => return params_error(format!("accountType {other:?}: this account is UNIFIED")),
        None => return params_error("accountType is required"),
    }
    let coins: Vec<Value> = wallet_coins(venue)
        .into_iter()
        .filter(|c| q.get("coin").is_none_or(|wanted| wanted.split(',').any(|w| c["coin"] == w)))
        .collect();
    Answer::ok(json!({"list": [{"accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0",
                                "totalEquity": "", "totalWalletBalance": "", "totalMarginBalance": "",
                                "totalAvailableBalance": "", "totalPerpUPL": "0", "totalInitialMargin": "0",
                                "totalMaintenanceMargin": "0", "accountLTV": "0", "coin": coins}]}))
}

/// Every coin of the unified wallet, in /v5/account/wallet-balance's shape.
pub fn wallet_coins(venue: &Venue) -> Vec<Value> {
    venue
        .wallet()
        .into_iter()
        .map(|(coin, total, locked)| {
            json!({"coin": coin, "walletBalance": total.to_string(), "equity": total.to_string(),
                   "usdValue": "", "locked": locked.to_string(), "borrowAmount": "0",
                   "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0",
                   "totalPositionMM": "0", "unrealisedPnl": "0", "cumRealisedPnl": "0", "bonus": "0",
                   "marginCollateral": true, "collateralSwitch": true, "spotHedgingQty": "0",
                   "availableToWithdraw": (total - locked).to_string()})
        })
        .collect()
}

/// A position in /v5/position/list's shape (a flat one has size 0).
pub fn position_json(venue: &Venue, symbol: &str, p: &crate::exchange::venue::Position) -> Value {
    let mark = venue.price(symbol).unwrap_or(p.entry_price);
    let side = if p.size > Decimal::ZERO {
        "Buy"
    } else if p.size < Decimal::ZERO {
        "Sell"
    } else {
        ""
    };
    json!({"positionIdx": 0, "symbol": symbol, "side": side,
           "size": p.size.abs().to_string(), "avgPrice": p.entry_price.to_string(),
           "positionValue": (p.size.abs() * p.entry_price).normalize().to_string(),
           "leverage": venue.settings.leverage.to_string(), "markPrice": mark.to_string(),
           "unrealisedPnl": (p.size * (mark - p.entry_price)).normalize().to_string(),
           "cumRealisedPnl": p.realised_pnl.to_string(), "positionStatus": "Normal",
           "tradeMode": 0, "autoAddMargin": 0, "riskId": 1, "riskLimitValue": "2000000",
           "liqPrice": "", "bustPrice": "", "positionIM": "0", "positionMM": "0",
           "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
           "createdTime": "1700000000000", "updatedTime": Utc::now().timestamp_millis().to_string(),
           "seq": 1, "isReduceOnly": false, "category": "linear"})
}

fn positions(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
    match category(q.get("category").map(String::as_str)) {
        Ok(Some(Category::Linear)) => {}
        Ok(_) => return params_error("positions exist in linear only"),
        Err(a) => return a,
    }
    if q.get("symbol").is_none() && q.get("settleCoin").is_none() {
        return params_error("symbol or settleCoin is required");
    }
    let list: Vec<Value> = venue
        .positions()
        .into_iter()
        .filter(|(symbol, _)| q.get("symbol").is_none_or(|s| s == symbol))
        .map(|(symbol, p)| position_json(venue, &symbol, &p))
        .collect();
    Answer::ok(json!({"category": "linear", "list": list, "nextPageCursor": ""}))
}

fn api_key_info(venue: &Venue) -> Answer {
    Answer::ok(json!({
        "id": "1", "note": "botai exchange double", "apiKey": venue.settings.api_key, "readOnly": 0,
        "secret": "", "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
            "Wallet": if venue.settings.key_can_withdraw { json!(["AccountTransfer", "Withdraw"]) } else { json!(["AccountTransfer"]) },
            "Options": [], "Derivatives": [], "CopyTrading": [],
            "BlockTrade": [], "Exchange": [], "NFT": [], "Affiliate": []},
        "ips": ["*"], "type": 1, "deadlineDay": 90, "expiredAt": "", "createdAt": "2026-01-01T00:00:00Z",
        "unified": 0, "uta": 1, "userID": 1, "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
        "affiliateID": 0, "rsaPublicKey": "", "isMaster": true, "parentUid": "0", "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }))
}

fn coins(venue: &Venue) -> Answer {
    let rows: Vec<Value> = venue
        .balances()
        .keys()
        .map(|coin| {
            json!({"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [{
                "chainType": coin, "confirmation": "1", "withdrawFee": "0", "depositMin": "0",
                "withdrawMin": "0", "chain": coin, "chainDeposit": "1", "chainWithdraw": "1",
                "minAccuracy": "8", "withdrawPercentageFee": "0"}]})
        })
        .collect();
    Answer::ok(json!({"rows": rows}))
}
