//! Telegram: the Bot API's `sendMessage` to one chat.
//!
//! Telegram allows about one message a second to a chat and 20 a minute to
//! a group; beyond that it answers 429 with `parameters.retry_after`. Each
//! message books a slot of botai's rate limiter first (`telegram/chat` or
//! `telegram/group`, and `telegram/global`), so every daemon shares one
//! pace; a 429 is reported to the limiter (`botai_rate_penalize`), so all
//! of them wait, and the event is due again after retry_after. The bot
//! token is part of the URL: errors are reported without it.
//! botai_rate_acquire answers the seconds until the booked moment; the
//! message goes then.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use serde_json::{json, Value};

use super::config::TelegramConfig;
use super::{Alert, Channel, SendError, Summary};
use crate::db::{self, RateLimitCalls};

/// The longest a send waits for its booked slot (well inside the lease's
/// half a send may take).
const MAX_WAIT: Duration = Duration::from_secs(5);

pub struct Telegram {
    cfg: TelegramConfig,
    http: reqwest::Client,
    pool: Pool,
}

impl Telegram {
    pub fn new(cfg: TelegramConfig, pool: Pool) -> anyhow::Result<Telegram> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Telegram { cfg, http, pool })
    }

    /// Groups and supergroups have negative ids; channels are @names.
    fn endpoint(&self) -> &'static str {
        if self.cfg.chat_id.starts_with('-') || self.cfg.chat_id.starts_with('@') {
            "group"
        } else {
            "chat"
        }
    }
}

/// A text Telegram accepts: at most 4096 characters.
fn message(text: String) -> String {
    if text.chars().count() <= 4096 {
        return text;
    }
    let mut cut: String = text.chars().take(4095).collect();
    cut.push('…');
    cut
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn triggers(&self) -> Vec<String> {
        self.cfg.triggers.clone()
    }

    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        self.send_text(message(alert.text())).await
    }

    async fn send_summary(&self, summary: &Summary) -> Result<(), SendError> {
        self.send_text(message(summary.text())).await
    }

    fn describe(&self) -> Value {
        json!({"channel": "telegram", "chat_id": self.cfg.chat_id, "api": host_of(&self.cfg.api_url),
               "triggers": self.cfg.triggers})
    }
}

impl Telegram {
    /// One `sendMessage`, at botai's pace for the chat.
    async fn send_text(&self, text: String) -> Result<(), SendError> {
        let endpoint = self.endpoint();
        // The booked moment may be a while off when many are queued: sent
        // then, or, past MAX_WAIT, left for a later attempt at that moment.
        let wait = {
            let conn = db::pooled(&self.pool).await.map_err(|e| SendError::new(format!("rate limiter: {e}")))?;
            conn.rate_acquire("telegram", endpoint, None)
                .await
                .map_err(|e| SendError::new(format!("rate limiter: {e}")))?
        };
        let wait = Duration::from_secs_f64(wait.clamp(0.0, 86_400.0));
        if wait > MAX_WAIT {
            return Err(SendError {
                message: format!("Telegram's pace: the next slot is {wait:?} away"),
                retry_after: Some(wait),
            });
        }
        tokio::time::sleep(wait).await;
        let url = format!("{}/bot{}/sendMessage", self.cfg.api_url, self.cfg.bot_token.expose());
        let body = json!({"chat_id": self.cfg.chat_id, "text": text, "disable_web_page_preview": true});
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::new(format!("Telegram: {}", e.without_url())))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && answer["ok"] == true {
            return Ok(());
        }
        let description = answer["description"].as_str().unwrap_or("no description").to_owned();
        let retry_after = answer["parameters"]["retry_after"].as_f64().filter(|s| s.is_finite() && *s >= 0.0);
        if status.as_u16() == 429 || answer["error_code"] == 429 {
            let wait = retry_after.unwrap_or(5.0);
            if let Ok(conn) = db::pooled(&self.pool).await {
                let _ = conn.rate_penalize("telegram", endpoint, wait).await;
            }
            return Err(SendError {
                message: format!("Telegram 429: {description}"),
                retry_after: Some(Duration::from_secs_f64(wait)),
            });
        }
        if let Some(to) = answer["parameters"]["migrate_to_chat_id"].as_i64() {
            return Err(SendError::new(format!(
                "Telegram {status}: the group became a supergroup; set TELEGRAM_CHAT_ID (alerts.telegram.chat_id) to {to}"
            )));
        }
        Err(SendError::new(format!("Telegram {}: {description}", status.as_u16())))
    }
}

/// The host of a URL, nothing of its path (which may carry a token).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(|h| h.to_owned())).unwrap_or_else(|| "?".into())
}
