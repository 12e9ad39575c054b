//! What the venues' REST clients share: a call booked with botai's
//! limiter first, and sent once more after the venue refused a signed
//! request's timestamp, the venue's clock measured again in between (a
//! request refused for its timestamp did nothing, so sending it again
//! cannot trade twice); what goes on the wire the same way for both
//! (a query string) and what is said of a failed request.

use std::future::Future;

use serde_json::Value;
use tracing::warn;

use super::limits::VenueLimits;
use super::ExchangeError;

/// How one call goes out.
pub struct Attempt<'a> {
    /// The exchange's name, for the log.
    pub exchange: &'a str,
    /// botai's limiter endpoint the call books.
    pub endpoint: &'static str,
    /// Booked by the caller already (an order's create).
    pub booked: bool,
    pub signed: bool,
    /// The venue's code for "timestamp outside recvWindow" (Bybit 10002,
    /// Binance -1021).
    pub timestamp_refused: i64,
}

/// Books and sends `send`; a refused timestamp on a signed call runs
/// `resync` (the clock measured again) and sends once more.
pub async fn call<S, SF, R, RF>(
    attempt: Attempt<'_>,
    limits: &dyn VenueLimits,
    mut send: S,
    mut resync: R,
) -> Result<Value, ExchangeError>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<Value, ExchangeError>>,
    R: FnMut() -> RF,
    RF: Future<Output = Result<i64, ExchangeError>>,
{
    let mut resynced = false;
    loop {
        if !attempt.booked {
            limits.book(attempt.endpoint).await?;
        }
        match send().await {
            Err(ExchangeError::Rejected { ret_code, message })
                if ret_code == attempt.timestamp_refused && attempt.signed && !resynced =>
            {
                warn!(exchange = %attempt.exchange, "the venue refused our timestamp ({message}); measuring its clock again");
                resynced = true;
                resync().await?;
            }
            other => return other,
        }
    }
}

/// Errors of reqwest without the URL (it may carry a token on other venues).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "answer cut short"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// `key=value&…` in the given order, values form-encoded as ccxt and
/// Bybit's own SDK send them.
pub fn encode_query(params: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        out.append_pair(k, v);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_like_a_form() {
        let q = encode_query(&[("category", "spot".into()), ("orderLinkId", "a b/c".into())]);
        assert_eq!(q, "category=spot&orderLinkId=a+b%2Fc");
    }
}
