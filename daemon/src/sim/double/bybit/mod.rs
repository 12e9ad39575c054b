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

mod account;
mod market;
mod orders;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::exchange::{ret_code, sign, Category};
use crate::sim::venue::{LimitClass, LoggedRequest, Refusal, Venue};

pub use account::{account_info, api_key, position, position_json, wallet_account};
use account::{coins, positions, wallet};
use market::{instruments, tickers};
use orders::{cancel, create, executions, order_list};
pub use orders::{execution, execution_json, order, order_json, status};

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

/// A model as JSON (the models serialise to objects of strings and numbers).
fn to_json<T: serde::Serialize>(model: &T) -> Value {
    serde_json::to_value(model).unwrap_or(Value::Null)
}
