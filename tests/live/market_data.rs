//! Live klines: the ML manager on Bybit's market data signals as on the
//! replay.

use botai_tests::TestDatabase;
use chrono::Utc;

use super::*;

/// The ML manager on Bybit's live klines (`MARKET_DATA=bybit`, the double
/// serving the replay's bars as Bybit does: REST history, then the public
/// stream) signals exactly what it signals on the replay of the same bars
/// — through a dropped stream, whose missing bars come back over REST.
#[tokio::test(flavor = "multi_thread")]
async fn the_ml_manager_on_live_bybit_klines_signals_as_on_the_replay() {
    let (live_db, replay_db) = (TestDatabase::migrated(&[]).await, TestDatabase::migrated(&[]).await);
    let epoch = Utc::now() + chrono::Duration::seconds(6);
    let replay: Vec<(&str, String)> = vec![
        ("REPLAY_FROM", "2022-01-11T00:00:00Z".into()),
        ("REPLAY_TO", "2022-01-11T03:00:00Z".into()),
        ("REPLAY_SPEED", "240".into()),
        ("REPLAY_EPOCH", epoch.to_rfc3339()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
        // The same signals on both feeds is under test: a threshold they pass.
        ("SIGNAL_THRESHOLD", "0.0004".into()),
    ];
    let double_env = replay.clone();
    let (_double, url) = Daemon::double("double", &live_db.name, &double_env).await;
    let mut live_env = replay.clone();
    live_env.extend([
        ("MARKET_DATA", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.clone()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_CATEGORY", "linear".to_owned()),
    ]);
    let mut live = Daemon::start("ml-live", &live_db.name, &["run", "--mode=ml"], &live_env);
    let on_replay = Daemon::start("ml-replay", &replay_db.name, &["run", "--mode=ml"], &replay);
    live.wait_for_output("kline stream subscribed", Duration::from_secs(30)).await;
    // Halfway through the replayed window: the venue drops the stream.
    let halfway = epoch + chrono::Duration::milliseconds(90 * 60_000 / 240);
    tokio::time::sleep((halfway - Utc::now()).to_std().unwrap_or_default()).await;
    reqwest::Client::new()
        .post(format!("{url}/botai-double/faults"))
        .json(&serde_json::json!({"drop_streams": true}))
        .send()
        .await
        .unwrap();
    let (status, output) = on_replay.wait(Duration::from_secs(120));
    assert!(status.success(), "{output}");
    // The live manager never ends by itself: give it the last bar's push, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    live.kill();
    let out = live.output();
    // Reconnected; the bars closed meanwhile came over REST (a window with
    // a gap is skipped, so a missing bar would cost the next 121 bars' signals).
    assert!(out.matches("kline stream subscribed").count() >= 2, "the stream was dropped and taken up again:\n{out}");
    let signals = |db: tokio_postgres::Client| async move {
        let rows = db.query("SELECT payload->>'bar_time', direction FROM botai.signals ORDER BY 1", &[]).await.unwrap();
        rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>()
    };
    let (from_live, from_replay) = (signals(live_db.connect().await).await, signals(replay_db.connect().await).await);
    println!("  signals: live {}, replay {}", from_live.len(), from_replay.len());
    assert!(from_replay.len() > 10, "the replay signalled: {}", from_replay.len());
    // The live manager subscribed before the replayed window opened (the
    // double's market clock starts a few seconds early): from the window's
    // first signal on, the two agree signal for signal.
    let first = from_replay.first().map(|s| s.0.clone()).unwrap_or_default();
    let live_in_window: Vec<_> = from_live.iter().filter(|s| s.0 >= first).cloned().collect();
    assert_eq!(live_in_window, from_replay, "the same bars, the same signals");
}
