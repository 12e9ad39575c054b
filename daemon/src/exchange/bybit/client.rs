//! The Bybit V5 adapter (REST): signed requests, the venue's clock, its
//! limit headers fed to botai's shared limiter, and every answer mapped to
//! what it means for an order.
//!
//! Signing follows Bybit's "Integration Guidance": HMAC-SHA256 (hex) over
//! `timestamp + api_key + recv_window + payload`, the payload being the
//! query string of a GET or the JSON body of a POST exactly as sent, in the
//! headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW and
//! X-BAPI-SIGN. The timestamp is our clock plus the offset measured against
//! `/v5/market/time` (at start, every 10 minutes, and on 10002, after which
//! the request is sent once more: a request refused for its timestamp did
//! nothing).
//!
//! Answers and what they mean:
//!
//! | answer | meaning | error |
//! |---|---|---|
//! | retCode 0 | done | — |
//! | 10006 | the UID's endpoint limit: botai's window penalised until X-Bapi-Limit-Reset-Timestamp | `RateLimited` |
//! | HTTP 403 | the IP limit (600 requests / 5 s): the whole exchange waits 10 minutes, critical alert | `RateLimited` (403) |
//! | 110007 | insufficient balance | `InsufficientBalance` |
//! | 110072 | duplicate orderLinkId: the order exists, look it up | `DuplicateOrder` |
//! | 10016, HTTP 5xx, timeout, reset after sending, unparsable | the order may exist | `Transport` (outcome unknown) |
//! | anything else (10001 parameters, 10003/10004/10005 keys, 110xxx) | refused, nothing done | `Rejected` |

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::models;
use super::parse::{
    limit_headers, model, parse_instrument, parse_key_info, parse_order, parse_position, parse_wallet, required,
};
use super::stream::StreamSettings;
use crate::exchange::clock::VenueClock;
use crate::exchange::limits::VenueLimits;
use crate::exchange::rest::{self, describe, encode_query};
use crate::exchange::stream::OrderFeed;
use crate::exchange::{
    ret_code, sign, AccountEvent, Category, Exchange, ExchangeError, Instrument, KeyInfo, OrderRequest, OrderState,
    OrderStatus, Position, Side, TriggerDirection, Wallet,
};

/// Where and how to reach Bybit.
#[derive(Clone)]
pub struct BybitSettings {
    /// https://api.bybit.com, https://api-testnet.bybit.com, or a double.
    pub rest_url: String,
    pub api_key: String,
    pub api_secret: String,
    pub recv_window: Duration,
    pub category: Category,
    pub timeout: Duration,
    /// wss://stream.bybit.com (or testnet, or a double); None: no private
    /// stream, fills are looked up.
    pub ws_url: Option<String>,
}

impl std::fmt::Debug for BybitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BybitSettings")
            .field("rest_url", &self.rest_url)
            .field("api_key", &crate::exchange::redact(&self.api_key))
            .field("api_secret", &"***")
            .field("recv_window", &self.recv_window)
            .field("category", &self.category)
            .field("ws_url", &self.ws_url)
            .finish()
    }
}

/// botai's limiter endpoints for Bybit's rate-limit groups (the rows of
/// `botai.rate_limits` for exchange `bybit`).
pub mod endpoint {
    /// /v5/order/create, amend, cancel (booked by the caller for create).
    pub const ORDER: &str = "order";
    /// /v5/order/realtime, /v5/order/history, /v5/execution/list.
    pub const ORDER_QUERY: &str = "order_query";
    /// /v5/position/list.
    pub const POSITION: &str = "position";
    /// /v5/account/*, /v5/user/query-api.
    pub const ACCOUNT: &str = "account";
    /// Public market data: the IP limit only (`global`).
    pub const MARKET_DATA: &str = "market_data";
}

pub struct BybitClient {
    name: String,
    settings: BybitSettings,
    http: reqwest::Client,
    limits: Arc<dyn VenueLimits>,
    clock: Arc<VenueClock>,
    feed: Arc<OrderFeed>,
    /// The limit headers last seen per botai endpoint: (remaining, limit).
    seen_limits: Mutex<std::collections::BTreeMap<&'static str, (i32, i32)>>,
}

/// What a request asks of the venue.
struct Call<'a> {
    method: Method,
    path: &'a str,
    /// GET query parameters, in the order sent (and signed).
    query: Vec<(&'a str, String)>,
    /// POST body.
    body: Option<Value>,
    endpoint: &'static str,
    signed: bool,
    /// Booked by the caller already (order create).
    booked: bool,
}

