//! Each event delivered once per channel however many daemons run, nothing
//! lost while the receivers are down, none while no daemon runs, and a
//! daemon killed mid-send leaves the event to another.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use botai_tests::{count, free_port, wait_until, Daemon, TestDatabase};
use serde_json::{json, Value};
use tokio_postgres::Client;

use super::receivers::{bot_api, webhook, Server, Smtp, TelegramLog, WebhookLog};
use super::*;

/// Every channel on, pointed at the receivers.
fn channel_env(telegram: u16, smtp: u16, webhook: u16) -> Vec<(&'static str, String)> {
    vec![
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.into()),
        ("TELEGRAM_CHAT_ID", CHAT_ID.into()),
        ("TELEGRAM_API_URL", format!("http://127.0.0.1:{telegram}")),
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", smtp.to_string()),
        ("SMTP_SECURITY", "none".into()),
        ("SMTP_USERNAME", SMTP_USER.into()),
        ("SMTP_PASSWORD", SMTP_PASSWORD.into()),
        ("ALERT_EMAIL_FROM", "botai@botai.test".into()),
        ("ALERT_EMAIL_TO", "ops@botai.test, oncall@botai.test".into()),
        ("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:{webhook}/hooks/{WEBHOOK_PATH_TOKEN}")),
        ("ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("ALERT_RETRY_MAX", "5".into()),
    ]
}

/// Only the critical_error rule, its alerts resolving `window` seconds
/// after the last critical error: each component reporting one gives two
/// events, opened then resolved. Waits until the alerts the other rules
/// opened (a fresh database has no ml_manager: worker_offline) are
/// resolved; returns the last event id then.
async fn only_critical_errors(db: &Client, window: u32) -> i64 {
    db.batch_execute(&format!(
        "UPDATE botai.alert_rules SET enabled = (rule = 'critical_error'); \
         UPDATE botai.alert_rules SET window_seconds = {window} WHERE rule = 'critical_error'"
    ))
    .await
    .unwrap();
    // A round already running may have read the rules before the update
    // (and open, say, worker_offline after it): two more rounds, and the
    // last has seen them.
    let rounds = "SELECT (botai_monitor_state()->>'rounds')::bigint";
    let after_update = count(db, rounds).await;
    wait_until("two monitor rounds", Duration::from_secs(30), async || count(db, rounds).await >= after_update + 2)
        .await;
    wait_until("the other rules' alerts resolved", Duration::from_secs(30), async || {
        count(db, "SELECT count(*) FROM botai.alerts WHERE status = 'open' AND rule <> 'critical_error'").await == 0
    })
    .await;
    count(db, "SELECT coalesce(max(event_id), 0) FROM botai.alert_events").await
}

async fn critical_error(db: &Client, component: &str) {
    db.query_one("SELECT botai_register_component($1)", &[&component]).await.unwrap();
    db.execute("SELECT botai_report_error($1, 'the disk is on fire', true)", &[&component]).await.unwrap();
}

/// The event ids a message's text covers: one ("… (event 17) at …"), or
/// a summary's ("botai events 17, 18, 21 (…").
fn events_in_text(text: &str) -> Vec<i64> {
    if let Some(at) = text.find("botai events ") {
        let list = text[at + 13..].split(" (").next().unwrap();
        return list.split(", ").map(|id| id.trim().parse().unwrap()).collect();
    }
    let at = text.find("(event ").expect("the message names its event") + 7;
    vec![text[at..].split(')').next().unwrap().parse().unwrap()]
}

