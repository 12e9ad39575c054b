//! `botai status`: each component with its state and pid, PostgreSQL and
//! its port, the monitor, the kill switch and positions, workers, open
//! alerts and balances — what an
//! operator looks at first. A component is `down` when its last heartbeat is
//! older than the heartbeat_timeout rule's threshold.

use anyhow::Result;
use serde_json::Value;

use crate::config::Config;
use crate::db::{Amount, BotaiSql, Cell, Db};

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
    let positions = db.positions().await?;
    if !positions.is_empty() {
        println!("\nPOSITION              QTY          ENTRY        UNREALISED   REALISED     FEES       OPEN ORDERS");
        for p in positions {
            println!(
                "{:<21} {:<12} {:<12} {:<12} {:<12} {:<10} {}",
                format!("{}/{}", p.exchange, p.symbol),
                p.qty.rounded(4),
                Amount::show(&p.avg_entry, 4),
                Amount::show(&p.unrealized_pnl, 4),
                p.realized_pnl.rounded(4),
                p.fees.rounded(4),
                p.open_orders
            );
        }
    }
    println!("\nCOMPONENT                         STATE      PID      LAST HEARTBEAT   TASKS  ERRORS/MIN");
    let rows = db
        .query(
            "SELECT component, status, metadata->>'pid', heartbeat_age_seconds, active_tasks, errors_last_minute \
             FROM botai.components_status ORDER BY component",
            &[],
        )
        .await?;
    if rows.is_empty() {
        println!("(none registered: no daemon has run)");
    }
    for r in rows {
        let age: f64 = r.col(3, "status")?;
        println!(
            "{:<33} {:<10} {:<8} {:>10} ago {:>7} {:>11}",
            r.col::<String>(0, "status")?,
            r.col::<String>(1, "status")?,
            r.col::<Option<String>>(2, "status")?.unwrap_or_else(|| "-".into()),
            human(age),
            r.col::<i32>(4, "status")?,
            r.col::<i64>(5, "status")?
        );
    }

    println!("\nWORKER                            TYPE             STATE         EPOCH  PID");
    let rows = db
        .query(
            "SELECT worker_id, worker_type, state, epoch, pid FROM botai.workers_status \
             WHERE state <> 'unregistered' ORDER BY worker_type, slot",
            &[],
        )
        .await?;
    if rows.is_empty() {
        println!("(none)");
    }
    for r in rows {
        println!(
            "{:<33} {:<16} {:<12} {:>6}  {}",
            r.col::<String>(0, "status")?,
            r.col::<String>(1, "status")?,
            r.col::<String>(2, "status")?,
            r.col::<i64>(3, "status")?,
            r.col::<i32>(4, "status")?
        );
    }

    let rows = db
        .query(
            "SELECT component, metadata->>'exchange', metadata->>'clock_offset_ms', metadata->>'private_stream' \
             FROM botai.components_status WHERE metadata ? 'exchange' AND status <> 'stopped' ORDER BY component",
            &[],
        )
        .await?;
    if !rows.is_empty() {
        println!("\nENGINE                            EXCHANGE   CLOCK OFFSET   PRIVATE STREAM");
    }
    for r in rows {
        let offset = r.col::<Option<String>>(2, "status")?.map_or_else(|| "-".to_owned(), |o| format!("{o} ms"));
        let stream = match r.col::<Option<String>>(3, "status")?.as_deref() {
            Some("true") => "connected",
            Some("false") => "DISCONNECTED",
            _ => "-",
        };
        println!(
            "{:<33} {:<10} {:>12}   {stream}",
            r.col::<String>(0, "status")?,
            r.col::<Option<String>>(1, "status")?.unwrap_or_default(),
            offset
        );
    }

    println!("\nOPEN ALERTS");
    let rows = db
        .query("SELECT rule, subject, severity, round(open_seconds) FROM botai.open_alerts ORDER BY opened_at", &[])
        .await?;
    if rows.is_empty() {
        println!("(none)");
    }
    for r in rows {
        println!(
            "{:<8} {:<22} {:<30} open {}",
            r.col::<String>(2, "status")?.to_uppercase(),
            r.col::<String>(0, "status")?,
            r.col::<String>(1, "status")?,
            human(r.col::<f64>(3, "status")?)
        );
    }

    println!("\nBALANCE          TOTAL            AVAILABLE        RESERVED         FREE             AGE");
    let rows = db
        .query(
            "SELECT exchange || '/' || asset, total::text, available::text, reserved::text, free::text, \
                    extract(epoch FROM age)::float8 FROM botai.balances_status ORDER BY 1",
            &[],
        )
        .await?;
    if rows.is_empty() {
        println!("(no snapshot yet)");
    }
    for r in rows {
        println!(
            "{:<16} {:<16} {:<16} {:<16} {:<16} {}",
            r.col::<String>(0, "status")?,
            short(&r.col::<String>(1, "status")?),
            short(&r.col::<String>(2, "status")?),
            short(&r.col::<String>(3, "status")?),
            short(&r.col::<String>(4, "status")?),
            human(r.col::<f64>(5, "status")?)
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

fn short(number: &str) -> String {
    match number.find('.') {
        Some(dot) if number.len() > dot + 9 => number[..dot + 9].to_owned(),
        _ => number.to_owned(),
    }
}