impl BybitClient {
    pub fn new(
        name: &str,
        settings: BybitSettings,
        limits: Arc<dyn VenueLimits>,
    ) -> Result<BybitClient, ExchangeError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| ExchangeError::Transport(e.to_string()))?;
        let settings = BybitSettings { rest_url: settings.rest_url.trim_end_matches('/').to_owned(), ..settings };
        Ok(BybitClient {
            name: name.to_owned(),
            settings,
            http,
            limits,
            clock: Arc::new(VenueClock::default()),
            feed: Arc::new(OrderFeed::default()),
            seen_limits: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// Starts the private stream (when a WebSocket URL is configured); it
    /// runs until `stop`.
    pub fn start_stream(&self, stop: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let ws_url = self.settings.ws_url.clone()?;
        let clock = self.clock.clone();
        let settings = StreamSettings {
            ws_url,
            api_key: self.settings.api_key.clone(),
            api_secret: self.settings.api_secret.clone(),
            category: self.settings.category,
            clock_offset_ms: Arc::new(move || clock.offset_ms().unwrap_or(0)),
        };
        Some(tokio::spawn(super::stream::run(settings, self.feed.clone(), stop)))
    }

    /// Whether the private stream is connected and subscribed.
    pub fn stream_connected(&self) -> bool {
        self.feed.connected.load(Ordering::Relaxed)
    }

    pub fn category(&self) -> Category {
        self.settings.category
    }

    /// Measures the venue's clock against ours (half the round trip
    /// assumed each way) and keeps the offset.
    pub async fn sync_clock(&self) -> Result<i64, ExchangeError> {
        let before = Utc::now();
        let server = self.server_time().await?;
        let after = Utc::now();
        let (offset, previous) = self.clock.measured(before, server, after);
        if previous.is_none_or(|p| (p - offset).abs() > 500) {
            info!(exchange = %self.name, offset_ms = offset, round_trip_ms = (after - before).num_milliseconds(), "venue clock measured");
        }
        Ok(offset)
    }

    /// Takes `offset_ms` as the measured offset (a test skews the clock
    /// with it; the next 10002 measures it again).
    pub fn assume_clock_offset_ms(&self, offset_ms: i64) {
        self.clock.set(offset_ms);
    }

    /// Sends a call: booked, signed, its limit headers observed, its answer
    /// mapped. A 10002 (timestamp) re-measures the clock and sends once more.
    async fn call(&self, call: Call<'_>) -> Result<Value, ExchangeError> {
        let attempt = rest::Attempt {
            exchange: &self.name,
            endpoint: call.endpoint,
            booked: call.booked,
            signed: call.signed,
            timestamp_refused: ret_code::TIMESTAMP_OUT_OF_WINDOW,
        };
        rest::call(attempt, self.limits.as_ref(), || self.send_once(&call), || self.sync_clock()).await
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Value, ExchangeError> {
        let query = encode_query(&call.query);
        let body = call.body.as_ref().map(|b| b.to_string());
        let mut url = format!("{}{}", self.settings.rest_url, call.path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let mut request = self.http.request(call.method.clone(), &url);
        if call.signed {
            let timestamp = self.clock.now_ms(&self.name, self.sync_clock()).await;
            let recv_window = self.settings.recv_window.as_millis() as u64;
            let payload = body.as_deref().unwrap_or(&query);
            let signature =
                sign::bybit(&self.settings.api_secret, timestamp, &self.settings.api_key, recv_window, payload);
            request = request
                .header("X-BAPI-API-KEY", &self.settings.api_key)
                .header("X-BAPI-TIMESTAMP", timestamp.to_string())
                .header("X-BAPI-RECV-WINDOW", recv_window.to_string())
                .header("X-BAPI-SIGN", signature);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| ExchangeError::Transport(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status == reqwest::StatusCode::FORBIDDEN {
            let wait = Duration::from_secs(600);
            let message = format!(
                "{}: HTTP 403 on {} (the IP request limit): every request waits 10 minutes",
                self.name, call.path
            );
            self.limits.banned(wait, &message).await;
            return Err(ExchangeError::RateLimited { ret_code: 403, message, retry_after: wait });
        }
        if let Some((remaining, limit, reset)) = limit_headers(&headers) {
            if call.endpoint != endpoint::MARKET_DATA {
                // The reset timestamp is a reset only while the limit is
                // broken; otherwise Bybit sends its current time. On our
                // clock, a reset is the venue's minus the offset.
                let offset = chrono::Duration::milliseconds(self.clock_offset_ms().unwrap_or(0));
                let reset = reset.map(|r| r - offset).filter(|r| *r > Utc::now());
                self.seen_limits.lock().unwrap_or_else(|p| p.into_inner()).insert(call.endpoint, (remaining, limit));
                self.limits.observe(call.endpoint, remaining, limit, reset).await;
            }
        }
        if status.is_server_error() {
            return Err(ExchangeError::Transport(format!("HTTP {status} on {}", call.path)));
        }
        let text = response.text().await.map_err(|e| ExchangeError::Transport(describe(&e)))?;
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            ExchangeError::Transport(format!("HTTP {status} on {}: not JSON: {}", call.path, clip(&text)))
        })?;
        let code = body
            .get("retCode")
            .and_then(Value::as_i64)
            .ok_or_else(|| ExchangeError::Transport(format!("HTTP {status} on {}: no retCode", call.path)))?;
        let message = body.get("retMsg").and_then(Value::as_str).unwrap_or_default().to_owned();
        debug!(exchange = %self.name, path = call.path, code, "answer");
        match code {
            ret_code::OK => Ok(body.get("result").cloned().unwrap_or(Value::Null)),
            ret_code::TOO_MANY_VISITS => {
                let retry_after = reset_in(&headers);
                self.limits.penalize(call.endpoint, retry_after).await;
                Err(ExchangeError::RateLimited { ret_code: code, message, retry_after })
            }
            ret_code::INSUFFICIENT_BALANCE => Err(ExchangeError::InsufficientBalance { ret_code: code, message }),
            ret_code::SERVER_ERROR => {
                Err(ExchangeError::Transport(format!("retCode 10016 on {}: {message}", call.path)))
            }
            _ => Err(ExchangeError::Rejected { ret_code: code, message }),
        }
    }

    fn private_get(
        &self,
        path: &'static str,
        endpoint: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> Call<'static> {
        Call { method: Method::GET, path, query, body: None, endpoint, signed: true, booked: false }
    }

    /// Looks an order up among open and recent orders, then in the history.
    async fn find_order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        for path in ["/v5/order/realtime", "/v5/order/history"] {
            let query = vec![
                ("category", self.settings.category.as_str().to_owned()),
                ("symbol", symbol.to_owned()),
                ("orderLinkId", client_order_id.to_owned()),
            ];
            let result = self.call(self.private_get(path, endpoint::ORDER_QUERY, query)).await?;
            let page: models::Page<models::Order> = model(path, result)?;
            if let Some(o) = page.list.first() {
                return parse_order(o, self.settings.category).map(Some);
            }
        }
        Ok(None)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Time until the limit resets, from X-Bapi-Limit-Reset-Timestamp (ms).
fn reset_in(headers: &HeaderMap) -> Duration {
    match limit_headers(headers).and_then(|(_, _, reset)| reset) {
        Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::from_millis(100)).max(Duration::from_millis(10)),
        None => Duration::from_secs(1),
    }
}

#[async_trait]
impl Exchange for BybitClient {
    fn name(&self) -> &str {
        &self.name
    }

    /// Sends the order; the answer is an acknowledgement (status New) —
    /// fills come from `order` (or the private stream). The caller has
    /// booked the `order` endpoint.
    fn conditional_orders(&self) -> bool {
        true
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderState, ExchangeError> {
        let category = self.settings.category;
        let body = models::CreateOrder {
            category: category.as_str().to_owned(),
            symbol: order.symbol.clone(),
            side: match order.side {
                Side::Buy => models::Side::Buy,
                Side::Sell => models::Side::Sell,
            },
            order_type: if order.price.is_some() { models::OrderType::Limit } else { models::OrderType::Market },
            qty: order.qty.normalize().to_string(),
            // timeInForce is GTC by default for Limit orders (Bybit's docs;
            // ccxt leaves it out too).
            price: order.price.map(|p| p.normalize().to_string()),
            // Bybit's default unit of a spot market BUY is the quote coin.
            market_unit: (order.price.is_none() && category == Category::Spot).then(|| "baseCoin".to_owned()),
            position_idx: None,
            time_in_force: None,
            // A conditional order: linear says which way the price goes to
            // the trigger, spot files it among the StopOrders.
            trigger_price: order.trigger.map(|t| t.price.normalize().to_string()),
            trigger_direction: order.trigger.filter(|_| category == Category::Linear).map(|t| match t.direction {
                TriggerDirection::Rises => 1,
                TriggerDirection::Falls => 2,
            }),
            order_filter: order.trigger.filter(|_| category == Category::Spot).map(|_| "StopOrder".to_owned()),
            order_link_id: order.client_order_id.clone(),
        };
        let body = serde_json::to_value(&body).map_err(|e| ExchangeError::Transport(e.to_string()))?;
        let call = Call {
            method: Method::POST,
            path: "/v5/order/create",
            query: Vec::new(),
            body: Some(body),
            endpoint: endpoint::ORDER,
            signed: true,
            booked: true,
        };
        let result = match self.call(call).await {
            Ok(r) => r,
            Err(ExchangeError::Rejected { ret_code: ret_code::DUPLICATE_ORDER_LINK_ID, .. }) => {
                return Err(ExchangeError::DuplicateOrder { client_order_id: order.client_order_id.clone() })
            }
            Err(e) => return Err(e),
        };
        let ack: models::OrderAck = model("/v5/order/create", result)?;
        Ok(OrderState {
            exchange_order_id: ack.order_id,
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            status: OrderStatus::New,
            qty: order.qty,
            filled_qty: Decimal::ZERO,
            avg_price: Decimal::ZERO,
            fee: Decimal::ZERO,
            fee_asset: String::new(),
            venue_reason: None,
            realised_pnl: None,
        })
    }

    async fn order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderState>, ExchangeError> {
        self.find_order(symbol, client_order_id).await
    }

    async fn open_orders(&self, symbol: &str) -> Result<Vec<OrderState>, ExchangeError> {
        // Up to 50 a page, the pages linked by a cursor.
        const MAX_PAGES: usize = 20;
        let mut orders = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("category", self.settings.category.as_str().to_owned()),
                ("symbol", symbol.to_owned()),
                ("openOnly", "0".to_owned()),
                ("limit", "50".to_owned()),
            ];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.clone()));
            }
            let result = self.call(self.private_get("/v5/order/realtime", endpoint::ORDER_QUERY, query)).await?;
            let page: models::Page<models::Order> = model("/v5/order/realtime", result)?;
            for o in &page.list {
                let o = parse_order(o, self.settings.category)?;
                // /realtime lists orders that ended moments ago too.
                if !o.status.is_final() {
                    orders.push(o);
                }
            }
            cursor = page.next_page_cursor.unwrap_or_default();
            if cursor.is_empty() {
                return Ok(orders);
            }
        }
        Err(ExchangeError::Transport(format!("more than {} open orders of {symbol}", MAX_PAGES * 50)))
    }

    async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<(), ExchangeError> {
        let body = models::CancelOrder {
            category: self.settings.category.as_str().to_owned(),
            symbol: symbol.to_owned(),
            order_id: None,
            order_link_id: Some(client_order_id.to_owned()),
            // Spot only: a normal order, not a conditional one (the default, said explicitly as ccxt does).
            order_filter: (self.settings.category == Category::Spot).then(|| "Order".to_owned()),
        };
        let body = serde_json::to_value(&body).map_err(|e| ExchangeError::Transport(e.to_string()))?;
        let call = Call {
            method: Method::POST,
            path: "/v5/order/cancel",
            query: Vec::new(),
            body: Some(body),
            endpoint: endpoint::ORDER,
            signed: true,
            booked: false,
        };
        self.call(call).await.map(|_| ())
    }

    async fn wallet(&self) -> Result<Wallet, ExchangeError> {
        let asked = Utc::now();
        let query = vec![("accountType", "UNIFIED".to_owned())];
        let result = self.call(self.private_get("/v5/account/wallet-balance", endpoint::ACCOUNT, query)).await?;
        let page: models::Page<models::WalletAccount> = model("/v5/account/wallet-balance", result)?;
        // The snapshot is no older than the moment we asked for it.
        parse_wallet(&page.list, asked)
    }

    async fn server_time(&self) -> Result<DateTime<Utc>, ExchangeError> {
        let call = Call {
            method: Method::GET,
            path: "/v5/market/time",
            query: Vec::new(),
            body: None,
            endpoint: endpoint::MARKET_DATA,
            signed: false,
            booked: false,
        };
        let result = self.call(call).await?;
        let time: models::ServerTime = model("/v5/market/time", result)?;
        let nanos = time
            .time_nano
            .parse::<i64>()
            .map_err(|_| ExchangeError::Transport("/v5/market/time without timeNano".into()))?;
        Ok(Utc.timestamp_nanos(nanos))
    }

    async fn last_price(&self, symbol: &str) -> Result<Decimal, ExchangeError> {
        let call = Call {
            method: Method::GET,
            path: "/v5/market/tickers",
            query: vec![("category", self.settings.category.as_str().to_owned()), ("symbol", symbol.to_owned())],
            body: None,
            endpoint: endpoint::MARKET_DATA,
            signed: false,
            booked: false,
        };
        let page: models::Page<models::Ticker> = model("/v5/market/tickers", self.call(call).await?)?;
        let ticker = page.list.first().ok_or_else(|| ExchangeError::Rejected {
            ret_code: ret_code::PARAMS_ERROR,
            message: format!("no ticker for {symbol} in {}", self.settings.category),
        })?;
        required(ticker.last_price, "lastPrice")
    }

    async fn instrument(&self, symbol: &str) -> Result<Instrument, ExchangeError> {
        let call = Call {
            method: Method::GET,
            path: "/v5/market/instruments-info",
            query: vec![("category", self.settings.category.as_str().to_owned()), ("symbol", symbol.to_owned())],
            body: None,
            endpoint: endpoint::MARKET_DATA,
            signed: false,
            booked: false,
        };
        let page: models::Page<models::InstrumentInfo> = model("/v5/market/instruments-info", self.call(call).await?)?;
        let i = page.list.first().ok_or_else(|| ExchangeError::Rejected {
            ret_code: ret_code::PARAMS_ERROR,
            message: format!("symbol {symbol} is not traded in {}", self.settings.category),
        })?;
        parse_instrument(i)
    }

    async fn positions(&self) -> Result<Vec<Position>, ExchangeError> {
        if self.settings.category == Category::Spot {
            return Ok(Vec::new());
        }
        let query = vec![
            ("category", self.settings.category.as_str().to_owned()),
            ("settleCoin", "USDT".to_owned()),
            ("limit", "200".to_owned()),
        ];
        let result = self.call(self.private_get("/v5/position/list", endpoint::POSITION, query)).await?;
        let page: models::Page<models::Position> = model("/v5/position/list", result)?;
        let mut out = Vec::new();
        for p in &page.list {
            out.extend(parse_position(p)?);
        }
        Ok(out)
    }

    async fn hedge_mode(&self, symbol: &str) -> Result<bool, ExchangeError> {
        if self.settings.category == Category::Spot {
            return Ok(false);
        }
        let query = vec![("category", self.settings.category.as_str().to_owned()), ("symbol", symbol.to_owned())];
        let result = self.call(self.private_get("/v5/position/list", endpoint::POSITION, query)).await?;
        let page: models::Page<models::Position> = model("/v5/position/list", result)?;
        // One-way mode lists positionIdx 0; hedge mode a leg 1 and a leg 2.
        Ok(page.list.iter().any(|p| p.position_idx != 0))
    }

    fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.offset_ms()
    }

    fn order_updates(&self) -> Option<tokio::sync::broadcast::Receiver<OrderState>> {
        self.stream_connected().then(|| self.feed.updates.subscribe())
    }

    fn account_events(&self) -> Option<tokio::sync::broadcast::Receiver<AccountEvent>> {
        self.settings.ws_url.as_ref().map(|_| self.feed.account.subscribe())
    }

    async fn key_info(&self) -> Result<Option<KeyInfo>, ExchangeError> {
        let result = self.call(self.private_get("/v5/user/query-api", endpoint::ACCOUNT, Vec::new())).await?;
        Ok(Some(parse_key_info(&model("/v5/user/query-api", result)?)))
    }

    fn stream_connected(&self) -> Option<bool> {
        self.settings.ws_url.as_ref().map(|_| BybitClient::stream_connected(self))
    }

    fn venue_limits(&self) -> Vec<(String, i32, i32)> {
        let seen = self.seen_limits.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().map(|(e, (r, l))| ((*e).to_owned(), *r, *l)).collect()
    }
}
