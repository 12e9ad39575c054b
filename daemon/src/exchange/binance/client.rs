//! The Binance USDⓈ-M futures adapter (REST), on the same trait as Bybit's.
//!
//! SIGNED requests carry `timestamp` (our clock plus the offset measured
//! against `/fapi/v1/time`) and `recvWindow`, and `signature`: HMAC-SHA256
//! (hex) of the query string — in the URL for GET and DELETE, as the form
//! body for POST — with the key in X-MBX-APIKEY. -1021 (timestamp outside
//! recvWindow) measures the clock again and sends once more.
//!
//! Limits: X-MBX-USED-WEIGHT-1M (the address's request weight) feeds
//! botai's `global` window, X-MBX-ORDER-COUNT-10S its `order` window, through
//! `botai_rate_observe`. HTTP 429 penalises the endpoint for Retry-After;
//! HTTP 418 (the address banned) makes the whole exchange wait and opens a
//! critical alert.
//!
//! Outcomes: -2019 margin insufficient; -4116 duplicate client order id;
//! -1006 / -1007 ("execution status unknown"), HTTP 5xx, timeouts and resets
//! after sending: outcome unknown. Binance keeps a client order id unique
//! among *open* orders only: once an order closed, the same id is accepted
//! again — which is why the engine looks a taken-over order up before it
//! sends it again, and never re-sends on its own.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::models;
use crate::exchange::clock::VenueClock;
use crate::exchange::limits::VenueLimits;
use crate::exchange::rest::{self, encode_query};
use crate::exchange::stream::OrderFeed;
use crate::exchange::{
    sign, AccountEvent, AssetBalance, Exchange, ExchangeError, Instrument, KeyInfo, OrderRequest, OrderState, Position,
    Side, Wallet,
};

/// Binance's error codes botai acts on.
pub mod code {
    pub const UNKNOWN_EXECUTION: i64 = -1006;
    pub const TIMEOUT_EXECUTION_UNKNOWN: i64 = -1007;
    pub const TIMESTAMP_OUTSIDE_RECV_WINDOW: i64 = -1021;
    pub const INVALID_SIGNATURE: i64 = -1022;
    pub const NO_SUCH_ORDER: i64 = -2013;
    pub const MARGIN_INSUFFICIENT: i64 = -2019;
    pub const DUPLICATE_CLIENT_ORDER_ID: i64 = -4116;
}

#[derive(Clone)]
pub struct BinanceSettings {
    /// https://fapi.binance.com, https://testnet.binancefuture.com, or a double.
    pub rest_url: String,
    /// Where `/sapi/` lives (https://api.binance.com; the double serves both).
    pub sapi_url: String,
    /// The user data stream's base (`{ws_url}/{listenKey}`); None: no
    /// stream, fills by lookup.
    pub ws_url: Option<String>,
    pub api_key: String,
    pub api_secret: String,
    pub recv_window: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for BinanceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceSettings")
            .field("rest_url", &self.rest_url)
            .field("api_key", &crate::exchange::redact(&self.api_key))
            .field("api_secret", &"***")
            .finish()
    }
}

/// botai's limiter endpoints for Binance (rows of `botai.rate_limits`).
pub mod endpoint {
    /// Order placement and cancellation: the account's order count.
    pub const ORDER: &str = "order";
    /// Balance, account, positions (weight 5 each).
    pub const ACCOUNT: &str = "account";
    /// Everything else: the address's request weight only.
    pub const GLOBAL: &str = "global";
}

