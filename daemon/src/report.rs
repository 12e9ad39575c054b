//! The end of a run: a summary table on stdout, `orders.csv` (every order
//! of this run, from botai's durable record) and `equity.svg` (the account
//! value over market time) under REPORT_DIR.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use plotters::prelude::*;
use rust_decimal::Decimal;

use crate::db;
use crate::telemetry::Telemetry;

/// What a run did, for the summary and the tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub bars: u64,
    pub predictions: u64,
    pub signals_accepted: u64,
    pub signals_duplicate: u64,
    pub signals_stale: u64,
    pub orders_filled: i64,
    pub orders_skipped: i64,
    pub orders_expired: i64,
    pub orders_failed: i64,
    pub rejected_110007: i64,
    pub rejected_10006: i64,
    pub rejected_other: i64,
    pub fees: Decimal,
    pub equity_start: Option<f64>,
    pub equity_end: Option<f64>,
    pub max_drawdown: f64,
}

/// Writes the report of the run that started at `since`.
pub async fn write(
    dir: &Path,
    pool: &Pool,
    telemetry: &Telemetry,
    since: DateTime<Utc>,
    equity: &[(DateTime<Utc>, f64)],
    quote: &str,
) -> Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conn = db::pooled(pool).await?;
    let rows = conn
        .query(
            "SELECT order_id, signal_id, client_order_id, engine, symbol, side, status, qty::text, price::text, \
                    notional::text, fee::text, ret_code, message, latency_ms, signal_accepted_at, finished_at \
             FROM botai.orders_status WHERE claimed_at >= $1 ORDER BY order_id",
            &[&since],
        )
        .await
        .context("reading this run's orders")?;
    let csv_path = dir.join("orders.csv");
    let mut w = csv::Writer::from_path(&csv_path).with_context(|| format!("cannot write {}", csv_path.display()))?;
    w.write_record([
        "order_id",
        "signal_id",
        "client_order_id",
        "engine",
        "symbol",
        "side",
        "status",
        "qty",
        "price",
        "notional",
        "fee",
        "ret_code",
        "message",
        "latency_ms",
        "signal_accepted_at",
        "finished_at",
    ])?;
    let mut s = Summary {
        bars: telemetry.bars.get(),
        predictions: telemetry.predictions.get(),
        signals_accepted: telemetry.signals_with("accepted"),
        signals_duplicate: telemetry.signals_with("duplicate"),
        signals_stale: telemetry.signals_with("stale"),
        ..Summary::default()
    };
    for r in &rows {
        let status: String = r.get(6);
        let code: Option<i32> = r.get(11);
        let fee: Option<String> = r.get(10);
        match (status.as_str(), code) {
            ("filled", _) => s.orders_filled += 1,
            ("skipped", _) => s.orders_skipped += 1,
            ("expired", _) => s.orders_expired += 1,
            ("failed", _) => s.orders_failed += 1,
            ("rejected", Some(110007)) => s.rejected_110007 += 1,
            ("rejected", Some(10006)) => s.rejected_10006 += 1,
            ("rejected", _) => s.rejected_other += 1,
            _ => {}
        }
        s.fees += fee.and_then(|f| f.parse::<Decimal>().ok()).unwrap_or_default();
        let opt = |v: Option<String>| v.unwrap_or_default();
        w.write_record([
            r.get::<_, i64>(0).to_string(),
            r.get::<_, i64>(1).to_string(),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, String>(4),
            r.get::<_, String>(5),
            status.clone(),
            opt(r.get(7)),
            opt(r.get(8)),
            opt(r.get(9)),
            opt(r.get(10)),
            code.map(|c| c.to_string()).unwrap_or_default(),
            opt(r.get(12)),
            r.get::<_, Option<f64>>(13).map(|l| format!("{l:.3}")).unwrap_or_default(),
            r.get::<_, DateTime<Utc>>(14).to_rfc3339(),
            r.get::<_, Option<DateTime<Utc>>>(15).map(|t| t.to_rfc3339()).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    s.equity_start = equity.first().map(|e| e.1);
    s.equity_end = equity.last().map(|e| e.1);
    let mut peak = f64::MIN;
    for (_, e) in equity {
        peak = peak.max(*e);
        if peak > 0.0 {
            s.max_drawdown = s.max_drawdown.max((peak - e) / peak);
        }
    }
    let svg_path = dir.join("equity.svg");
    if equity.len() > 1 {
        plot(&svg_path, equity, quote)?;
    }
    println!("{}", table(&s, quote, &csv_path, (equity.len() > 1).then_some(&svg_path)));
    Ok(s)
}

fn table(s: &Summary, quote: &str, csv: &Path, svg: Option<&PathBuf>) -> String {
    let mut out = String::new();
    let line = "─".repeat(52);
    let _ = writeln!(out, "\n{line}\n botai run summary\n{line}");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, " {k:<34}{v:>16}");
    };
    row("bars replayed", s.bars.to_string());
    row("predictions", s.predictions.to_string());
    row("signals accepted", s.signals_accepted.to_string());
    row("signals duplicate (same minute)", s.signals_duplicate.to_string());
    row("signals stale", s.signals_stale.to_string());
    row("orders filled", s.orders_filled.to_string());
    row("orders skipped (no free funds)", s.orders_skipped.to_string());
    row("orders expired (signal too old)", s.orders_expired.to_string());
    row("orders failed", s.orders_failed.to_string());
    row("rejected 110007 (insufficient bal.)", s.rejected_110007.to_string());
    row("rejected 10006 (too many visits)", s.rejected_10006.to_string());
    row("rejected, other", s.rejected_other.to_string());
    row(&format!("fees paid ({quote})"), format!("{:.2}", s.fees));
    if let (Some(a), Some(b)) = (s.equity_start, s.equity_end) {
        row(&format!("equity start ({quote})"), format!("{a:.2}"));
        row(&format!("equity end ({quote})"), format!("{b:.2}"));
        row("return", format!("{:+.2} %", (b / a - 1.0) * 100.0));
        row("max drawdown", format!("{:.2} %", s.max_drawdown * 100.0));
    }
    let _ = writeln!(out, "{line}\n orders:  {}", csv.display());
    if let Some(svg) = svg {
        let _ = writeln!(out, " equity:  {}", svg.display());
    }
    out
}

fn plot(path: &Path, equity: &[(DateTime<Utc>, f64)], quote: &str) -> Result<()> {
    let (t0, t1) = (equity[0].0, equity[equity.len() - 1].0);
    let (lo, hi) = equity.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, e)| (lo.min(*e), hi.max(*e)));
    let pad = ((hi - lo) * 0.05).max(1.0);
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("botai paper account value ({quote})"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|t: &DateTime<Utc>| t.format("%m-%d %H:%M").to_string())
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .draw()?;
    chart.draw_series(LineSeries::new(equity.iter().copied(), &BLUE))?;
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
