//! The ML manager as a process (issue 5): one active instance with a hot
//! standby, failover after kill -9, and what it does with a bad model or bad
//! data. Runs the real `botai` binary against a database of its own.

use std::time::{Duration, Instant};

use botai_tests::{model_with_manifest, repo_root, Daemon, TestDatabase};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A replay session shared by every process of the test: every bar a
/// signal (threshold 0), ten bars a second.
fn replay_env(epoch: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("REPLAY_EPOCH", epoch.to_rfc3339()),
        ("REPLAY_FROM", "2022-01-12T00:00:00Z".into()),
        ("REPLAY_SPEED", "600".into()),
        ("SIGNAL_THRESHOLD", "0".into()),
        ("WORKER_HEARTBEAT_TIMEOUT", "4".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_within_a_second_of_kill_9_and_never_two_are_active() {
    let t = TestDatabase::migrated(&[]).await;
    let db = t.connect().await;
    let epoch = Utc::now() + chrono::Duration::seconds(3);
    let mut first = Daemon::start("ml-a", &t.name, &["run", "--mode=ml"], &replay_env(epoch));
    first.wait_for_output("active ML manager", Duration::from_secs(30)).await;
    let second = Daemon::start("ml-b", &t.name, &["run", "--mode=ml"], &replay_env(epoch));
    second.wait_for_output("standing by to take over", Duration::from_secs(30)).await;
    // Let the first produce signals for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = db.query_one("SELECT count(*) FROM botai.signals", &[]).await.unwrap().get(0);
        if n >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the active manager produced {n} signals in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_worker: String = db
        .query_one(
            "SELECT worker_id FROM botai.workers WHERE worker_type = 'ml_manager' AND unregistered_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let killed_at = Instant::now();
    first.kill();
    let taken_over = loop {
        let row = db
            .query_opt(
                "SELECT payload->>'worker_id', accepted_at FROM botai.signals WHERE payload->>'worker_id' <> $1 \
                 ORDER BY signal_id LIMIT 1",
                &[&first_worker],
            )
            .await
            .unwrap();
        if let Some(r) = row {
            break r.get::<_, String>(0);
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no signal from the standby 10 s after the kill:\n{}",
            second.output()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let delay = killed_at.elapsed();
    println!(
        "  the standby ({taken_over}) produced its first signal {:.0} ms after kill -9 of the active manager",
        delay.as_secs_f64() * 1e3
    );
    assert!(delay < Duration::from_secs(1), "failover took {delay:?}");
    assert!(second.output().contains("took over as the active ML manager"));

    // Never two active at once: epochs only grow along the signal stream.
    let rows = db.query("SELECT (payload->>'epoch')::bigint FROM botai.signals ORDER BY signal_id", &[]).await.unwrap();
    let epochs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "a signal of an older epoch after a newer one: {epochs:?}");
    let distinct: std::collections::BTreeSet<i64> = epochs.iter().copied().collect();
    assert_eq!(distinct.len(), 2, "two managers, two epochs: {distinct:?}");
    let held: i64 = db
        .query_one("SELECT count(*) FROM botai.workers_status WHERE worker_type = 'ml_manager' AND state IN ('active', 'stale')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1);
}

fn run_ml_expecting_failure(t: &TestDatabase, env: Vec<(&'static str, String)>) -> String {
    let d = Daemon::start("ml-bad", &t.name, &["run", "--mode=ml"], &env);
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(!status.success(), "expected a failure, got success:\n{output}");
    assert!(!output.contains("panicked"), "a panic, not a clear error:\n{output}");
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_corrupt_or_wrong_model_is_a_clear_error() {
    let t = TestDatabase::migrated(&[]).await;
    let dir = repo_root().join("target/test-daemons");
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt =
        model_with_manifest(&dir, "corrupt", b"\x08\x01garbage that is not a protobuf model \xff\xfe", |_| {});
    let unknown_feature = model_with_manifest(&dir, "unknown-feature", &shipped_model(), |m| {
        m["features"] = serde_json::json!(["ret", "range", "clv", "rsi_14"]);
    });
    let no_manifest = dir.join("no-manifest.onnx");
    std::fs::write(&no_manifest, shipped_model()).unwrap();
    let cases = [
        ("missing", repo_root().join("models/no-such-model.onnx"), "not found"),
        ("corrupt", corrupt, "not a valid ONNX model"),
        ("wrong input shape", repo_root().join("tests/fixtures/wrong_window.onnx"), "wrong input"),
        ("no manifest", no_manifest, "no-manifest.json not found"),
        ("unknown feature", unknown_feature, "`rsi_14`, which is not in the catalogue"),
    ];
    for (what, path, says) in cases {
        let out = run_ml_expecting_failure(&t, vec![("MODEL_PATH", path.display().to_string())]);
        let line =
            out.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{what}: no error line:\n{out}"));
        assert!(line.contains(says), "{what}: {line}");
        println!("  {what}: {line}");
    }
    let out = run_ml_expecting_failure(&t, vec![("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so".into())]);
    assert!(out.contains("make onnxruntime"), "says how to get the runtime:\n{out}");
    let out = run_ml_expecting_failure(&t, vec![("ML_DEVICE", "cuda".into())]);
    assert!(out.to_lowercase().contains("cuda"), "a clear CUDA error on a machine without CUDA:\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gaps_and_nans_in_the_data_skip_bars_with_a_log_line_never_a_garbage_signal() {
    let t = TestDatabase::migrated(&[]).await;
    // 400 real bars with one minute missing (row 200) and a NaN close (row 300).
    let source = repo_root().join("data/market/btc-perp-1m-2022-01.csv.gz");
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2_read(&source).read_to_string(&mut s).unwrap();
        s
    };
    let mut lines: Vec<String> = text.lines().take(401).map(str::to_owned).collect();
    let nan_row = lines[301].clone();
    let mut fields: Vec<&str> = nan_row.split(',').collect();
    fields[4] = "NaN";
    lines[301] = fields.join(",");
    lines.remove(201);
    let path = repo_root().join("target/test-daemons").join(format!("{}.csv", botai_tests::unique("gappy")));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let env = vec![
        ("MARKET_DATA", path.display().to_string()),
        ("REPLAY_SPEED", "6000".into()),
        ("SIGNAL_THRESHOLD", "0".into()),
    ];
    let d = Daemon::start("ml-gaps", &t.name, &["run", "--mode=ml"], &env);
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(status.success(), "the manager finished the replay:\n{output}");
    let gap_skips = output.matches("has a gap in the data").count();
    let nan_skips = output.matches("skipping bar").count() - gap_skips;
    println!("  {gap_skips} bars skipped for the gap, {nan_skips} for the NaN close");
    // 399 bars (0..=398); a window ending at i holds bars i-120..=i.
    // The gap lies between bars 199 and 200: the windows holding both end at
    // 200..=319 (120 windows). The NaN close is bar 299 (after the removed
    // row): windows 299..=398, of which 299..=319 already have the gap (79).
    assert_eq!(gap_skips, 120);
    assert_eq!(nan_skips, 79);
    let db = t.connect().await;
    let rows = db.query("SELECT payload FROM botai.signals", &[]).await.unwrap();
    for r in &rows {
        let p: Value = r.get(0);
        for k in ["returns_5m", "returns_15m", "returns_60m", "price"] {
            assert!(p[k].as_f64().is_some_and(f64::is_finite), "garbage in a signal: {p}");
        }
    }
    // Windows end at 120..=398 (279), 199 skipped: at most 80 signals.
    assert!(!rows.is_empty() && rows.len() <= 279 - 199, "{} signals", rows.len());
}

fn shipped_model() -> Vec<u8> {
    std::fs::read(repo_root().join("models/patchtst.onnx")).unwrap()
}

/// Three hours of the sell-off, replayed at 100 bars a second, to the end.
fn sell_off_env(model: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("MODEL_PATH", model.display().to_string()),
        ("REPLAY_FROM", "2022-01-21T20:00:00Z".into()),
        ("REPLAY_TO", "2022-01-21T23:00:00Z".into()),
        ("REPLAY_SPEED", "6000".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_differently_shaped_model_runs_unchanged_through_the_ml_manager() {
    // tests/fixtures/second_model: 60 bars of body, ret_15, vol_z; outputs at
    // 10 and 30 minutes; trades the 30-minute one; margin 0 on fee 0.0006 +
    // slippage 0.0001 per side: a signal needs |prediction| > 0.0014.
    let t = TestDatabase::migrated(&[]).await;
    let d = Daemon::start(
        "ml-second",
        &t.name,
        &["run", "--mode=ml"],
        &sell_off_env(&repo_root().join("tests/fixtures/second_model.onnx")),
    );
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(status.success(), "the manager ran the replay with the second model:\n{output}");
    assert!(output.contains("signal rule: a signal when |predicted return| > 0.00140"), "{output}");
    let db = t.connect().await;
    let rows = db.query("SELECT payload FROM botai.signals ORDER BY signal_id", &[]).await.unwrap();
    let mut entries: Vec<&Value> = Vec::new();
    let payloads: Vec<Value> = rows.iter().map(|r| r.get(0)).collect();
    for p in &payloads {
        assert_eq!(p["model"], "second_model", "{p}");
        assert_eq!(p["trade_horizon_minutes"], 30, "{p}");
        assert!(p["returns_10m"].as_f64().is_some() && p["returns_30m"].as_f64().is_some(), "{p}");
        assert!(p.get("returns_15m").is_none(), "only the model's own horizons: {p}");
        if p.get("intent").is_none() {
            entries.push(p);
        }
    }
    for p in &entries {
        let r = p["predicted_return"].as_f64().unwrap();
        assert!(r.abs() > 0.0014, "an entry signal below the round trip cost: {p}");
        assert_eq!(p["direction"], if r > 0.0 { "BUY" } else { "SELL" });
    }
    println!("  second model: {} signals ({} entries) over 180 bars of the sell-off", payloads.len(), entries.len());
    assert!(
        !entries.is_empty() && entries.len() < 180,
        "{} entries: the rule must pass some bars and hold back others",
        entries.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_cannot_clear_its_costs_emits_nothing_and_says_so() {
    let t = TestDatabase::migrated(&[]).await;
    let dir = repo_root().join("target/test-daemons");
    std::fs::create_dir_all(&dir).unwrap();
    // The second model with no margin that paid on validation.
    let onnx = std::fs::read(repo_root().join("tests/fixtures/second_model.onnx")).unwrap();
    let second: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("tests/fixtures/second_model.json")).unwrap())
            .unwrap();
    let silent = model_with_manifest(&dir, &botai_tests::unique("silent"), &onnx, |m| {
        for k in ["window", "features", "horizons_minutes", "trade_horizon_minutes"] {
            m[k] = second[k].clone();
        }
        m["signal"]["margin"] = Value::Null;
    });
    let d = Daemon::start("ml-silent", &t.name, &["run", "--mode=ml"], &sell_off_env(&silent));
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(status.success(), "{output}");
    assert!(output.contains("signal rule: no signals"), "says why it is silent:\n{output}");
    let db = t.connect().await;
    let n: i64 = db.query_one("SELECT count(*) FROM botai.signals", &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "a model that cannot clear its costs emits nothing");
}

fn flate2_read(path: &std::path::Path) -> impl std::io::Read {
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_default_emits_nothing_and_the_reversal_demo_trades_the_same_bars() {
    // The selection rule of `make evaluate` found no edge: the shipped
    // manifest's margin is null (ml/model_card.py --check ties it to the report).
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("models/patchtst.json")).unwrap()).unwrap();
    assert_eq!(manifest["signal"]["margin"], Value::Null, "the shipped default emits nothing");
    let t = TestDatabase::migrated(&[]).await;
    let mut env = sell_off_env(&repo_root().join("models/patchtst.onnx"));
    let d = Daemon::start("ml-default", &t.name, &["run", "--mode=ml"], &env);
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(status.success(), "{output}");
    let said: Vec<&str> = output.lines().filter(|l| l.contains("signal rule: no signals")).collect();
    assert_eq!(said.len(), 1, "says why it is silent, in one line:\n{output}");
    assert!(said[0].contains("margin is null") && said[0].contains("reversal-demo"), "{}", said[0]);
    assert!(output.contains("are in-sample"), "the FTX month is the model's training data, and it says so:\n{output}");
    let db = t.connect().await;
    let n: i64 = db.query_one("SELECT count(*) FROM botai.signals", &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "no signal from the silent default");
    // The same bars with STRATEGY=reversal-demo: signals against the large
    // moves of the sell-off, labelled as the demo.
    env.push(("STRATEGY", "reversal-demo".into()));
    let d = Daemon::start("ml-demo", &t.name, &["run", "--mode=ml"], &env);
    let (status, output) = d.wait(Duration::from_secs(60));
    assert!(status.success(), "{output}");
    assert!(output.contains("STRATEGY=reversal-demo") && output.contains("not an edge"), "{output}");
    let rows = db.query("SELECT strategy FROM botai.signals", &[]).await.unwrap();
    assert!(!rows.is_empty(), "the demo trades the sell-off");
    for r in &rows {
        let strategy: String = r.get(0);
        assert!(strategy.starts_with("reversal-demo"), "{strategy}");
    }
}
