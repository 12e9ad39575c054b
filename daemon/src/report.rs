//! The end of a run: a summary table on stdout, `orders.csv` (every order
//! of this run, from botai's durable record) and `equity.svg` (the account
//! value over market time, beside buy-and-hold of the same money) under
//! REPORT_DIR. The strategy is measured against buy-and-hold on the same
//! prices: P&L realised and open, per trade, fees, turnover, time in the
//! market, hit rate, Sharpe ratio and maximum drawdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use plotters::prelude::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::db::{self, Amount};
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
    pub equity_start: Option<f64>,
    pub equity_end: Option<f64>,
    pub max_drawdown: f64,
    /// Realised P&L of this run's fills (quote currency, before fees).
    pub realized_pnl: Decimal,
    /// Fees of this run's fills, in the quote currency.
    pub fees_quote: Decimal,
    /// Fills that closed (part of) a position: the strategy's trades.
    pub trades: i64,
    /// Of those, the ones that realised a profit.
    pub winning_trades: i64,
    /// Traded notional over the starting equity.
    pub turnover: f64,
    /// Mean share of the account's value held in the market.
    pub exposure: f64,
    /// Annualised Sharpe ratio of the account value's returns.
    pub sharpe: Option<f64>,
    /// Buy-and-hold of the starting equity over the same prices.
    pub hold_return: Option<f64>,
    pub hold_max_drawdown: f64,
    pub hold_sharpe: Option<f64>,
}

/// The account at one moment of market time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub at: DateTime<Utc>,
    /// Account value (quote currency).
    pub equity: f64,
    pub price: f64,
    /// Value held in the market (base coins, positions' notional).
    pub exposure: f64,
}

/// Largest fall from a peak, as a fraction of the peak.
fn max_drawdown(values: impl Iterator<Item = f64>) -> f64 {
    let (mut peak, mut worst) = (f64::MIN, 0.0f64);
    for v in values {
        peak = peak.max(v);
        if peak > 0.0 {
            worst = worst.max((peak - v) / peak);
        }
    }
    worst
}

