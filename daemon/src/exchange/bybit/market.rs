//! Bybit's public market data as the venue serves it: one-minute klines
//! over REST (`GET /v5/market/kline`, paged back 1000 rows at a time) and
//! the public `kline.{interval}.{symbol}` topic's pushes, read through the
//! venue's models. The live market (market/live.rs) asks here; it speaks no
//! Bybit itself.

use chrono::{DateTime, Utc};

use super::models;
use crate::exchange::Category;

/// Rows per page of /v5/market/kline.
const PAGE: usize = 1000;

/// One-minute klines of `symbol` from `from` (the newest 1000 without it)
/// up to `to`, oldest first, each `[start, open, high, low, close, volume,
/// turnover]` as Bybit lists it.
pub async fn klines(
    http: &reqwest::Client,
    rest_url: &str,
    category: Category,
    symbol: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<[String; 7]>, String> {
    let url = format!("{}/v5/market/kline", rest_url.trim_end_matches('/'));
    let mut out: Vec<[String; 7]> = Vec::new();
    let mut end = to.map(|t| t.timestamp_millis());
    loop {
        let mut query = vec![
            ("category", category.as_str().to_owned()),
            ("symbol", symbol.to_owned()),
            ("interval", "1".to_owned()),
            ("limit", PAGE.to_string()),
        ];
        if let Some(from) = from {
            query.push(("start", from.timestamp_millis().to_string()));
        }
        if let Some(end) = end {
            query.push(("end", end.to_string()));
        }
        let answer: models::Response<serde_json::Value> = http
            .get(&url)
            .query(&query)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", crate::exchange::rest::describe(&e)))?
            .json()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if answer.ret_code != 0 {
            return Err(format!("GET {url}: {} {}", answer.ret_code, answer.ret_msg));
        }
        let list: models::KlineList =
            serde_json::from_value(answer.result).map_err(|e| format!("GET {url}: the answer does not parse: {e}"))?;
        let full = list.list.len() == PAGE;
        let mut page = list.list;
        page.reverse();
        let oldest = page.first().and_then(|row| row[0].parse::<i64>().ok());
        page.append(&mut out);
        out = page;
        // Without `from`, one page is the history; with it, page back until it is reached.
        match (from, oldest) {
            (Some(from), Some(oldest)) if full && oldest > from.timestamp_millis() => end = Some(oldest - 60_000),
            _ => return Ok(out),
        }
    }
}
