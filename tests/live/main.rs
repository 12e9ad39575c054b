//! `EXCHANGE=bybit` end to end, as real processes, against the exchange
//! double speaking Bybit V5: signed requests, fills from the private
//! stream, and one API key's order limit shared by three engines and a
//! ccxt script that botai knows nothing of but what the venue's headers
//! tell it. Everything is counted at the exchange.

use std::time::Duration;

use botai_tests::Daemon;
use serde_json::Value;
mod engines;
mod market_data;
mod operator;
mod orders;
mod venue_account;

const KEY: &str = "live-test-key";
const SECRET: &str = "live-test-secret";

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Runs `botai <args>` to the end: (success, stdout and stderr).
fn botai(db: &str, env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let d = Daemon::start(args[0], db, args, env);
    let (status, output) = d.wait(Duration::from_secs(120));
    (status.success(), output)
}

/// The double for one test, as its own process: (process, its URL).
async fn start_double(db: &str, extra: &[(&str, String)]) -> (Daemon, String) {
    let mut env = vec![
        ("PAPER_API_KEY", KEY.to_owned()),
        ("PAPER_API_SECRET", SECRET.to_owned()),
        ("PAPER_FILL_DELAY", "0.1".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Daemon::double("double", db, &env).await
}

/// Sets the double's account up as a venue could have it (venue::AccountSetup).
async fn account(url: &str, setup: Value) {
    let r = reqwest::Client::new().post(format!("{url}/botai-double/account")).json(&setup).send().await.unwrap();
    assert!(r.status().is_success(), "{setup}: {}", r.text().await.unwrap());
}

fn bybit_env(url: &str, category: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EXCHANGE", "bybit".to_owned()),
        ("BYBIT_REST_URL", url.to_owned()),
        ("BYBIT_WS_URL", url.replacen("http", "ws", 1)),
        ("BYBIT_API_KEY", KEY.to_owned()),
        ("BYBIT_API_SECRET", SECRET.to_owned()),
        ("BYBIT_CATEGORY", category.to_owned()),
    ]
}

fn binance_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EXCHANGE", "binance".to_owned()),
        ("BINANCE_REST_URL", url.to_owned()),
        ("BINANCE_WS_URL", format!("{}/private/ws", url.replacen("http", "ws", 1))),
        ("BINANCE_API_KEY", KEY.to_owned()),
        ("BINANCE_API_SECRET", SECRET.to_owned()),
    ]
}
