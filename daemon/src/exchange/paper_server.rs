//! The paper exchange over HTTP, speaking Bybit V5's wire format (the shapes
//! of `../shared/data/bybit/*.json`): `botai paper-exchange`, or alongside
//! the in-process paper exchange of `botai run`, so engines in other
//! processes trade on the same account. Every response carries the
//! X-Bapi-Limit headers; a broken limit is retCode 10006 "Too many visits!".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::paper::{Endpoint, PaperExchange};
use super::{ret_code, ExchangeError, OrderRequest, OrderState, Side};

/// The routes of the paper exchange.
pub fn router(exchange: Arc<PaperExchange>) -> Router {
    Router::new()
        .route("/v5/market/time", get(time))
        .route("/v5/market/instruments-info", get(instruments))
        .route("/v5/order/create", post(create))
        .route("/v5/order/cancel", post(cancel))
        .route("/v5/order/realtime", get(realtime))
        .route("/v5/order/history", get(history))
        .route("/v5/account/wallet-balance", get(wallet))
        .with_state(exchange)
}

/// Serves the paper exchange until `shutdown` resolves.
pub async fn serve(
    exchange: Arc<PaperExchange>,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("paper exchange cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "paper exchange serving Bybit V5 endpoints");
    axum::serve(listener, router(exchange)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn envelope(code: i64, message: &str, result: Value) -> Value {
    json!({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": Utc::now().timestamp_millis()})
}

fn respond(exchange: &PaperExchange, endpoint: Endpoint, body: Value) -> impl IntoResponse {
    let status = exchange.limit_status(endpoint);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("X-Bapi-Limit-Status", status.remaining.to_string());
    set("X-Bapi-Limit", status.limit.to_string());
    set("X-Bapi-Limit-Reset-Timestamp", status.reset_at.timestamp_millis().to_string());
    (headers, Json(body))
}

fn error_body(e: &ExchangeError) -> Value {
    let (code, message) = match e {
        ExchangeError::RateLimited { ret_code, message, .. }
        | ExchangeError::InsufficientBalance { ret_code, message }
        | ExchangeError::Rejected { ret_code, message } => (*ret_code, message.clone()),
        ExchangeError::DuplicateOrder { .. } => {
            (ret_code::DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate".into())
        }
        ExchangeError::Transport(m) => (10016, m.clone()),
    };
    envelope(code, &message, json!({}))
}

async fn time(State(x): State<Arc<PaperExchange>>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Other) {
        return respond(&x, Endpoint::Other, error_body(&e));
    }
    let now = Utc::now();
    let result = json!({"timeSecond": now.timestamp().to_string(),
                        "timeNano": now.timestamp_nanos_opt().unwrap_or_default().to_string()});
    respond(&x, Endpoint::Other, envelope(0, "OK", result))
}

async fn instruments(
    State(x): State<Arc<PaperExchange>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Other) {
        return respond(&x, Endpoint::Other, error_body(&e));
    }
    let i = x.instrument_rules();
    let list = if q.get("symbol").is_none_or(|s| *s == i.symbol) {
        vec![json!({
            "symbol": i.symbol, "baseCoin": i.base, "quoteCoin": i.quote, "status": "Trading",
            "lotSizeFilter": {"basePrecision": i.qty_step.to_string(), "minOrderQty": i.min_qty.to_string(),
                              "minOrderAmt": i.min_notional.to_string()},
            "priceFilter": {"tickSize": i.tick_size.to_string()}
        })]
    } else {
        vec![]
    };
    respond(&x, Endpoint::Other, envelope(0, "OK", json!({"category": "spot", "list": list})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateOrder {
    symbol: String,
    side: String,
    order_type: String,
    qty: String,
    order_link_id: String,
}

async fn create(State(x): State<Arc<PaperExchange>>, Json(body): Json<Value>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Order) {
        return respond(&x, Endpoint::Order, error_body(&e));
    }
    let parsed: Result<CreateOrder, _> = serde_json::from_value(body);
    let request = parsed.map_err(|e| e.to_string()).and_then(|o| {
        let side = match o.side.as_str() {
            "Buy" => Side::Buy,
            "Sell" => Side::Sell,
            other => return Err(format!("side {other:?} is neither Buy nor Sell")),
        };
        if o.order_type != "Market" {
            return Err(format!("orderType {:?}: the paper exchange fills Market orders only", o.order_type));
        }
        let qty = o.qty.parse::<Decimal>().map_err(|_| format!("qty {:?} is not a number", o.qty))?;
        if o.order_link_id.is_empty() || o.order_link_id.len() > 36 {
            return Err("orderLinkId must be 1 to 36 characters".into());
        }
        Ok(OrderRequest { client_order_id: o.order_link_id, symbol: o.symbol, side, qty })
    });
    let body = match request {
        Err(message) => envelope(ret_code::PARAMS_ERROR, &message, json!({})),
        Ok(order) => match x.fill(&order) {
            Ok(state) => {
                envelope(0, "OK", json!({"orderId": state.exchange_order_id, "orderLinkId": state.client_order_id}))
            }
            Err(e) => error_body(&e),
        },
    };
    respond(&x, Endpoint::Order, body)
}

async fn cancel(State(x): State<Arc<PaperExchange>>, Json(body): Json<Value>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Order) {
        return respond(&x, Endpoint::Order, error_body(&e));
    }
    let id = body.get("orderLinkId").and_then(Value::as_str).unwrap_or_default();
    let message = format!("order {id} does not exist or is too late to cancel");
    respond(&x, Endpoint::Order, envelope(ret_code::ORDER_NOT_EXISTS, &message, json!({})))
}

/// The order in Bybit's /v5/order/realtime shape.
pub fn order_json(o: &OrderState) -> Value {
    json!({
        "orderId": o.exchange_order_id, "orderLinkId": o.client_order_id, "symbol": o.symbol,
        "side": o.side.as_str(), "orderType": "Market",
        "orderStatus": match o.status {
            super::OrderStatus::New => "New",
            super::OrderStatus::Filled => "Filled",
            super::OrderStatus::Cancelled => "Cancelled",
            super::OrderStatus::Rejected => "Rejected",
        },
        "qty": o.qty.to_string(), "cumExecQty": o.filled_qty.to_string(),
        "avgPrice": o.avg_price.to_string(), "cumExecValue": o.notional().to_string(),
        "cumExecFee": o.fee.to_string(), "leavesQty": (o.qty - o.filled_qty).to_string(),
        "createdTime": Utc::now().timestamp_millis().to_string(),
    })
}

async fn realtime(State(x): State<Arc<PaperExchange>>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Other) {
        return respond(&x, Endpoint::Other, error_body(&e));
    }
    let list: Vec<Value> = q.get("orderLinkId").and_then(|id| x.find(id)).iter().map(order_json).collect();
    respond(&x, Endpoint::Other, envelope(0, "OK", json!({"category": "spot", "list": list})))
}

/// Every order of the account, oldest first (Bybit pages this; the paper
/// exchange's history is small enough to answer at once).
async fn history(State(x): State<Arc<PaperExchange>>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Other) {
        return respond(&x, Endpoint::Other, error_body(&e));
    }
    let list: Vec<Value> = x.all_orders().iter().map(order_json).collect();
    respond(&x, Endpoint::Other, envelope(0, "OK", json!({"category": "spot", "list": list})))
}

async fn wallet(State(x): State<Arc<PaperExchange>>) -> impl IntoResponse {
    if let Err(e) = x.admit(Endpoint::Other) {
        return respond(&x, Endpoint::Other, error_body(&e));
    }
    let w = x.snapshot();
    let coins: Vec<Value> = w
        .assets
        .iter()
        .map(|a| {
            json!({"coin": a.asset, "walletBalance": a.total.to_string(), "equity": a.total.to_string(),
                   "locked": a.locked.to_string(), "availableToWithdraw": a.available.to_string()})
        })
        .collect();
    let result = json!({"list": [{"accountType": "UNIFIED", "coin": coins}]});
    respond(&x, Endpoint::Other, envelope(0, "OK", result))
}
