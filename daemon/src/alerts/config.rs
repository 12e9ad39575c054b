//! Where alerts go: `config/alerts.yaml` in the original design's shape
//! (`alerts.email`, `alerts.telegram`, plus `alerts.webhook`), read as it
//! is, then the environment over it:
//!
//! | variable | overrides |
//! |---|---|
//! | `ALERTS_CONFIG` | the file (default `config/alerts.yaml` when it exists) |
//! | `ALERT_TELEGRAM`, `ALERT_EMAIL`, `ALERT_WEBHOOK` (on/off) | `enabled` of the channel |
//! | `TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`, `TELEGRAM_API_URL` | `bot_token`, `chat_id`, the Bot API's address |
//! | `SMTP_HOST`, `SMTP_PORT`, `SMTP_SECURITY`, `SMTP_USERNAME`, `SMTP_PASSWORD` | `smtp_server`, `smtp_port`, `smtp_security`, `smtp_username`, `smtp_password` |
//! | `ALERT_EMAIL_FROM`, `ALERT_EMAIL_TO` (comma-separated) | `from_email`, `to_emails` |
//! | `ALERT_WEBHOOK_URL`, `ALERT_WEBHOOK_SECRET` | `url`, `secret` |
//! | `ALERT_RETRY_MAX` (seconds) | `retry_max_seconds`: the longest wait between attempts |
//! | `ALERT_CLAIM_LEASE` (seconds) | how long a claimed delivery is kept from other daemons (60) |
//!
//! A channel is on when the file says `enabled: true`, or when its
//! essentials come from the environment (a token and a chat; an SMTP host
//! and recipients; a webhook URL); its switch, when set, decides. A string value `${NAME}` in the file
//! is the environment variable NAME. Secrets (the bot token, the SMTP
//! password, the webhook URL, which may carry a token, and its key) are
//! held in [`Secret`], whose Debug and Display print `***`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::env::Source;

/// The original design's trigger names, and '*' for every alert (the
/// mapping to rules is `botai.alert_triggers` in the extension).
pub const TRIGGERS: &[&str] = &[
    "worker_offline",
    "high_error_rate",
    "low_balance",
    "critical_error",
    "worker_restart",
    "rate_limit_exceeded",
    "*",
];

/// A value that must never reach a log line or a status document.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct TelegramConfig {
    pub bot_token: Secret,
    pub chat_id: String,
    /// The Bot API's base address (https://api.telegram.org); tests point
    /// it at a local server.
    pub api_url: String,
    pub triggers: Vec<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the
    /// server does not offer it.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: for a relay on the same host or a test server only.
    None,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp_server: String,
    pub smtp_port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from_email: String,
    pub to_emails: Vec<String>,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Secret,
    /// The HMAC-SHA256 key of the signature header.
    pub secret: Secret,
    pub triggers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub file: Option<PathBuf>,
    pub telegram: Option<TelegramConfig>,
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
    /// The longest wait between two attempts of one delivery.
    pub retry_max: Duration,
    /// How long a claim keeps other deliverers off an event; a send is cut
    /// at half of it.
    pub lease: Duration,
}

impl AlertsConfig {
    /// No channel but the log (tests and tools that deliver nothing).
    pub fn log_only() -> AlertsConfig {
        AlertsConfig {
            file: None,
            telegram: None,
            email: None,
            webhook: None,
            retry_max: Duration::from_secs(300),
            lease: Duration::from_secs(60),
        }
    }
}

