//! Webhooks: the alert event as a JSON POST, signed so the receiver can
//! tell botai's calls from anyone's.
//!
//! Headers: `X-Botai-Event-Id` (also `Idempotency-Key: botai-alert-<id>`:
//! a receiver that sees an id twice — after a daemon died between the
//! receiver's 2xx and recording it — drops the second), `X-Botai-Timestamp`
//! (Unix seconds) and `X-Botai-Signature: sha256=<hex>`, the HMAC-SHA256,
//! keyed with the configured secret, of `<timestamp>.<body>`. The receiver
//! recomputes it over the raw body and refuses a mismatch or an old
//! timestamp. Any 2xx accepts; 429 and 503 may say `Retry-After` (seconds).

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::config::WebhookConfig;
use super::telegram::host_of;
use super::{Alert, Channel, SendError, Summary};

pub struct Webhook {
    cfg: WebhookConfig,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(cfg: WebhookConfig) -> anyhow::Result<Webhook> {
        // Never follows a redirect: the signed body goes to the configured
        // receiver only, not to whichever host a 3xx names.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Webhook { cfg, http })
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn triggers(&self) -> Vec<String> {
        self.cfg.triggers.clone()
    }

    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        self.post(&alert.doc, &alert.event_id.to_string(), &format!("botai-alert-{}", alert.event_id)).await
    }

    async fn send_summary(&self, summary: &Summary) -> Result<(), SendError> {
        let ids: Vec<String> = summary.events.iter().map(|a| a.event_id.to_string()).collect();
        self.post(&summary.doc(), &ids.join(","), &format!("botai-{}", summary.id())).await
    }

    fn describe(&self) -> Value {
        json!({"channel": "webhook", "host": host_of(self.cfg.url.expose()), "signed": true, "triggers": self.cfg.triggers})
    }
}

impl Webhook {
    /// One signed POST; a 3xx is a failure like any other non-2xx.
    async fn post(&self, doc: &Value, event_ids: &str, idempotency_key: &str) -> Result<(), SendError> {
        let body = serde_json::to_vec(doc).map_err(|e| SendError::new(format!("encoding: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .http
            .post(self.cfg.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Botai-Event-Id", event_ids)
            .header("Idempotency-Key", idempotency_key)
            .header("X-Botai-Timestamp", timestamp.to_string())
            .header("X-Botai-Signature", signature(self.cfg.secret.expose().as_bytes(), timestamp, &body))
            .body(body)
            .send()
            .await
            // The URL may carry a token: never in the message.
            .map_err(|e| SendError::new(format!("webhook: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
        let redirect = if status.is_redirection() { " (a redirect, not followed)" } else { "" };
        Err(SendError { message: format!("webhook answered HTTP {}{redirect}", status.as_u16()), retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Checked against an independent computation:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        let s = signature(b"key", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(s, "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03");
    }
}
