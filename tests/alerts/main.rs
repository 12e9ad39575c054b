//! Alerts reach people (issue 13): Telegram, e-mail and webhooks, each event
//! delivered once per channel however many daemons run, nothing lost while
//! the receivers are down, none while no daemon runs, and a daemon killed
//! mid-send leaves the event to another. The receivers are real servers on
//! loopback: an HTTP server answering like the Bot API (429 included), a
//! real SMTP server (aiosmtpd, with AUTH), a webhook receiver that checks
//! the HMAC signature. And `restart_component`: a stuck ML manager's
//! session is ended, its standby takes over, and it comes back as standby.

mod delivery;
mod receivers;
mod restart;

const BOT_TOKEN: &str = "7301234567:AAH-test-bot-token-never-logged";
const CHAT_ID: &str = "424242";
const SMTP_USER: &str = "alerts@botai.test";
const SMTP_PASSWORD: &str = "smtp-password-never-logged";
const WEBHOOK_SECRET: &str = "webhook-hmac-key-never-logged";
const WEBHOOK_PATH_TOKEN: &str = "path-token-never-logged";
