//! `make run` replays data the shipped model never saw: its default market
//! data does not overlap the training period the model's manifest names.

use botai_daemon::market::config::DEFAULT_MARKET_DATA;
use botai_daemon::ml::config::DEFAULT_MODEL_PATH;
use botai_daemon::ml::contract::Manifest;
use chrono::{DateTime, TimeDelta, Utc};

use super::*;

fn period(path: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let bars = load_bars(&root().join(path)).unwrap_or_else(|e| panic!("{path}: {e:#}"));
    (bars[0].ts, bars[bars.len() - 1].ts + TimeDelta::minutes(1))
}

#[test]
fn the_default_replay_is_out_of_sample_for_the_shipped_model() {
    let manifest = Manifest::load(&root().join(DEFAULT_MODEL_PATH)).expect("the shipped manifest");
    let training = manifest.training.clone().expect("the shipped manifest names its training period (`training`)");
    let (from, to) = period(DEFAULT_MARKET_DATA);
    assert!(
        !training.overlaps(from, to),
        "make run's default replay {DEFAULT_MARKET_DATA} ({from} .. {to}) overlaps {}'s training data {} ({} .. {})",
        manifest.name,
        training.data,
        training.from,
        training.to
    );
    // The check can fail: the FTX fixture is the shipped model's own month.
    let (ftx_from, ftx_to) = period(BARS);
    assert!(training.overlaps(ftx_from, ftx_to), "the FTX month is the shipped model's training data");
    assert_eq!(root().join(&training.data), root().join(BARS), "the manifest names its training file");
}

#[test]
fn make_run_replays_the_default_data() {
    // `make run` must not point MARKET_DATA elsewhere (e.g. back at the FTX month).
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let recipe: Vec<&str> = makefile
        .lines()
        .skip_while(|l| !l.starts_with("run:"))
        .take_while(|l| l.starts_with("run:") || l.starts_with('\t'))
        .collect();
    assert!(recipe.len() >= 2, "a run target in the Makefile: {recipe:?}");
    assert!(!recipe.iter().any(|l| l.contains("MARKET_DATA") || l.contains("REPLAY_FROM")), "{recipe:?}");
}