/// Annualised Sharpe ratio (risk-free 0) of a series sampled at `at`: the
/// mean of the returns between samples over their deviation, times the
/// square root of the samples in a year of market time.
fn sharpe(points: &[(DateTime<Utc>, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let returns: Vec<f64> = points.windows(2).filter(|w| w[0].1 > 0.0).map(|w| w[1].1 / w[0].1 - 1.0).collect();
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let span = (points[points.len() - 1].0 - points[0].0).num_milliseconds() as f64 / 1000.0;
    if sd <= 0.0 || span <= 0.0 {
        return None;
    }
    let per_year = 365.25 * 86_400.0 / (span / n);
    Some(mean / sd * per_year.sqrt())
}

/// Writes the report of the run that started at `since`.
pub async fn write(
    dir: &Path,
    pool: &Pool,
    telemetry: &Telemetry,
    since: DateTime<Utc>,
    marks: &[Mark],
    quote: &str,
) -> Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conn = db::pooled(pool).await?;
    let rows = db::report::run_orders(&conn, since).await.context("reading this run's orders")?;
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
        "fee_asset",
        "fee_quote",
        "realized_pnl",
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
        let status = r.status.clone();
        let code = r.ret_code;
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
        let value = |a: &Option<Amount>| a.as_ref().and_then(|a| a.value());
        let (fee_quote, realized) = (value(&r.fee_quote), value(&r.realized_pnl));
        if status == "filled" {
            s.fees_quote += fee_quote.unwrap_or_default();
            let notional = r.notional.as_deref().and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0);
            s.turnover += notional;
            if let Some(pnl) = realized.filter(|p| !p.is_zero()) {
                s.realized_pnl += pnl;
                s.trades += 1;
                s.winning_trades += i64::from(pnl > Decimal::ZERO);
            }
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let amount = |v: Option<Decimal>| v.map(|d| d.normalize().to_string()).unwrap_or_default();
        w.write_record([
            r.order_id.to_string(),
            r.signal_id.to_string(),
            r.client_order_id.clone(),
            r.engine.clone(),
            r.symbol.clone(),
            r.side.clone(),
            status.clone(),
            opt(&r.qty),
            opt(&r.price),
            opt(&r.notional),
            opt(&r.fee),
            opt(&r.fee_asset),
            amount(fee_quote),
            amount(realized),
            code.map(|c| c.to_string()).unwrap_or_default(),
            opt(&r.message),
            r.latency_ms.map(|l| format!("{l:.3}")).unwrap_or_default(),
            r.signal_accepted_at.to_rfc3339(),
            r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    let equity: Vec<(DateTime<Utc>, f64)> = marks.iter().map(|m| (m.at, m.equity)).collect();
    s.equity_start = marks.first().map(|m| m.equity);
    s.equity_end = marks.last().map(|m| m.equity);
    s.max_drawdown = max_drawdown(marks.iter().map(|m| m.equity));
    s.sharpe = sharpe(&equity);
    // Buy-and-hold: the starting equity in the market at the first price.
    let hold: Vec<(DateTime<Utc>, f64)> = match marks.first() {
        Some(first) if first.price > 0.0 => {
            marks.iter().map(|m| (m.at, first.equity * m.price / first.price)).collect()
        }
        _ => Vec::new(),
    };
    s.hold_return = match (hold.first(), hold.last()) {
        (Some(a), Some(b)) if a.1 > 0.0 => Some(b.1 / a.1 - 1.0),
        _ => None,
    };
    s.hold_max_drawdown = max_drawdown(hold.iter().map(|h| h.1));
    s.hold_sharpe = sharpe(&hold);
    if let Some(start) = s.equity_start.filter(|e| *e > 0.0) {
        s.turnover /= start;
    }
    if !marks.is_empty() {
        let held = marks.iter().filter(|m| m.equity > 0.0).map(|m| (m.exposure / m.equity).min(1.0));
        s.exposure = held.sum::<f64>() / marks.len() as f64;
    }
    let svg_path = dir.join("equity.svg");
    if equity.len() > 1 {
        plot(&svg_path, &equity, &hold, quote)?;
    }
    println!("{}", table(&s, quote, &csv_path, (equity.len() > 1).then_some(&svg_path)));
    Ok(s)
}

fn table(s: &Summary, quote: &str, csv: &Path, svg: Option<&PathBuf>) -> String {
    let mut out = String::new();
    let line = "─".repeat(60);
    let _ = writeln!(out, "\n{line}\n botai run summary\n{line}");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, " {k:<42}{v:>16}");
    };
    row("bars replayed", s.bars.to_string());
    row("predictions", s.predictions.to_string());
    row("signals accepted", s.signals_accepted.to_string());
    row("signals duplicate (same minute)", s.signals_duplicate.to_string());
    row("signals stale", s.signals_stale.to_string());
    row("orders filled", s.orders_filled.to_string());
    row("orders skipped (at target, funds, limits)", s.orders_skipped.to_string());
    row("orders expired (signal too old)", s.orders_expired.to_string());
    row("orders failed", s.orders_failed.to_string());
    row("rejected 110007 (insufficient bal.)", s.rejected_110007.to_string());
    row("rejected 10006 (too many visits)", s.rejected_10006.to_string());
    row("rejected, other", s.rejected_other.to_string());
    if let (Some(a), Some(b)) = (s.equity_start, s.equity_end) {
        row(&format!("equity start ({quote})"), format!("{a:.2}"));
        row(&format!("equity end ({quote})"), format!("{b:.2}"));
        row("return", format!("{:+.2} %", (b / a - 1.0) * 100.0));
        row(&format!("realised P&L ({quote}, before fees)"), format!("{:.2}", s.realized_pnl));
        row(&format!("fees ({quote})"), format!("{:.2}", s.fees_quote));
        row(
            &format!("open P&L at the end ({quote})"),
            format!("{:.2}", b - a - (s.realized_pnl - s.fees_quote).to_f64().unwrap_or(0.0)),
        );
        row("trades (closing fills)", s.trades.to_string());
        if s.trades > 0 {
            row("hit rate", format!("{:.1} %", s.winning_trades as f64 * 100.0 / s.trades as f64));
            row(
                &format!("P&L per trade ({quote})"),
                format!("{:.2}", (s.realized_pnl / Decimal::from(s.trades)).round_dp(2)),
            );
        }
        row("turnover (× equity)", format!("{:.2}", s.turnover));
        row("mean exposure (of equity)", format!("{:.1} %", s.exposure * 100.0));
        row("max drawdown", format!("{:.2} %", s.max_drawdown * 100.0));
        row("Sharpe (annualised)", s.sharpe.map_or_else(|| "-".into(), |v| format!("{v:.2}")));
        let _ = writeln!(out, " {:-<58}", "- buy-and-hold, same prices ");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, " {k:<42}{v:>16}");
        };
        if let Some(h) = s.hold_return {
            row("return", format!("{:+.2} %", h * 100.0));
        }
        row("max drawdown", format!("{:.2} %", s.hold_max_drawdown * 100.0));
        row("Sharpe (annualised)", s.hold_sharpe.map_or_else(|| "-".into(), |v| format!("{v:.2}")));
    }
    let _ = writeln!(out, "{line}\n orders:  {}", csv.display());
    if let Some(svg) = svg {
        let _ = writeln!(out, " equity:  {}", svg.display());
    }
    out
}

fn plot(path: &Path, equity: &[(DateTime<Utc>, f64)], hold: &[(DateTime<Utc>, f64)], quote: &str) -> Result<()> {
    let (t0, t1) = (equity[0].0, equity[equity.len() - 1].0);
    let (lo, hi) = equity.iter().chain(hold).fold((f64::MAX, f64::MIN), |(lo, hi), (_, e)| (lo.min(*e), hi.max(*e)));
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
    chart
        .draw_series(LineSeries::new(equity.iter().copied(), &BLUE))?
        .label("botai")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(hold.iter().copied(), &RGBColor(150, 150, 150)))?
        .label("buy and hold")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minutes)
    }

    #[test]
    fn drawdown_is_the_largest_fall_from_a_peak() {
        assert_eq!(max_drawdown([100.0, 120.0, 90.0, 130.0, 117.0].into_iter()), 0.25);
        assert_eq!(max_drawdown([1.0, 2.0, 3.0].into_iter()), 0.0);
    }

    #[test]
    fn sharpe_is_annualised_over_market_time() {
        // Alternating +1 % / -0.5 % every minute, annualised by minutes in a year.
        let mut v = 100.0;
        let points: Vec<_> = (0..101)
            .map(|i| {
                if i > 0 {
                    v *= if i % 2 == 1 { 1.01 } else { 0.995 };
                }
                (at(i), v)
            })
            .collect();
        let s = sharpe(&points).unwrap();
        let returns: Vec<f64> = points.windows(2).map(|w| w[1].1 / w[0].1 - 1.0).collect();
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let expected = mean / sd * (365.25f64 * 24.0 * 60.0).sqrt();
        assert!((s - expected).abs() < 1e-9 * expected.abs(), "{s} vs {expected}");
        assert!(sharpe(&[(at(0), 1.0), (at(1), 1.0)]).is_none(), "too few points");
        assert!(sharpe(&[(at(0), 1.0), (at(1), 1.0), (at(2), 1.0)]).is_none(), "no variation");
    }
}
