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

use crate::exchange::bybit::models::{self, Figure};
use crate::exchange::sim::venue::{
    LimitClass, LoggedRequest, OrderKind, PlaceError, Placement, Refusal, Venue, VenueOrder, VenueStatus,
};
use crate::exchange::{ret_code, sign, Category, Side, Trigger, TriggerDirection};

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
        (Method::GET, "/v5/account/info") => Answer::ok(to_json(&account_info())),
        (Method::GET, "/v5/user/query-api") => Answer::ok(to_json(&api_key(venue))),
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
    // A conditional order: linear says which way the price goes to the
    // trigger; spot asks for orderFilter=StopOrder and the venue works the
    // way out from the last price.
    let trigger = match decimal_field(body, "triggerPrice") {
        Ok(None) => None,
        Ok(Some(at)) => {
            let direction = match (cat, body.get("triggerDirection").and_then(Value::as_i64)) {
                (Category::Linear, Some(1)) => TriggerDirection::Rises,
                (Category::Linear, Some(2)) => TriggerDirection::Falls,
                (Category::Linear, _) => {
                    return with_class(params_error("triggerDirection must be 1 or 2 for a conditional order"))
                }
                (_, _) if field(body, "orderFilter") != Some("StopOrder") => {
                    return with_class(params_error("a spot conditional order needs orderFilter StopOrder"))
                }
                (_, _) => Trigger::from_market(at, venue.price(symbol).unwrap_or(at)).direction,
            };
            Some(Trigger { price: at, direction })
        }
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
        trigger,
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

fn side(side: Side) -> models::Side {
    match side {
        Side::Buy => models::Side::Buy,
        Side::Sell => models::Side::Sell,
    }
}

/// The venue's order status in Bybit's words.
pub fn status(status: VenueStatus) -> models::OrderStatus {
    match status {
        VenueStatus::Untriggered => models::OrderStatus::Untriggered,
        VenueStatus::Triggered => models::OrderStatus::Triggered,
        VenueStatus::New => models::OrderStatus::New,
        VenueStatus::PartiallyFilled => models::OrderStatus::PartiallyFilled,
        VenueStatus::Filled => models::OrderStatus::Filled,
        VenueStatus::Cancelled => models::OrderStatus::Cancelled,
        VenueStatus::PartiallyFilledCanceled => models::OrderStatus::PartiallyFilledCanceled,
        VenueStatus::Rejected => models::OrderStatus::Rejected,
    }
}

/// A model as JSON (the models serialise to objects of strings and numbers).
fn to_json<T: serde::Serialize>(model: &T) -> Value {
    serde_json::to_value(model).unwrap_or(Value::Null)
}

/// An execution in /v5/execution/list's shape.
pub fn execution(e: &crate::exchange::sim::venue::Execution) -> models::Execution {
    models::Execution {
        category: Some(e.category.as_str().to_owned()),
        symbol: e.symbol.clone(),
        order_id: e.order_id.clone(),
        order_link_id: e.link_id.clone(),
        side: side(e.side),
        exec_id: e.exec_id.clone(),
        exec_price: e.price.into(),
        exec_qty: e.qty.into(),
        exec_value: (e.qty * e.price).normalize().into(),
        exec_fee: e.fee.into(),
        exec_type: models::ExecType::Trade,
        exec_time: e.time_ms.to_string(),
        is_maker: false,
        fee_currency: Some(e.fee_asset.clone()),
        create_type: (e.category != Category::Spot).then(|| "CreateByUser".to_owned()),
        exec_pnl: (e.category == Category::Linear).then(|| e.realised_pnl.into()),
        closed_size: None,
    }
}

/// An order in Bybit's /v5/order/realtime shape.
pub fn order(o: &VenueOrder) -> models::Order {
    models::Order {
        category: Some(o.category.as_str().to_owned()),
        order_id: o.order_id.clone(),
        order_link_id: o.link_id.clone(),
        symbol: o.symbol.clone(),
        side: side(o.side),
        order_type: if o.kind == OrderKind::Market { models::OrderType::Market } else { models::OrderType::Limit },
        order_status: status(o.status),
        price: o.price.unwrap_or(Decimal::ZERO).into(),
        qty: o.qty.into(),
        avg_price: if o.cum_qty.is_zero() { Figure::NONE } else { o.avg_price().into() },
        leaves_qty: o.leaves_qty().into(),
        cum_exec_qty: o.cum_qty.into(),
        cum_exec_value: o.cum_value.normalize().into(),
        cum_exec_fee: o.cum_fee.into(),
        reject_reason: o.reject_reason.clone().unwrap_or_else(|| "EC_NoError".into()),
        cancel_type: "UNKNOWN".into(),
        // Documented for derivatives orders, absent from every example of
        // the order lists and the order topic: not sent.
        create_type: None,
        stop_order_type: if o.trigger.is_some() { "Stop" } else { "" }.into(),
        trigger_price: o.trigger.map_or(Figure::NONE, |t| t.price.into()),
        trigger_direction: match o.trigger.map(|t| t.direction) {
            Some(TriggerDirection::Rises) => 1,
            Some(TriggerDirection::Falls) => 2,
            None => 0,
        },
        position_idx: 0,
        time_in_force: if o.kind == OrderKind::Market { "IOC" } else { "GTC" }.into(),
        reduce_only: o.reduce_only,
        fee_currency: Some(o.fee_asset.clone()),
        // Not in the examples of the order lists and topic: not sent.
        market_unit: None,
        created_time: o.created_ms.to_string(),
        updated_time: o.updated_ms.to_string(),
    }
}

pub fn order_json(o: &VenueOrder) -> Value {
    to_json(&order(o))
}

pub fn execution_json(e: &crate::exchange::sim::venue::Execution) -> Value {
    to_json(&execution(e))
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
        .filter(|o| q.get("orderStatus").is_none_or(|s| s.split(',').any(|s| s == status(o.status).as_str())))
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
    let mut account = wallet_account(venue);
    account.coin.retain(|c| q.get("coin").is_none_or(|wanted| wanted.split(',').any(|w| c.coin == w)));
    Answer::ok(json!({"list": [to_json(&account)]}))
}

/// The unified wallet in /v5/account/wallet-balance's shape (and the
/// `wallet` topic's). A coin the account borrowed shows it as Bybit does:
/// walletBalance includes it, spotBorrow says how much.
pub fn wallet_account(venue: &Venue) -> models::WalletAccount {
    let borrowed = venue.borrowed();
    let coin = venue
        .wallet()
        .into_iter()
        .map(|(coin, total, locked)| {
            let borrow = borrowed.get(&coin).copied().unwrap_or(Decimal::ZERO);
            models::WalletCoin {
                equity: (total).into(),
                usd_value: Figure::NONE,
                wallet_balance: (total + borrow).into(),
                locked: locked.into(),
                spot_borrow: borrow.into(),
                borrow_amount: borrow.into(),
                // Deprecated for unified accounts: Bybit sends "".
                available_to_withdraw: Figure::NONE,
                total_order_im: Decimal::ZERO.into(),
                total_position_im: Decimal::ZERO.into(),
                total_position_mm: Decimal::ZERO.into(),
                unrealised_pnl: Decimal::ZERO.into(),
                cum_realised_pnl: Decimal::ZERO.into(),
                bonus: Decimal::ZERO.into(),
                accrued_interest: Decimal::ZERO.into(),
                margin_collateral: true,
                collateral_switch: true,
                coin,
            }
        })
        .collect();
    models::WalletAccount {
        account_type: models::AccountType::Unified,
        total_equity: Figure::NONE,
        total_wallet_balance: Figure::NONE,
        total_margin_balance: Figure::NONE,
        total_available_balance: Figure::NONE,
        total_perp_upl: Decimal::ZERO.into(),
        total_initial_margin: Decimal::ZERO.into(),
        total_maintenance_margin: Decimal::ZERO.into(),
        coin,
    }
}

/// A position in /v5/position/list's shape (a flat one has size 0).
pub fn position(venue: &Venue, symbol: &str, p: &crate::exchange::sim::venue::Position) -> models::Position {
    let mark = venue.price(symbol).unwrap_or(p.entry_price);
    let position_side = if p.size > Decimal::ZERO {
        models::PositionSide::Buy
    } else if p.size < Decimal::ZERO {
        models::PositionSide::Sell
    } else {
        models::PositionSide::Flat
    };
    // Hedge mode: the Buy leg is positionIdx 1, the Sell leg 2.
    let position_idx = match (venue.hedge_mode(), position_side) {
        (false, _) => 0,
        (true, models::PositionSide::Sell) => 2,
        (true, _) => 1,
    };
    models::Position {
        category: Some("linear".into()),
        symbol: symbol.to_owned(),
        position_idx,
        side: position_side,
        size: p.size.abs().into(),
        avg_price: p.entry_price.into(),
        mark_price: mark.into(),
        position_value: (p.size.abs() * p.entry_price).normalize().into(),
        leverage: venue.settings.leverage.into(),
        unrealised_pnl: (p.size * (mark - p.entry_price)).normalize().into(),
        cum_realised_pnl: p.realised_pnl.into(),
        liq_price: Figure::NONE,
        position_status: "Normal".into(),
        trade_mode: 0,
        created_time: "1700000000000".into(),
        updated_time: Utc::now().timestamp_millis().to_string(),
    }
}

pub fn position_json(venue: &Venue, symbol: &str, p: &crate::exchange::sim::venue::Position) -> Value {
    to_json(&position(venue, symbol, p))
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
    let mut list: Vec<models::Position> = venue
        .positions()
        .into_iter()
        .filter(|(symbol, _)| q.get("symbol").is_none_or(|s| s == symbol))
        .map(|(symbol, p)| position(venue, &symbol, &p))
        .collect();
    // Asked by symbol, hedge mode lists both legs, a flat one too.
    if let (Some(symbol), true) = (q.get("symbol"), venue.hedge_mode()) {
        for idx in [1, 2] {
            if !list.iter().any(|p| p.position_idx == idx) {
                let mut flat = position(venue, symbol, &Default::default());
                flat.position_idx = idx;
                list.push(flat);
            }
        }
    }
    Answer::ok(json!({"category": "linear", "list": to_json(&list), "nextPageCursor": ""}))
}

/// /v5/user/query-api: the double's one key (Withdraw as the settings say).
pub fn api_key(venue: &Venue) -> models::ApiKeyInfo {
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let wallet: &[&str] =
        if venue.settings.key_can_withdraw { &["AccountTransfer", "Withdraw"] } else { &["AccountTransfer"] };
    let mut permissions: std::collections::BTreeMap<String, Vec<String>> =
        ["Options", "Derivatives", "CopyTrading", "BlockTrade", "Exchange", "NFT", "Affiliate"]
            .into_iter()
            .map(|g| (g.to_owned(), Vec::new()))
            .collect();
    permissions.insert("ContractTrade".into(), words(&["Order", "Position"]));
    permissions.insert("Spot".into(), words(&["SpotTrade"]));
    permissions.insert("Wallet".into(), words(wallet));
    models::ApiKeyInfo {
        id: "1".into(),
        note: "botai exchange double".into(),
        api_key: venue.settings.api_key.clone(),
        read_only: 0,
        secret: String::new(),
        permissions,
        ips: vec!["*".into()],
        key_type: 1,
        deadline_day: 90,
        expired_at: String::new(),
        created_at: "2026-01-01T00:00:00Z".into(),
        unified: 0,
        uta: 1,
        user_id: 1,
        inviter_id: 0,
        vip_level: "No VIP".into(),
        mkt_maker_level: "0".into(),
        affiliate_id: 0,
        rsa_public_key: String::new(),
        is_master: true,
        parent_uid: "0".into(),
        kyc_level: "LEVEL_DEFAULT".into(),
        kyc_region: String::new(),
    }
}

/// /v5/account/info: a unified account (UTA 2.0 Pro) under cross margin.
pub fn account_info() -> models::AccountInfo {
    models::AccountInfo {
        unified_margin_status: 6,
        margin_mode: "REGULAR_MARGIN".into(),
        is_master_trader: false,
        spot_hedging_status: "OFF".into(),
        updated_time: Utc::now().timestamp_millis().to_string(),
        dcp_status: "OFF".into(),
        time_window: 0,
        smp_group: 0,
    }
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
