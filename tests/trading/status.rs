//! A killed component shows as down.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn status_and_health_show_a_killed_engine_as_down_within_the_alert_threshold() {
    let t = TestDatabase::migrated(&[("botai.monitor_interval", "1")]).await;
    let db = t.connect().await;
    db.execute("UPDATE botai.alert_rules SET threshold = 3 WHERE rule = 'heartbeat_timeout'", &[]).await.unwrap();
    let api_port = free_port();
    let mut api_env = short_replay(600);
    api_env.push(("API_LISTEN", format!("127.0.0.1:{api_port}")));
    let _api = Daemon::start("api", &t.name, &["run", "--mode=api"], &api_env);
    let mut env = short_replay(600);
    env.push(("ENGINE_ID", "engine-k".into()));
    let mut engine = Daemon::start("engine", &t.name, &["run", "--mode=core"], &env);
    engine.wait_for_output("trading engine started", Duration::from_secs(30)).await;
    let component = "trading_engine:engine-k";
    let health = || async {
        let r = reqwest::get(format!("http://127.0.0.1:{api_port}/health")).await;
        match r {
            Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while health().await["components"][component] != "healthy" {
        assert!(Instant::now() < deadline, "the engine never showed as healthy in /health");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.kill();
    let killed = Instant::now();
    loop {
        let h = health().await;
        if h["components"][component] == "down" {
            assert_eq!(h["status"], "unhealthy");
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "not down 10 s after the kill: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = killed.elapsed();
    println!("  /health showed the killed engine as down {:.1} s after kill -9 (threshold 3 s)", after.as_secs_f64());
    assert!(after <= Duration::from_secs(5), "within the threshold plus a heartbeat interval");
    let status = Daemon::start("status", &t.name, &["status"], &[]);
    let (_, output) = status.wait(Duration::from_secs(30));
    let line =
        output.lines().find(|l| l.starts_with(component)).unwrap_or_else(|| panic!("no {component} in:\n{output}"));
    println!("  botai status: {line}");
    assert!(line.split_whitespace().nth(1) == Some("down"), "{line}");
    assert!(output.contains("PostgreSQL") && output.contains("OPEN ALERTS") && output.contains("BALANCE"));
}
