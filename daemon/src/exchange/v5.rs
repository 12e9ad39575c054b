//! A client of Bybit's V5 REST protocol, implementing `Exchange`: today it
//! talks to the paper exchange's HTTP server (`PAPER_EXCHANGE_URL`); the
//! Bybit adapter adds request signing and the real endpoint on top of it.
//!
//! Every response is `{retCode, retMsg, result, retExtInfo, time}`; retCode
//! 0 is success, 10006 a rate limit (the reset time comes from the
//! X-Bapi-Limit-Reset-Timestamp header), 110007 insufficient balance, 110072
//! a duplicate client order id.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{
    ret_code, AssetBalance, Exchange, ExchangeError, Instrument, OrderRequest, OrderState, OrderStatus, Side, Wallet,
};

pub struct V5Client {
    name: String,
    base_url: String,
    http: reqwest::Client,
}

impl V5Client {
    pub fn new(name: &str, base_url: &str) -> Result<V5Client, ExchangeError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| ExchangeError::Transport(e.to_string()))?;
        Ok(V5Client { name: name.to_owned(), base_url: base_url.trim_end_matches('/').to_owned(), http })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ExchangeError> {
        let response = request.send().await.map_err(|e| ExchangeError::Transport(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status == reqwest::StatusCode::FORBIDDEN {
            // Bybit's IP limit: "access too frequent"; stop for 10 minutes.
            return Err(ExchangeError::RateLimited {
                ret_code: 403,
                message: "HTTP 403: access too frequent".into(),
                retry_after: Duration::from_secs(600),
            });
        }
        let body: Value = response.json().await.map_err(|e| ExchangeError::Transport(format!("HTTP {status}: {e}")))?;
        let code = body
            .get("retCode")
            .and_then(Value::as_i64)
            .ok_or_else(|| ExchangeError::Transport(format!("HTTP {status}: response without retCode: {body}")))?;
        let message = body.get("retMsg").and_then(Value::as_str).unwrap_or_default().to_owned();
        match code {
            ret_code::OK => Ok(body.get("result").cloned().unwrap_or(Value::Null)),
            ret_code::TOO_MANY_VISITS => {
                Err(ExchangeError::RateLimited { ret_code: code, message, retry_after: reset_in(&headers) })
            }
            ret_code::INSUFFICIENT_BALANCE => Err(ExchangeError::InsufficientBalance { ret_code: code, message }),
            _ => Err(ExchangeError::Rejected { ret_code: code, message }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Time until the limit resets, from X-Bapi-Limit-Reset-Timestamp (ms).
fn reset_in(headers: &HeaderMap) -> Duration {
    let reset = headers
        .get("X-Bapi-Limit-Reset-Timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    match reset {
        Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::from_millis(100)).max(Duration::from_millis(10)),
        None => Duration::from_secs(1),
    }
}

fn decimal(v: &Value, key: &str) -> Result<Decimal, ExchangeError> {
    let s = v.get(key).and_then(Value::as_str).unwrap_or("0");
    let s = if s.is_empty() { "0" } else { s };
    s.parse::<Decimal>().map_err(|_| ExchangeError::Transport(format!("{key} is not a number: {s:?}")))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// An order from Bybit's /v5/order/realtime shape.
pub fn parse_order(v: &Value) -> Result<OrderState, ExchangeError> {
    let side = match text(v, "side").as_str() {
        "Buy" => Side::Buy,
        "Sell" => Side::Sell,
        other => return Err(ExchangeError::Transport(format!("unknown side {other:?}"))),
    };
    let status = match text(v, "orderStatus").as_str() {
        "Filled" => OrderStatus::Filled,
        "Cancelled" | "PartiallyFilledCanceled" | "Deactivated" => OrderStatus::Cancelled,
        "Rejected" => OrderStatus::Rejected,
        _ => OrderStatus::New,
    };
    Ok(OrderState {
        exchange_order_id: text(v, "orderId"),
        client_order_id: text(v, "orderLinkId"),
        symbol: text(v, "symbol"),
        side,
        status,
        qty: decimal(v, "qty")?,
        filled_qty: decimal(v, "cumExecQty")?,
        avg_price: v.get("avgPrice").and_then(Value::as_str).map_or(Ok(Decimal::ZERO), |_| decimal(v, "avgPrice"))?,
        fee: decimal(v, "cumExecFee")?,
    })
}

/// A wallet from Bybit's /v5/account/wallet-balance shape.
pub fn parse_wallet(result: &Value, as_of: DateTime<Utc>) -> Result<Wallet, ExchangeError> {
    let coins = result
        .pointer("/list/0/coin")
        .and_then(Value::as_array)
        .ok_or_else(|| ExchangeError::Transport("wallet-balance without list[0].coin".into()))?;
    let mut assets = Vec::new();
    for c in coins {
        let total = decimal(c, "walletBalance")?;
        let locked = decimal(c, "locked")?;
        assets.push(AssetBalance {
            asset: text(c, "coin"),
            total,
            available: (total - locked).max(Decimal::ZERO),
            locked,
        });
    }
    Ok(Wallet { as_of, assets })
}

#[async_trait]
impl Exchange for V5Client {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        let body = json!({
            "category": "spot", "symbol": order.symbol, "side": order.side.as_str(), "orderType": "Market",
            "qty": order.qty.to_string(), "marketUnit": "baseCoin", "orderLinkId": order.client_order_id,
        });
        match self.call(self.http.post(self.url("/v5/order/create")).json(&body)).await {
            Ok(_) => {}
            Err(ExchangeError::Rejected { ret_code: ret_code::DUPLICATE_ORDER_LINK_ID, .. }) => {
                return Err(ExchangeError::DuplicateOrder { client_order_id: order.client_order_id.clone() })
            }
            Err(e) => return Err(e),
        }
        self.order(&order.symbol, &order.client_order_id)
            .await?
            .ok_or_else(|| ExchangeError::Transport(format!("order {} accepted but not found", order.client_order_id)))
    }

    async fn order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        let request = self.http.get(self.url("/v5/order/realtime")).query(&[
            ("category", "spot"),
            ("symbol", symbol),
            ("orderLinkId", client_order_id),
        ]);
        let result = self.call(request).await?;
        match result.pointer("/list/0") {
            None => Ok(None),
            Some(o) => parse_order(o).map(Some),
        }
    }

    async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<(), ExchangeError> {
        let body = json!({"category": "spot", "symbol": symbol, "orderLinkId": client_order_id});
        self.call(self.http.post(self.url("/v5/order/cancel")).json(&body)).await.map(|_| ())
    }

    async fn wallet(&self) -> Result<Wallet, ExchangeError> {
        let request = self.http.get(self.url("/v5/account/wallet-balance")).query(&[("accountType", "UNIFIED")]);
        let asked = Utc::now();
        let result = self.call(request).await?;
        // The snapshot is no older than the moment we asked for it.
        parse_wallet(&result, asked)
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
        let result = self.call(self.http.get(self.url("/v5/market/time"))).await?;
        let nanos = text(&result, "timeNano").parse::<i64>().unwrap_or_default();
        Ok(Utc.timestamp_nanos(nanos))
    }

    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError> {
        let request =
            self.http.get(self.url("/v5/market/instruments-info")).query(&[("category", "spot"), ("symbol", symbol)]);
        let result = self.call(request).await?;
        let i = result
            .pointer("/list/0")
            .ok_or_else(|| ExchangeError::Rejected { ret_code: 10001, message: format!("unknown symbol {symbol}") })?;
        let lot = i.get("lotSizeFilter").cloned().unwrap_or(Value::Null);
        let price = i.get("priceFilter").cloned().unwrap_or(Value::Null);
        Ok(Instrument {
            symbol: text(i, "symbol"),
            base: text(i, "baseCoin"),
            quote: text(i, "quoteCoin"),
            qty_step: decimal(&lot, "basePrecision")?,
            min_qty: decimal(&lot, "minOrderQty")?,
            min_notional: decimal(&lot, "minOrderAmt")?,
            tick_size: decimal(&price, "tickSize")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../data/bybit/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
    }

    #[test]
    fn parses_bybit_wallet_balance() {
        let body = fixture("http_get_wallet_balance.json");
        let w = parse_wallet(&body["result"], Utc::now()).unwrap();
        let usdt = w.assets.iter().find(|a| a.asset == "USDT").unwrap();
        assert_eq!(usdt.total, Decimal::new(100050, 2));
        assert_eq!(usdt.available, Decimal::new(100050, 2));
    }

    #[test]
    fn parses_bybit_orders() {
        let body = fixture("http_get_orders_realtime.json");
        let o = parse_order(&body["result"]["list"][0]).unwrap();
        assert_eq!(o.client_order_id, "client-open-1");
        assert_eq!(o.status, OrderStatus::New);
        assert_eq!(o.qty, Decimal::new(10, 3));
        assert_eq!(o.filled_qty, Decimal::ZERO);
    }
}