pub struct BinanceClient {
    name: String,
    settings: BinanceSettings,
    http: reqwest::Client,
    limits: Arc<dyn VenueLimits>,
    clock: VenueClock,
    feed: Arc<OrderFeed>,
    seen_limits: Mutex<std::collections::BTreeMap<&'static str, (i32, i32)>>,
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    params: Vec<(&'a str, String)>,
    endpoint: &'static str,
    signed: bool,
    booked: bool,
    sapi: bool,
}

impl BinanceClient {
    pub fn new(
        name: &str,
        settings: BinanceSettings,
        limits: Arc<dyn VenueLimits>,
    ) -> Result<BinanceClient, ExchangeError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| ExchangeError::Transport(e.to_string()))?;
        Ok(BinanceClient {
            name: name.to_owned(),
            settings: BinanceSettings {
                rest_url: settings.rest_url.trim_end_matches('/').to_owned(),
                sapi_url: settings.sapi_url.trim_end_matches('/').to_owned(),
                ..settings
            },
            http,
            limits,
            clock: VenueClock::default(),
            feed: Arc::new(OrderFeed::default()),
            seen_limits: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    pub async fn sync_clock(&self) -> Result<i64, ExchangeError> {
        let before = Utc::now();
        let server = self.server_time().await?;
        Ok(self.clock.measured(before, server, Utc::now()).0)
    }

    /// Starts the user data stream (when a WebSocket URL is configured); it
    /// runs until `stop`.
    pub fn start_stream(self: &Arc<Self>, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let ws_url = self.settings.ws_url.clone()?;
        Some(tokio::spawn(super::stream::run(self.clone(), ws_url, self.feed.clone(), stop)))
    }

    /// A listen key for the user data stream (`POST /fapi/v1/listenKey`),
    /// or the current one kept alive for another 60 minutes (`PUT`).
    pub async fn listen_key(&self, keep_alive: bool) -> Result<String, ExchangeError> {
        let call = self.unsigned(if keep_alive { Method::PUT } else { Method::POST }, "/fapi/v1/listenKey", Vec::new());
        let key: models::ListenKey = model("/fapi/v1/listenKey", self.call(call).await?)?;
        Ok(key.listen_key)
    }

    /// Takes `offset_ms` as measured (a test skews the clock with it).
    pub fn assume_clock_offset_ms(&self, offset_ms: i64) {
        self.clock.set(offset_ms);
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ExchangeError> {
        let attempt = rest::Attempt {
            exchange: &self.name,
            endpoint: call.endpoint,
            booked: call.booked,
            signed: call.signed,
            timestamp_refused: code::TIMESTAMP_OUTSIDE_RECV_WINDOW,
        };
        rest::call(attempt, self.limits.as_ref(), || self.send_once(&call), || self.sync_clock()).await
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Value, ExchangeError> {
        let mut params = call.params.clone();
        if call.signed {
            params.push(("timestamp", self.clock.now_ms(&self.name, self.sync_clock()).await.to_string()));
            params.push(("recvWindow", self.settings.recv_window.as_millis().to_string()));
        }
        let mut query = encode_query(&params);
        if call.signed {
            let signature = sign::hmac_sha256_hex(&self.settings.api_secret, &query);
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("signature=");
            query.push_str(&signature);
        }
        let base = if call.sapi { &self.settings.sapi_url } else { &self.settings.rest_url };
        let mut url = format!("{base}{}", call.path);
        let mut request = if call.method == Method::POST || call.method == Method::PUT {
            self.http
                .request(call.method.clone(), &url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(query)
        } else {
            if !query.is_empty() {
                url.push('?');
                url.push_str(&query);
            }
            self.http.request(call.method.clone(), &url)
        };
        if call.signed || call.path.ends_with("listenKey") {
            request = request.header("X-MBX-APIKEY", &self.settings.api_key);
        }
        let response = request.send().await.map_err(|e| ExchangeError::Transport(rest::describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.observe(&headers).await;
        let retry_after = retry_after(&headers);
        if status.as_u16() == 418 {
            let wait = retry_after.unwrap_or(Duration::from_secs(600));
            let message = format!("{}: HTTP 418 on {}: the address is banned for {wait:?}", self.name, call.path);
            self.limits.banned(wait, &message).await;
            return Err(ExchangeError::RateLimited { ret_code: 418, message, retry_after: wait });
        }
        if status.as_u16() == 429 {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            self.limits.penalize(call.endpoint, wait).await;
            return Err(ExchangeError::RateLimited {
                ret_code: 429,
                message: format!("HTTP 429 on {}", call.path),
                retry_after: wait,
            });
        }
        if status.is_server_error() {
            return Err(ExchangeError::Transport(format!("HTTP {status} on {}", call.path)));
        }
        let text = response.text().await.map_err(|e| ExchangeError::Transport(rest::describe(&e)))?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| ExchangeError::Transport(format!("HTTP {status} on {}: not JSON", call.path)))?;
        if status.is_success() {
            return Ok(body);
        }
        let code = body.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = body.get("msg").and_then(Value::as_str).unwrap_or_default().to_owned();
        Err(match code {
            code::MARGIN_INSUFFICIENT => ExchangeError::InsufficientBalance { ret_code: code, message },
            code::UNKNOWN_EXECUTION | code::TIMEOUT_EXECUTION_UNKNOWN => {
                ExchangeError::Transport(format!("{code} on {}: {message}", call.path))
            }
            _ => ExchangeError::Rejected { ret_code: code, message },
        })
    }

    /// The used-weight and order-count headers into botai's windows.
    async fn observe(&self, headers: &HeaderMap) {
        let get =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i32>().ok());
        for (header, endpoint, limit) in
            [("X-MBX-USED-WEIGHT-1M", endpoint::GLOBAL, 2400), ("X-MBX-ORDER-COUNT-10S", endpoint::ORDER, 300)]
        {
            if let Some(used) = get(header) {
                let remaining = (limit - used).max(0);
                self.seen_limits.lock().unwrap_or_else(|p| p.into_inner()).insert(endpoint, (remaining, limit));
                self.limits.observe(endpoint, remaining, limit, None).await;
            }
        }
    }

    fn signed(
        &self,
        method: Method,
        path: &'static str,
        params: Vec<(&'static str, String)>,
        endpoint: &'static str,
    ) -> Call<'static> {
        Call { method, path, params, endpoint, signed: true, booked: false, sapi: false }
    }

    /// A request that needs no signature (market data, the listen key),
    /// counted in the address's weight only.
    fn unsigned(&self, method: Method, path: &'static str, params: Vec<(&'static str, String)>) -> Call<'static> {
        Call { method, path, params, endpoint: endpoint::GLOBAL, signed: false, booked: false, sapi: false }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An answer as its model type; one that does not parse is an unknown
/// outcome, said with the path.
fn model<T: DeserializeOwned>(path: &str, v: Value) -> Result<T, ExchangeError> {
    serde_json::from_value(v).map_err(|e| {
        ExchangeError::Transport(format!("{path}: the answer does not parse as the venue documents it: {e}"))
    })
}

fn required(figure: models::Figure, field: &str) -> Result<Decimal, ExchangeError> {
    figure.required(field).map_err(ExchangeError::Transport)
}

/// The quote asset of a USDⓈ-M symbol (where its fees are charged).
pub(super) fn quote_of(symbol: &str) -> &'static str {
    ["USDT", "USDC"].into_iter().find(|q| symbol.ends_with(q)).unwrap_or("USDT")
}

/// An order in /fapi/v1/order's shape.
pub fn parse_order(o: &models::Order) -> Result<OrderState, ExchangeError> {
    Ok(OrderState {
        exchange_order_id: o.order_id.to_string(),
        client_order_id: o.client_order_id.clone(),
        symbol: o.symbol.clone(),
        side: o.side.botai(),
        status: o.status.botai(),
        qty: required(o.orig_qty, "origQty")?,
        filled_qty: o.executed_qty.or_zero(),
        avg_price: o.avg_price.or_zero(),
        // The order carries no commission (userTrades does).
        fee: Decimal::ZERO,
        fee_asset: quote_of(&o.symbol).to_owned(),
        venue_reason: None,
        realised_pnl: None,
    })
}

/// Trading rules from /fapi/v1/exchangeInfo's symbol entry.
pub fn parse_instrument(s: &models::SymbolInfo) -> Result<Instrument, ExchangeError> {
    let filter = |t: &str| s.filters.iter().find(|f| f.get("filterType").and_then(Value::as_str) == Some(t));
    let figure = |f: &Value, key: &str| -> Result<Decimal, ExchangeError> {
        let figure: models::Figure = serde_json::from_value(f.get(key).cloned().unwrap_or(Value::Null))
            .map_err(|e| ExchangeError::Transport(format!("{}: {key}: {e}", s.symbol)))?;
        required(figure, key)
    };
    let lot = filter("LOT_SIZE").ok_or_else(|| ExchangeError::Transport("no LOT_SIZE filter".into()))?;
    let price = filter("PRICE_FILTER").ok_or_else(|| ExchangeError::Transport("no PRICE_FILTER".into()))?;
    let notional = filter("MIN_NOTIONAL").map_or(Ok(Decimal::ZERO), |f| figure(f, "notional"))?;
    Ok(Instrument {
        symbol: s.symbol.clone(),
        base: s.base_asset.clone(),
        quote: s.quote_asset.clone(),
        qty_step: figure(lot, "stepSize")?,
        min_qty: figure(lot, "minQty")?,
        min_notional: notional,
        tick_size: figure(price, "tickSize")?,
    })
}

/// /sapi/v1/account/apiRestrictions: a key without `enableFutures` cannot
/// trade here; `enableWithdrawals` is a key that can move funds out.
pub fn parse_key_info(key: &models::ApiRestrictions) -> KeyInfo {
    let permissions = [
        ("enableReading", key.enable_reading),
        ("enableFutures", key.enable_futures),
        ("enableSpotAndMarginTrading", key.enable_spot_and_margin_trading),
        ("enableWithdrawals", key.enable_withdrawals),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect::<Vec<_>>()
    .join(", ");
    KeyInfo {
        read_only: !key.enable_futures,
        can_trade: key.enable_futures,
        can_withdraw: key.enable_withdrawals,
        ips: if key.ip_restrict { vec!["(restricted)".into()] } else { Vec::new() },
        permissions,
    }
}

/// The positions of /fapi/v2/positionRisk: signed (a SHORT leg is
/// negative), at the venue's entry price; a hedge-mode leg says which.
pub fn parse_positions(list: &[models::PositionRisk]) -> Result<Vec<Position>, ExchangeError> {
    let mut out = Vec::new();
    for p in list {
        let size = p.position_amt.or_zero();
        if size.is_zero() {
            continue;
        }
        let leg = match p.position_side {
            models::PositionSide::Both => None,
            models::PositionSide::Long => Some(Side::Buy),
            models::PositionSide::Short => Some(Side::Sell),
        };
        let entry_price = required(p.entry_price, &format!("{} entryPrice", p.symbol))?;
        out.push(Position { symbol: p.symbol.clone(), size, entry_price, leg });
    }
    Ok(out)
}

#[async_trait]
impl Exchange for BinanceClient {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        if order.trigger.is_some() {
            // Since 2025-12-09 USDⓈ-M takes conditional orders only through
            // its Algo Service (/fapi/v1/order answers -4120).
            return Err(ExchangeError::Rejected {
                ret_code: 0,
                message: "conditional orders on Binance USDⓈ-M are algo orders (/fapi/v1/algoOrder), which botai \
                          does not place: nothing was sent"
                    .into(),
            });
        }
        let mut params = vec![
            ("symbol", order.symbol.clone()),
            ("side", if order.side == Side::Buy { "BUY" } else { "SELL" }.to_owned()),
            ("newClientOrderId", order.client_order_id.clone()),
            ("newOrderRespType", "RESULT".to_owned()),
            ("type", if order.price.is_some() { "LIMIT" } else { "MARKET" }.to_owned()),
            ("quantity", order.qty.normalize().to_string()),
        ];
        if let Some(price) = order.price {
            params.push(("price", price.normalize().to_string()));
            params.push(("timeInForce", "GTC".to_owned()));
        }
        let mut call = self.signed(Method::POST, "/fapi/v1/order", params, endpoint::ORDER);
        call.booked = true;
        match self.call(call).await {
            Ok(v) => parse_order(&model("/fapi/v1/order", v)?),
            Err(ExchangeError::Rejected { ret_code: code::DUPLICATE_CLIENT_ORDER_ID, .. }) => {
                Err(ExchangeError::DuplicateOrder { client_order_id: order.client_order_id.clone() })
            }
            Err(e) => Err(e),
        }
    }

    async fn order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        let params = vec![("symbol", symbol.to_owned()), ("origClientOrderId", client_order_id.to_owned())];
        match self.call(self.signed(Method::GET, "/fapi/v1/order", params, endpoint::GLOBAL)).await {
            Ok(v) => parse_order(&model("/fapi/v1/order", v)?).map(Some),
            Err(ExchangeError::Rejected { ret_code: code::NO_SUCH_ORDER, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn open_orders(&self, symbol: &str) -> Result<Vec<OrderState>, ExchangeError> {
        let params = vec![("symbol", symbol.to_owned())];
        let v = self.call(self.signed(Method::GET, "/fapi/v1/openOrders", params, endpoint::GLOBAL)).await?;
        let list: Vec<models::Order> = model("/fapi/v1/openOrders", v)?;
        list.iter().map(parse_order).collect()
    }

    async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<(), ExchangeError> {
        let params = vec![("symbol", symbol.to_owned()), ("origClientOrderId", client_order_id.to_owned())];
        self.call(self.signed(Method::DELETE, "/fapi/v1/order", params, endpoint::ORDER)).await.map(|_| ())
    }

    async fn wallet(&self) -> Result<Wallet, ExchangeError> {
        let asked = Utc::now();
        let v = self.call(self.signed(Method::GET, "/fapi/v2/balance", Vec::new(), endpoint::ACCOUNT)).await?;
        let balances: Vec<models::Balance> = model("/fapi/v2/balance", v)?;
        let mut assets = Vec::new();
        for b in &balances {
            let (total, available) = b.funds().map_err(ExchangeError::Transport)?;
            assets.push(AssetBalance { asset: b.asset.clone(), total, available, locked: total - available });
        }
        Ok(Wallet { as_of: asked, assets })
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
        let call = self.unsigned(Method::GET, "/fapi/v1/time", Vec::new());
        let time: models::ServerTime = model("/fapi/v1/time", self.call(call).await?)?;
        let ms = time.server_time;
        Utc.timestamp_millis_opt(ms).single().ok_or_else(|| ExchangeError::Transport(format!("serverTime {ms}")))
    }

    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError> {
        let call = self.unsigned(Method::GET, "/fapi/v1/exchangeInfo", Vec::new());
        let info: models::ExchangeInfo = model("/fapi/v1/exchangeInfo", self.call(call).await?)?;
        let s = info
            .symbols
            .iter()
            .find(|s| s.symbol == symbol)
            .ok_or_else(|| ExchangeError::Rejected { ret_code: -1121, message: format!("Invalid symbol {symbol}") })?;
        parse_instrument(s)
    }

    async fn last_price(&self, symbol: &str) -> Result<Decimal, ExchangeError> {
        let call = self.unsigned(Method::GET, "/fapi/v1/ticker/price", vec![("symbol", symbol.to_owned())]);
        let ticker: models::TickerPrice = model("/fapi/v1/ticker/price", self.call(call).await?)?;
        required(ticker.price, "price")
    }

    async fn positions(&self) -> Result<Vec<Position>, ExchangeError> {
        let v = self.call(self.signed(Method::GET, "/fapi/v2/positionRisk", Vec::new(), endpoint::ACCOUNT)).await?;
        let list: Vec<models::PositionRisk> = model("/fapi/v2/positionRisk", v)?;
        parse_positions(&list)
    }

    async fn hedge_mode(&self, _symbol: &str) -> Result<bool, ExchangeError> {
        let v = self.call(self.signed(Method::GET, "/fapi/v1/positionSide/dual", Vec::new(), endpoint::GLOBAL)).await?;
        let mode: models::PositionMode = model("/fapi/v1/positionSide/dual", v)?;
        Ok(mode.dual_side_position)
    }

    fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.offset_ms()
    }

    fn stream_connected(&self) -> Option<bool> {
        self.settings.ws_url.as_ref().map(|_| self.feed.connected.load(Ordering::Relaxed))
    }

    fn order_updates(&self) -> Option<tokio::sync::broadcast::Receiver<OrderState>> {
        self.feed.connected.load(Ordering::Relaxed).then(|| self.feed.updates.subscribe())
    }

    fn account_events(&self) -> Option<tokio::sync::broadcast::Receiver<AccountEvent>> {
        self.settings.ws_url.as_ref().map(|_| self.feed.account.subscribe())
    }

    async fn key_info(&self) -> Result<Option<KeyInfo>, ExchangeError> {
        let mut call = self.signed(Method::GET, "/sapi/v1/account/apiRestrictions", Vec::new(), endpoint::GLOBAL);
        call.sapi = true;
        let key: models::ApiRestrictions = model("/sapi/v1/account/apiRestrictions", self.call(call).await?)?;
        Ok(Some(parse_key_info(&key)))
    }

    fn venue_limits(&self) -> Vec<(String, i32, i32)> {
        let seen = self.seen_limits.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(e, (r, l))| ((*e).to_owned(), *r, *l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::OrderStatus;
    use serde_json::json;

    /// The response example of "New Order (TRADE)" in Binance's USDⓈ-M docs.
    #[test]
    fn parses_the_documented_new_order_response() {
        let v = json!({"clientOrderId": "testOrder", "cumQty": "0", "cumQuote": "0", "executedQty": "0",
            "orderId": 22542179, "avgPrice": "0.00000", "origQty": "10", "price": "0", "reduceOnly": false,
            "side": "BUY", "positionSide": "SHORT", "status": "NEW", "stopPrice": "9300", "closePosition": false,
            "symbol": "BTCUSDT", "timeInForce": "GTD", "type": "TRAILING_STOP_MARKET", "origType": "TRAILING_STOP_MARKET",
            "activatePrice": "9020", "priceRate": "0.3", "updateTime": 1566818724722i64, "workingType": "CONTRACT_PRICE",
            "priceProtect": false, "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 1693207680000i64});
        let o = parse_order(&serde_json::from_value(v).unwrap()).unwrap();
        assert_eq!((o.exchange_order_id.as_str(), o.client_order_id.as_str()), ("22542179", "testOrder"));
        assert_eq!((o.status, o.qty, o.filled_qty), (OrderStatus::New, Decimal::new(10, 0), Decimal::ZERO));
    }

    /// The BTCUSDT entry of "Exchange Information" in Binance's docs (filters abridged to those read).
    #[test]
    fn parses_the_documented_exchange_info_symbol() {
        let s = json!({"symbol": "BLZUSDT", "baseAsset": "BLZ", "quoteAsset": "USDT", "filters": [
            {"filterType": "PRICE_FILTER", "maxPrice": "300", "minPrice": "0.0001", "tickSize": "0.0001"},
            {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": "1", "stepSize": "1"},
            {"filterType": "MARKET_LOT_SIZE", "maxQty": "590119", "minQty": "1", "stepSize": "1"},
            {"filterType": "MIN_NOTIONAL", "notional": "5.0"}]});
        let i = parse_instrument(&serde_json::from_value(s).unwrap()).unwrap();
        assert_eq!(
            (i.qty_step, i.min_qty, i.min_notional, i.tick_size),
            (Decimal::ONE, Decimal::ONE, Decimal::new(50, 1), Decimal::new(1, 4))
        );
    }
}