/// `botai alerts apply` with `env`, as the operator (the test's superuser).
fn apply_channels(database: &str, env: &[(&'static str, String)]) -> String {
    let mut env = env.to_vec();
    env.push(("OPERATOR_PGUSER", botai_tests::os_user()));
    let (status, out) =
        Daemon::start("alerts-apply", database, &["alerts", "apply"], &env).wait(Duration::from_secs(30));
    assert!(status.success(), "botai alerts apply failed:\n{out}");
    out
}

fn no_secret(what: &str, text: &str) {
    for secret in [BOT_TOKEN, SMTP_PASSWORD, WEBHOOK_SECRET, WEBHOOK_PATH_TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret ({}…)", &secret[..8]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_events_reach_each_channel_exactly_once_from_two_daemons_across_a_minute_of_receivers_down() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let before = only_critical_errors(&db, 4).await;
    let events_since = format!("SELECT count(*) FROM botai.alert_events WHERE event_id > {before}");

    let telegram_log = Arc::new(TelegramLog::default());
    let mut telegram = Server::new(Router::new().fallback(bot_api).with_state(telegram_log.clone()));
    let webhook_log = Arc::new(WebhookLog::default());
    let mut hooks = Server::new(Router::new().fallback(webhook).with_state(webhook_log.clone()));
    let mut smtp = Smtp::new();
    telegram.up().await;
    hooks.up().await;
    smtp.up().await;

    let api_port = free_port();
    let mut env = channel_env(telegram.port, smtp.port, hooks.port);
    // The operator turns the channels on; the daemons only deliver them.
    let applied = apply_channels(&t.name, &env);
    for channel in ["telegram", "email", "webhook"] {
        assert!(applied.contains(&format!("{channel:<9} enabled")), "{applied}");
    }
    env.push(("API_LISTEN", format!("127.0.0.1:{api_port}")));
    let a = Daemon::start("alerts-a", &t.name, &["run", "--mode=api"], &env);
    let b =
        Daemon::start("alerts-b", &t.name, &["run", "--mode=api"], &channel_env(telegram.port, smtp.port, hooks.port));
    for d in [&a, &b] {
        for channel in ["log", "telegram", "email", "webhook"] {
            d.wait_for_output(&format!("delivering alerts to {channel} "), Duration::from_secs(30)).await;
        }
    }

    // Four events with the receivers up.
    for c in ["disk-1", "disk-2"] {
        critical_error(&db, c).await;
    }
    wait_until("four events", Duration::from_secs(30), async || count(&db, &events_since).await == 4).await;

    // The receivers go down for a minute; thirty events happen meanwhile.
    let down_at = Instant::now();
    telegram.down().await;
    hooks.down().await;
    smtp.down();
    for k in 3..18 {
        critical_error(&db, &format!("disk-{k}")).await;
    }
    wait_until("34 events", Duration::from_secs(30), async || count(&db, &events_since).await == 34).await;
    wait_until("failed attempts recorded while the receivers are down", Duration::from_secs(30), async || {
        count(
            &db,
            "SELECT count(DISTINCT channel) FROM botai.alert_deliveries \
             WHERE status = 'pending' AND attempts > 0 AND last_error IS NOT NULL",
        )
        .await
            == 3
    })
    .await;
    let owed = count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'pending'").await;
    println!("  receivers down: {owed} deliveries owed, retried with backoff");
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_at.elapsed())).await;
    telegram.up().await;
    hooks.up().await;
    smtp.up().await;
    let up_at = Instant::now();
    // A fresh alert as the receivers return (a warning: not what goes
    // first anyway): it must not wait behind the backlog (issue 26 item 10).
    db.batch_execute(
        "UPDATE botai.alert_rules SET enabled = true, window_seconds = 4 WHERE rule = 'high_error_rate'; \
         SELECT botai_register_component('fresh'); \
         SELECT botai_report_error('fresh', 'boom') FROM generate_series(1, 11)",
    )
    .await
    .unwrap();
    let fresh_at = Instant::now();
    let mut fresh_event = 0;
    wait_until("the fresh alert opens", Duration::from_secs(30), async || {
        fresh_event = count(
            &db,
            "SELECT coalesce(max(e.event_id), 0) FROM botai.alert_events e JOIN botai.alerts a USING (alert_id) \
             WHERE a.rule = 'high_error_rate' AND e.event = 'opened'",
        )
        .await;
        fresh_event > 0
    })
    .await;
    // E-mail takes high_error_rate (Telegram, as configured, does not).
    wait_until("the fresh alert reaches the e-mail", Duration::from_secs(120), async || {
        smtp.accepted.lock().unwrap().iter().any(|m| {
            let id = m["message_id"].as_str().unwrap_or_default();
            if id.starts_with("<botai-summary-") {
                events_in_text(m["body"].as_str().unwrap_or_default()).contains(&fresh_event)
            } else {
                id.starts_with(&format!("<botai-alert-{fresh_event}@"))
            }
        })
    })
    .await;
    let fresh_took = fresh_at.elapsed();
    println!(
        "  the fresh alert (event {fresh_event}) reached the e-mail {:.1} s after it was raised, beside a backlog of 30",
        fresh_took.as_secs_f64()
    );

    wait_until("every delivery made", Duration::from_secs(120), async || {
        count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'pending'").await == 0
    })
    .await;
    println!("  every owed delivery made {:.1} s after the receivers came back", up_at.elapsed().as_secs_f64());
    // Anything sent twice would arrive now.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let events: BTreeSet<i64> = db
        .query("SELECT event_id FROM botai.alert_events WHERE event_id > $1", &[&before])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let described: Vec<String> = db
        .query(
            "SELECT e.event_id || ' ' || e.event || ' ' || a.rule || ' ' || a.subject FROM botai.alert_events e \
             JOIN botai.alerts a USING (alert_id) WHERE e.event_id > $1 ORDER BY 1",
            &[&before],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // 34 events of critical_error, and the fresh one (its resolution may
    // follow).
    assert!(events.len() >= 35, "{described:#?}");
    let delivered = count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE status = 'delivered'").await;
    let owed_in_all = count(&db, "SELECT count(*) FROM botai.alert_deliveries").await;
    assert_eq!(delivered, owed_in_all, "every event owed to a channel was delivered to it");
    // What each channel takes (its triggers): every critical_error event;
    // high_error_rate only where the triggers say so.
    let owed = async |channel: &str| -> BTreeSet<i64> {
        db.query(
            "SELECT event_id FROM botai.alert_deliveries WHERE channel = $1 AND event_id > $2",
            &[&channel, &before],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };

    let messages: Vec<(Instant, Value)> = telegram_log.accepted.lock().unwrap().clone();
    let telegram_events: Vec<i64> =
        messages.iter().flat_map(|(_, m)| events_in_text(m["text"].as_str().unwrap())).collect();
    let emails: Vec<Value> = smtp.accepted.lock().unwrap().clone();
    let email_events: Vec<i64> = emails
        .iter()
        .flat_map(|m| {
            let id = m["message_id"].as_str().unwrap();
            if id.starts_with("<botai-summary-") {
                events_in_text(m["body"].as_str().unwrap())
            } else {
                vec![id.trim_start_matches("<botai-alert-").split('@').next().unwrap().parse().unwrap()]
            }
        })
        .collect();
    let webhook_events: Vec<i64> = webhook_log.accepted.lock().unwrap().clone();
    let summaries = messages.iter().filter(|(_, m)| m["text"].as_str().unwrap().starts_with("[SUMMARY]")).count();
    println!(
        "  {} events: telegram {} messages ({summaries} summaries, {} answered 429), e-mail {}, webhook {} calls; \
         bad signatures {}, bad tokens {}",
        events.len(),
        messages.len(),
        telegram_log.too_many.load(Ordering::SeqCst),
        emails.len(),
        webhook_log.calls.load(Ordering::SeqCst),
        webhook_log.bad_signature.load(Ordering::SeqCst),
        telegram_log.bad_token.load(Ordering::SeqCst)
    );
    for (channel, got) in [("telegram", &telegram_events), ("email", &email_events), ("webhook", &webhook_events)] {
        let expected = owed(channel).await;
        assert!(expected.len() >= 34, "{channel}: owed {expected:?}");
        assert_eq!(got.len(), expected.len(), "{channel}: each event in exactly one message, got {got:?}");
        let distinct: BTreeSet<i64> = got.iter().copied().collect();
        assert_eq!(distinct, expected, "{channel}: each event once");
    }
    assert!(summaries >= 1, "the backlog went as a summary");
    assert!(messages.len() < events.len() / 2, "a backlog is not sent one message per event");
    assert!(fresh_took < Duration::from_secs(20), "the fresh alert waited behind the backlog: {fresh_took:?}");
    assert_eq!(telegram_log.too_many.load(Ordering::SeqCst), 1, "the Bot API's 429 was met, and retried");
    assert_eq!(telegram_log.bad_token.load(Ordering::SeqCst), 0);
    assert_eq!(webhook_log.bad_signature.load(Ordering::SeqCst), 0, "every webhook call is signed");
    for m in &messages {
        assert_eq!(m.1["chat_id"], CHAT_ID);
    }
    // Telegram's pace: never two messages to the chat within a second.
    let gaps: Vec<f64> = messages.windows(2).map(|w| (w[1].0 - w[0].0).as_secs_f64()).collect();
    let closest = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    println!("  closest two Telegram messages: {closest:.2} s apart");
    assert!(closest >= 1.0, "two messages to one chat within a second: {gaps:?}");
    for e in &emails {
        assert_eq!(e["auth"], SMTP_USER, "the e-mail was sent authenticated");
        assert_eq!(e["to"], json!(["ops@botai.test", "oncall@botai.test"]));
        let subject = e["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("[botai] [CRITICAL] critical_error opened: disk-")
                || subject.starts_with("[botai] [RESOLVED] critical_error resolved: disk-")
                || subject.starts_with("[botai] [SUMMARY] ")
                || subject.contains("high_error_rate"),
            "{subject}"
        );
    }

    // Both daemons took part or stood ready; neither leaked a secret.
    let by: Vec<(String, i64)> = db
        .query("SELECT split_part(claimed_by, ':', 2), count(*) FROM botai.alert_deliveries GROUP BY 1 ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    println!("  deliveries by daemon pid: {by:?}");
    let status = reqwest::get(format!("http://127.0.0.1:{api_port}/api/status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("\"alert_channels\""), "{status}");
    no_secret("/api/status", &status);
    let errors: String = db
        .query_one("SELECT coalesce(string_agg(last_error, ' | '), '') FROM botai.alert_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    no_secret("botai.alert_deliveries.last_error", &errors);
    no_secret("daemon a's log", &a.output());
    no_secret("daemon b's log", &b.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_raised_with_no_daemon_running_is_delivered_and_a_send_killed_midway_is_made_by_another_daemon() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    only_critical_errors(&db, 3600).await;
    // The channel exists (a daemon ran before); no daemon runs now.
    db.query_one("SELECT botai_alert_channel('webhook', ARRAY['critical_error'])", &[]).await.unwrap();
    critical_error(&db, "lonely").await;
    wait_until("the event is owed", Duration::from_secs(30), async || {
        count(&db, "SELECT count(*) FROM botai.alert_deliveries WHERE channel = 'webhook' AND status = 'pending'").await
            == 1
    })
    .await;

    let log = Arc::new(WebhookLog::default());
    log.hang_first.store(true, Ordering::SeqCst);
    let mut hooks = Server::new(Router::new().fallback(webhook).with_state(log.clone()));
    hooks.up().await;
    let env = |_: &str| {
        vec![
            ("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:{}/hooks/{WEBHOOK_PATH_TOKEN}", hooks.port)),
            ("ALERT_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("ALERT_CLAIM_LEASE", "6".to_owned()),
        ]
    };
    let mut first = Daemon::start("alerts-first", &t.name, &["run", "--mode=api"], &env("first"));
    wait_until("the first daemon sends the event", Duration::from_secs(30), async || {
        !log.seen.lock().unwrap().is_empty()
    })
    .await;
    // Killed while the receiver has the request and has not answered.
    first.kill();
    let killed_at = Instant::now();
    assert!(log.accepted.lock().unwrap().is_empty());
    let second = Daemon::start("alerts-second", &t.name, &["run", "--mode=api"], &env("second"));
    wait_until("another daemon delivers it", Duration::from_secs(30), async || {
        !log.accepted.lock().unwrap().is_empty()
    })
    .await;
    println!(
        "  delivered by the second daemon {:.1} s after the first was killed mid-send",
        killed_at.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = log.accepted.lock().unwrap().clone();
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "accepted once: {accepted:?}");
    assert_eq!(seen.len(), 2, "the receiver saw the same event id twice (the channel's at-least-once): {seen:?}");
    assert_eq!(seen[0], seen[1]);
    let (status, attempts): (String, i32) = {
        let r = db
            .query_one("SELECT status, attempts FROM botai.alert_deliveries WHERE channel = 'webhook'", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((status.as_str(), attempts), ("delivered", 2));
    let _ = second;
}