// --- the file, as the original design wrote it ------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    alerts: FileAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    email: Option<FileEmail>,
    telegram: Option<FileTelegram>,
    webhook: Option<FileWebhook>,
    retry_max_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmail {
    enabled: Option<bool>,
    smtp_server: Option<String>,
    smtp_port: Option<u16>,
    smtp_security: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    from_email: Option<String>,
    #[serde(default)]
    to_emails: Vec<String>,
    triggers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTelegram {
    enabled: Option<bool>,
    bot_token: Option<String>,
    chat_id: Option<serde_yaml_ng::Value>,
    triggers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    enabled: Option<bool>,
    url: Option<String>,
    secret: Option<String>,
    triggers: Option<Vec<String>>,
}

/// `${NAME}` is the environment variable NAME (empty when unset).
fn expand(v: Option<String>) -> Option<String> {
    let v = v?;
    let t = v.trim();
    let value = match t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(name) => std::env::var(name).unwrap_or_default(),
        None => t.to_owned(),
    };
    Some(value).filter(|s| !s.is_empty())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn triggers(channel: &str, given: Option<Vec<String>>) -> Result<Vec<String>> {
    let list = given.unwrap_or_else(|| vec!["*".to_owned()]);
    for t in &list {
        if !TRIGGERS.contains(&t.as_str()) {
            bail!("alerts.{channel}.triggers: unknown trigger {t:?} (known: {})", TRIGGERS.join(", "));
        }
    }
    if list.is_empty() {
        bail!("alerts.{channel}.triggers is empty: list the triggers it takes, or leave it out for all of them");
    }
    Ok(list)
}

/// Whether a channel is on: its switch when set; else on when the file
/// says so or its essentials come from the environment (the environment
/// wins over a file that ships with every channel off).
fn enabled(src: &Source, switch: &str, file: Option<bool>, from_env: bool) -> Result<bool> {
    if env(switch).is_some() {
        return src.switch(switch, false);
    }
    Ok(file.unwrap_or(false) || from_env)
}

fn http_url(what: &str, v: &str) -> Result<()> {
    let u = url::Url::parse(v).map_err(|_| anyhow::anyhow!("{what} is not a URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        bail!("{what} must be an http:// or https:// URL with a host");
    }
    Ok(())
}

fn mailbox(what: &str, v: &str) -> Result<()> {
    v.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{what}: {v:?} is not an e-mail address ({e})"))
}

impl AlertsConfig {
    pub fn load(src: &Source) -> Result<AlertsConfig> {
        let path = match env("ALERTS_CONFIG") {
            Some(p) => Some(PathBuf::from(p)),
            None => Some(PathBuf::from("config/alerts.yaml")).filter(|p| p.exists()),
        };
        let file = match &path {
            Some(p) => read(p)?,
            None => File::default(),
        };
        let where_ =
            path.as_ref().map_or("the environment".to_owned(), |p| format!("{} or the environment", p.display()));
        let a = file.alerts;

        let tg = a.telegram.unwrap_or_default();
        let token = env("TELEGRAM_BOT_TOKEN").or_else(|| expand(tg.bot_token));
        let chat = env("TELEGRAM_CHAT_ID").or_else(|| match tg.chat_id {
            Some(serde_yaml_ng::Value::Number(n)) => Some(n.to_string()),
            Some(serde_yaml_ng::Value::String(s)) => expand(Some(s)),
            _ => None,
        });
        let telegram_env = env("TELEGRAM_BOT_TOKEN").is_some() && env("TELEGRAM_CHAT_ID").is_some();
        let telegram = if enabled(src, "ALERT_TELEGRAM", tg.enabled, telegram_env)? {
            let (Some(token), Some(chat_id)) = (token, chat) else {
                bail!("alerts.telegram is enabled but needs bot_token and chat_id (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID; {where_})");
            };
            if !chat_id.starts_with('@') && chat_id.parse::<i64>().is_err() {
                bail!("alerts.telegram.chat_id must be a numeric chat id or @channelname");
            }
            let api_url = env("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".to_owned());
            http_url("TELEGRAM_API_URL", &api_url)?;
            Some(TelegramConfig {
                bot_token: Secret::new(token),
                chat_id,
                api_url: api_url.trim_end_matches('/').to_owned(),
                triggers: triggers("telegram", tg.triggers)?,
            })
        } else {
            None
        };

        let em = a.email.unwrap_or_default();
        let server = env("SMTP_HOST").or_else(|| expand(em.smtp_server));
        let to: Vec<String> = match env("ALERT_EMAIL_TO") {
            Some(list) => list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            None => em.to_emails.into_iter().filter_map(|s| expand(Some(s))).collect(),
        };
        let email_env = env("SMTP_HOST").is_some() && env("ALERT_EMAIL_TO").is_some();
        let email = if enabled(src, "ALERT_EMAIL", em.enabled, email_env)? {
            let Some(smtp_server) = server else {
                bail!("alerts.email is enabled but needs smtp_server (SMTP_HOST; {where_})");
            };
            let from_email = env("ALERT_EMAIL_FROM").or_else(|| expand(em.from_email));
            let Some(from_email) = from_email else {
                bail!("alerts.email is enabled but needs from_email (ALERT_EMAIL_FROM; {where_})");
            };
            if to.is_empty() {
                bail!("alerts.email is enabled but needs to_emails (ALERT_EMAIL_TO; {where_})");
            }
            mailbox("alerts.email.from_email", &from_email)?;
            for t in &to {
                mailbox("alerts.email.to_emails", t)?;
            }
            let security = match env("SMTP_SECURITY").or(em.smtp_security).as_deref().map(str::to_lowercase).as_deref()
            {
                None | Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") | Some("ssl") => SmtpSecurity::Tls,
                Some("none") => SmtpSecurity::None,
                Some(other) => bail!("alerts.email.smtp_security: expected starttls, tls or none, got {other:?}"),
            };
            let default_port = if security == SmtpSecurity::Tls { 465 } else { 587 };
            let smtp_port = match env("SMTP_PORT") {
                Some(p) => p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("SMTP_PORT: expected a TCP port, got {p:?}"))?,
                None => em.smtp_port.unwrap_or(default_port),
            };
            let username = env("SMTP_USERNAME").or_else(|| expand(em.smtp_username));
            let password = env("SMTP_PASSWORD").or_else(|| expand(em.smtp_password)).map(Secret::new);
            if username.is_some() != password.is_some() {
                bail!("alerts.email: smtp_username and smtp_password (SMTP_PASSWORD) go together");
            }
            Some(EmailConfig {
                smtp_server,
                smtp_port,
                security,
                username,
                password,
                from_email,
                to_emails: to,
                triggers: triggers("email", em.triggers)?,
            })
        } else {
            None
        };

        let wh = a.webhook.unwrap_or_default();
        let url = env("ALERT_WEBHOOK_URL").or_else(|| expand(wh.url));
        let webhook = if enabled(src, "ALERT_WEBHOOK", wh.enabled, env("ALERT_WEBHOOK_URL").is_some())? {
            let Some(url) = url else {
                bail!("alerts.webhook is enabled but needs url (ALERT_WEBHOOK_URL; {where_})");
            };
            http_url("the alert webhook URL", &url)?;
            let Some(secret) = env("ALERT_WEBHOOK_SECRET").or_else(|| expand(wh.secret)) else {
                bail!(
                    "alerts.webhook needs secret, the key of its X-Botai-Signature header, so the receiver can tell \
                     botai's calls from anyone's (ALERT_WEBHOOK_SECRET; {where_})"
                );
            };
            Some(WebhookConfig {
                url: Secret::new(url),
                secret: Secret::new(secret),
                triggers: triggers("webhook", wh.triggers)?,
            })
        } else {
            None
        };

        let retry_max = match env("ALERT_RETRY_MAX") {
            Some(_) => src.seconds("ALERT_RETRY_MAX", 300.0)?,
            None => match a.retry_max_seconds {
                Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
                Some(s) => bail!("alerts.retry_max_seconds must be a positive number, not {s}"),
                None => Duration::from_secs(300),
            },
        };
        let lease = src.seconds("ALERT_CLAIM_LEASE", 60.0)?;
        if lease < Duration::from_secs(2) || lease > Duration::from_secs(3600) {
            bail!("ALERT_CLAIM_LEASE: expected 2 to 3600 seconds, got {lease:?}");
        }
        Ok(AlertsConfig { file: path, telegram, email, webhook, retry_max, lease })
    }
}

fn read(p: &Path) -> Result<File> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read the alerts configuration {}", p.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not a valid alerts configuration", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_stars() {
        let s = Secret::new("123456:ABC-token");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let t = TelegramConfig {
            bot_token: s,
            chat_id: "42".into(),
            api_url: "http://x".into(),
            triggers: vec!["*".into()],
        };
        assert!(!format!("{t:?}").contains("ABC-token"));
    }

    #[test]
    fn the_original_file_shape_parses() {
        let f: File = serde_yaml_ng::from_str(
            "alerts:\n  email:\n    enabled: false\n    smtp_server: smtp.gmail.com\n    smtp_port: 587\n    \
             from_email: bot@example.com\n    to_emails: [a@example.com]\n    triggers: [worker_offline, critical_error]\n  \
             telegram:\n    enabled: true\n    bot_token: ${TELEGRAM_BOT_TOKEN}\n    chat_id: -1001234\n    \
             triggers: [worker_offline]\n",
        )
        .unwrap();
        assert_eq!(f.alerts.email.unwrap().smtp_port, Some(587));
        let tg = f.alerts.telegram.unwrap();
        assert_eq!(tg.bot_token.as_deref(), Some("${TELEGRAM_BOT_TOKEN}"));
        assert!(matches!(tg.chat_id, Some(serde_yaml_ng::Value::Number(_))));
    }

    #[test]
    fn unknown_keys_and_triggers_are_refused() {
        assert!(serde_yaml_ng::from_str::<File>("alerts:\n  email:\n    smtp_srever: x\n").is_err());
        assert!(triggers("telegram", Some(vec!["worker_ofline".into()])).is_err());
        assert_eq!(triggers("webhook", None).unwrap(), vec!["*"]);
    }
}
