//! What PUBLIC can do: execute nothing of botai's, and notify the alert
//! channel without getting anything delivered.

use std::time::{Duration, Instant};

use botai_tests::TestDatabase;
use serde_json::Value;

/// Item 11: until the grants are applied nothing of botai is executable by
/// PUBLIC.
#[tokio::test]
async fn a_fresh_install_grants_nothing_to_public() {
    let t = TestDatabase::create(&[]).await;
    let db = t.connect().await;
    let public: Vec<String> = db
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p \
             JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' \
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'botai' \
             WHERE has_function_privilege('public', p.oid, 'EXECUTE') \
                OR p.proacl IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(public.is_empty(), "executable by PUBLIC: {public:?}");
}

/// A tiny HTTP server on loopback that hands every request body to the test.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=secret", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else { continue };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let body = &buf[end + 4..end + 4 + length];
                        let _ = tx.send(serde_json::from_slice(body).unwrap_or(Value::Null));
                        let _ =
                            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

/// Item 11: anyone can `pg_notify('botai_alerts', …)`; the notification only
/// wakes the deliverer, which sends what the outbox owes, read from
/// botai.alerts: a forged payload delivers nothing.
#[tokio::test]
async fn a_forged_alert_notification_is_not_delivered() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    let (url, mut posts) = webhook_receiver().await;
    // The operator turned the channel on (`botai alerts apply`).
    db.query_one("SELECT botai_alert_channel('webhook', ARRAY['*'])", &[]).await.unwrap();
    let mut daemon = botai_tests::Daemon::start(
        "alerts",
        &t.name,
        &["run", "--mode=api"],
        &[("ALERT_WEBHOOK_URL", url), ("ALERT_WEBHOOK_SECRET", "hmac-key".to_owned())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN botai_alerts' AND state = 'idle'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if listening > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon never listened:\n{}", daemon.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forger = t.connect().await;
    forger.batch_execute("SET ROLE botai_reader").await.unwrap();
    forger
        .batch_execute(
            "SELECT pg_notify('botai_alerts', '{\"event\": \"opened\", \"alert_id\": 987654321, \"rule\": \"forged\", \
             \"subject\": \"x\", \"severity\": \"critical\", \"action\": \"page\"}'); \
             SELECT pg_notify('botai_alerts', 'not even json')",
        )
        .await
        .unwrap();
    db.query_one("SELECT botai_register_component('noisy')", &[]).await.unwrap();
    for _ in 0..11 {
        db.execute("SELECT botai_report_error('noisy', 'boom')", &[]).await.unwrap();
    }
    let mut delivered = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(body)) = tokio::time::timeout_at(until, posts.recv()).await {
        let real = body["rule"] == "high_error_rate";
        delivered.push(body);
        if real {
            break;
        }
    }
    let output = daemon.output();
    daemon.kill();
    println!("  delivered: {delivered:?}");
    assert!(delivered.iter().all(|b| b["rule"] != "forged"), "a forged alert was delivered");
    let real = delivered.iter().find(|b| b["rule"] == "high_error_rate").expect("the real alert is delivered");
    assert_eq!(real["subject"], "noisy");
    assert_eq!(real["status"], "open", "the delivered alert is the row");
    assert!(!output.contains("secret"), "the webhook's token never reaches the log");
}
