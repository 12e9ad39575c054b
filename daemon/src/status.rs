//! `botai status`: each component with its state and pid, PostgreSQL and
//! its port, the monitor, the kill switch and positions, workers, open
//! alerts and balances — what an operator looks at first, from the same
//! document the dashboard shows (`db::dashboard`). A component is `down`
//! when its last heartbeat is older than the heartbeat_timeout rule's
//! threshold.

use anyhow::Result;
use serde_json::Value;

use crate::config::Config;
use crate::db::dashboard::DashboardSql;
use crate::db::{Db, MonitorCalls, RiskCalls};

pub async fn print(cfg: &Config) -> Result<()> {
    let db = match Db::connect(&cfg.pg, "botai status").await {
        Ok(db) => db,
        Err(e) => {
            println!("PostgreSQL   unreachable at {} ({e})", cfg.pg.describe());
            anyhow::bail!("the database is unreachable");
        }
    };
    let version = db.server_version().await?;
    let Some(extension) = db.extension_version().await? else {
        println!("PostgreSQL   {version} on {} database {}", cfg.pg.servers(), cfg.pg.dbname);
        anyhow::bail!("the botai extension is not installed; run `make migrate`");
    };
    let health = db.health().await?;
    println!("botai        {} (extension {extension})", health["status"].as_str().unwrap_or("?").to_uppercase());
    println!(
        "PostgreSQL   {version} on {} database {}, up {:.0} s",
        cfg.pg.servers(),
        cfg.pg.dbname,
        health["uptime"].as_f64().unwrap_or(0.0)
    );
    let m = &health["monitor"];
    println!(
        "monitor      {} (pid {}, {} rounds, {} failed steps, last {})",
        if m["running"] == true { "running" } else { "NOT RUNNING" },
        m["pid"],
        m["rounds"],
        m["failed_steps"],
        m["last_round_at"].as_str().unwrap_or("-")
    );

    let state = db.trading_state().await?;
    println!(
        "trading      {}{} (by {} at {})",
        match state.mode.as_str() {
            "active" => "active".to_owned(),
            other => other.to_uppercase(),
        },
        state.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(),
        state.changed_by,
        state.changed_at.format("%Y-%m-%d %H:%M:%S")
    );
    if !state.halting_alerts.is_empty() {
        let ids: Vec<String> = state.halting_alerts.iter().map(i64::to_string).collect();
        println!(
            "             held by alert(s) {} until acknowledged: `botai resume REASON --acknowledge {}` as the operator",
            ids.join(", "),
            ids.join(" --acknowledge ")
        );
    }
    // The rest is the dashboard's document: one statement, the same figures.
    let doc = db.dashboard().await?;
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    let positions = list("positions");
    if !positions.is_empty() {
        println!("\nPOSITION              QTY          ENTRY        UNREALISED   REALISED     FEES       OPEN ORDERS");
        for p in positions {
            println!(
                "{:<21} {:<12} {:<12} {:<12} {:<12} {:<10} {}",
                format!("{}/{}", text(&p["exchange"]), text(&p["symbol"])),
                amount(&p["qty"], 4),
                amount(&p["avg_entry"], 4),
                amount(&p["unrealized_pnl"], 4),
                amount(&p["realized_pnl"], 4),
                amount(&p["fees"], 4),
                text(&p["open_orders"])
            );
        }
    }
    println!("\nCOMPONENT                         STATE      PID      LAST HEARTBEAT   TASKS  ERRORS/MIN");
    let components = list("components");
    if components.is_empty() {
        println!("(none registered: no daemon has run)");
    }
    for c in &components {
        println!(
            "{:<33} {:<10} {:<8} {:>10} ago {:>7} {:>11}",
            text(&c["component"]),
            text(&c["status"]),
            text(&c["pid"]),
            human(c["heartbeat_age_seconds"].as_f64().unwrap_or(0.0)),
            text(&c["active_tasks"]),
            text(&c["errors_last_minute"])
        );
    }

    println!("\nWORKER                            TYPE             STATE         EPOCH  PID");
    let workers = list("workers");
    if workers.is_empty() {
        println!("(none)");
    }
    for w in workers {
        println!(
            "{:<33} {:<16} {:<12} {:>6}  {}",
            text(&w["worker_id"]),
            text(&w["worker_type"]),
            text(&w["state"]),
            text(&w["epoch"]),
            text(&w["pid"])
        );
    }

    let engines: Vec<&Value> =
        components.iter().filter(|c| c["exchange"].is_string() && c["status"] != "stopped").collect();
    if !engines.is_empty() {
        println!("\nENGINE                            EXCHANGE   CLOCK OFFSET   PRIVATE STREAM");
    }
    for e in engines {
        let offset = e["clock_offset_ms"].as_str().map_or_else(|| "-".to_owned(), |o| format!("{o} ms"));
        let stream = match e["private_stream"].as_str() {
            Some("true") => "connected",
            Some("false") => "DISCONNECTED",
            _ => "-",
        };
        println!("{:<33} {:<10} {:>12}   {stream}", text(&e["component"]), text(&e["exchange"]), offset);
    }

    println!("\nOPEN ALERTS");
    let alerts = list("alerts");
    if alerts.is_empty() {
        println!("(none)");
    }
    for a in &alerts {
        println!(
            "{:<8} {:<22} {:<30} open {}",
            text(&a["severity"]).to_uppercase(),
            text(&a["rule"]),
            text(&a["subject"]),
            human(a["open_seconds"].as_f64().unwrap_or(0.0))
        );
    }
    let open = doc["open_alert_count"].as_u64().unwrap_or(0);
    if open > alerts.len() as u64 {
        println!("(the newest {} of {open}: SELECT * FROM botai.open_alerts for all)", alerts.len());
    }

    println!("\nBALANCE          TOTAL            AVAILABLE        RESERVED         FREE             AGE");
    let balances = list("balances");
    if balances.is_empty() {
        println!("(no snapshot yet)");
    }
    for b in balances {
        println!(
            "{:<16} {:<16} {:<16} {:<16} {:<16} {}",
            format!("{}/{}", text(&b["exchange"]), text(&b["asset"])),
            amount(&b["total"], 8),
            amount(&b["available"], 8),
            amount(&b["reserved"], 8),
            amount(&b["free"], 8),
            human(b["age_seconds"].as_f64().unwrap_or(0.0))
        );
    }
    if health["status"] == Value::String("unhealthy".into()) {
        // Still a successful command: it did report. The exit code tells scripts.
        std::process::exit(2);
    }
    Ok(())
}

fn human(seconds: f64) -> String {
    match seconds {
        s if s < 60.0 => format!("{s:.1}s"),
        s if s < 3600.0 => format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        s => format!("{:.1}h", s / 3600.0),
    }
}

/// A value of the document as a table shows it: a string as is (an amount
/// out of range is one, saying so), a number as written, null as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An amount of the document rounded to `dp` decimals (exact: from the
/// number as PostgreSQL wrote it); out of range and unknown as [`text`].
fn amount(v: &Value, dp: u32) -> String {
    match v {
        Value::Number(n) => match n.to_string().parse::<rust_decimal::Decimal>() {
            Ok(d) => d.round_dp(dp).normalize().to_string(),
            Err(_) => n.to_string(),
        },
        other => text(other),
    }
}
