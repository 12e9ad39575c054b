//! Bybit V5's order endpoints on the venue: `/v5/order/create`,
//! `/v5/order/cancel`, `/v5/order/realtime`, `/v5/order/history` and
//! `/v5/execution/list`, and the order and execution models the lists and
//! the private stream share.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{category, decimal_field, field, params_error, to_json, Answer};
use crate::exchange::bybit::models::{self, Figure};
use crate::exchange::{ret_code, Category, Side, Trigger, TriggerDirection};
use crate::sim::venue::{LimitClass, OrderKind, PlaceError, Placement, Venue, VenueOrder, VenueStatus};

/// Bybit's answer to an order it accepted but whose outcome it cannot tell.
const SERVER_ERROR_MESSAGE: &str = "Server Error.";

pub(super) fn create(venue: &Venue, body: &Value) -> Option<Answer> {
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

pub(super) fn cancel(venue: &Venue, body: &Value) -> Answer {
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

/// An execution in /v5/execution/list's shape.
pub fn execution(e: &crate::sim::venue::Execution) -> models::Execution {
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

pub fn execution_json(e: &crate::sim::venue::Execution) -> Value {
    to_json(&execution(e))
}

pub(super) fn order_list(venue: &Venue, q: &BTreeMap<String, String>, open: bool) -> Answer {
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

pub(super) fn executions(venue: &Venue, q: &BTreeMap<String, String>) -> Answer {
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
