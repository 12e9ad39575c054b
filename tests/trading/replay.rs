//! A stepped replay is deterministic, however loaded the machine.

use super::*;

/// One `botai run` (every component in one process, the paper exchange in
/// it) with REPLAY_SPEED=max over a day of the month, at the old fixed
/// threshold: the orders as the
/// report lists them (without ids and times, which differ by run) and the
/// report's summary table. `load`: two busy loops share the machine's
/// cores with it.
async fn stepped_run(load: bool) -> (Vec<Vec<String>>, Vec<String>) {
    let db = TestDatabase::migrated(&[]).await;
    let dir = std::env::temp_dir().join(format!("botai-stepped-{}", botai_tests::unique("run")));
    let env = vec![
        ("REPLAY_SPEED", "max".to_owned()),
        ("REPLAY_FROM", "2022-01-10T00:00:00Z".to_owned()),
        ("REPLAY_TO", "2022-01-11T00:00:00Z".to_owned()),
        ("API_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("PAPER_LISTEN", "off".to_owned()),
        ("REPORT_DIR", dir.display().to_string()),
        // Determinism needs orders to compare; the shipped model's
        // cost-aware margin leaves it almost silent on a single day.
        ("SIGNAL_THRESHOLD", "0.0004".to_owned()),
    ];
    let hogs: Vec<std::process::Child> = (0..if load { 2 } else { 0 })
        .map(|_| std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap())
        .collect();
    let run = Daemon::start(if load { "stepped-loaded" } else { "stepped" }, &db.name, &["run"], &env);
    let (status, output) = run.wait(Duration::from_secs(600));
    for mut h in hogs {
        let _ = h.kill();
        let _ = h.wait();
    }
    assert!(status.success(), "{output}");
    let mut csv = csv::Reader::from_path(dir.join("orders.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let keep =
        ["side", "status", "qty", "price", "notional", "fee", "fee_asset", "fee_quote", "realized_pnl", "message"];
    let columns: Vec<usize> = keep.iter().map(|k| headers.iter().position(|h| h == *k).unwrap()).collect();
    let orders: Vec<Vec<String>> =
        csv.records().map(|r| r.unwrap()).map(|r| columns.iter().map(|&c| r[c].to_owned()).collect()).collect();
    let summary: Vec<String> = output
        .lines()
        .skip_while(|l| !l.contains("bars replayed"))
        .take_while(|l| !l.contains("orders.csv"))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (orders, summary)
}

/// REPLAY_SPEED=max steps the clock bar by bar, each bar's trades settled
/// before the next: the same day replayed twice — the second time beside
/// two busy loops on the machine's two cores — gives the same orders at
/// the same prices and the same report, figure for figure.
#[tokio::test(flavor = "multi_thread")]
async fn a_stepped_replay_gives_the_same_orders_and_pnl_under_load() {
    let (orders, summary) = stepped_run(false).await;
    let (loaded_orders, loaded_summary) = stepped_run(true).await;
    let filled = orders.iter().filter(|o| o[1] == "filled").count();
    assert!(filled >= 10, "a day of the month trades: {filled} fills\n{}", summary.join("\n"));
    assert_eq!(orders.len(), loaded_orders.len(), "as many orders");
    for (k, (a, b)) in orders.iter().zip(&loaded_orders).enumerate() {
        assert_eq!(a, b, "order {k} differs");
    }
    assert_eq!(summary, loaded_summary, "the reports differ");
    println!("  {} orders, {filled} filled, equal in both runs:\n{}", orders.len(), summary.join("\n"));
}
