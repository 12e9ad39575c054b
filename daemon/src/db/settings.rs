//! The server's settings the daemon reads at start-up, and the session
//! settings it makes.

use super::functions::Sql;
use super::value::Cell;
use super::Result;

/// `botai.rate_limit_safety_margin`: the share of each venue limit botai
/// books, the server's for every client.
pub async fn rate_limit_safety_margin<C: Sql>(conn: &C) -> Result<f64> {
    let sql = "SELECT current_setting('botai.rate_limit_safety_margin')::float8";
    conn.q_one("rate_limit_safety_margin", sql, &[]).await?.col(0, "rate_limit_safety_margin")
}

/// The heartbeat_timeout rule's threshold in seconds, when the rule is on.
pub async fn heartbeat_timeout<C: Sql>(conn: &C) -> Result<Option<f64>> {
    let sql = "SELECT threshold::float8 FROM botai.alert_rules WHERE rule = 'heartbeat_timeout' AND enabled";
    match conn.q_opt("heartbeat_timeout", sql, &[]).await? {
        Some(row) => row.col(0, "heartbeat_timeout"),
        None => Ok(None),
    }
}

/// Sets `botai.signal_dedup_window` (seconds, at least 1) for this session:
/// the window in which a signal's fingerprint counts as a duplicate.
pub async fn set_signal_dedup_window<C: Sql>(conn: &C, seconds: u64) -> Result<()> {
    let sql = "SELECT set_config('botai.signal_dedup_window', $1, false)";
    conn.q_one("signal_dedup_window", sql, &[&seconds.max(1).to_string()]).await?;
    Ok(())
}
