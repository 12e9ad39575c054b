//! E-mail over SMTP with lettre: STARTTLS (587), TLS (465) or, for a relay
//! on the same host or a test server, none; with authentication when a
//! username and password are configured. One message per event to every
//! recipient, its Message-ID derived from the event id, so a mail client
//! shows an event sent twice (after a daemon died mid-send) once.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

use super::config::{EmailConfig, SmtpSecurity};
use super::{Alert, Channel, SendError, Summary};

pub struct Email {
    cfg: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(cfg: EmailConfig) -> anyhow::Result<Email> {
        let host = cfg.smtp_server.as_str();
        let mut builder = match cfg.security {
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        }
        .port(cfg.smtp_port)
        .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from: Mailbox = cfg.from_email.parse()?;
        let to = cfg.to_emails.iter().map(|t| t.parse()).collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Email { transport: builder.build(), cfg, from, to })
    }

    /// One message to every recipient; `id` makes its Message-ID.
    fn message(&self, id: &str, subject: String, body: String) -> Result<Message, SendError> {
        let domain = self.cfg.from_email.rsplit('@').next().unwrap_or("botai.local");
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(format!("[botai] {subject}"))
            .message_id(Some(format!("<botai-{id}@{domain}>")))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            m = m.to(to.clone());
        }
        m.body(body).map_err(|e| SendError::new(format!("building the e-mail: {e}")))
    }

    async fn deliver(&self, message: Message) -> Result<(), SendError> {
        self.transport.send(message).await.map(|_| ()).map_err(|e| SendError::new(format!("SMTP: {e}")))
    }
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn triggers(&self) -> Vec<String> {
        self.cfg.triggers.clone()
    }

    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        self.deliver(self.message(&format!("alert-{}", alert.event_id), alert.title(), alert.text())?).await
    }

    async fn send_summary(&self, summary: &Summary) -> Result<(), SendError> {
        self.deliver(self.message(&summary.id(), summary.title(), summary.text())?).await
    }

    fn describe(&self) -> Value {
        json!({"channel": "email", "smtp": format!("{}:{}", self.cfg.smtp_server, self.cfg.smtp_port),
               "security": format!("{:?}", self.cfg.security).to_lowercase(), "recipients": self.to.len(),
               "authenticated": self.cfg.username.is_some(), "triggers": self.cfg.triggers})
    }
}
