//! Bad data: a window with a bad bar, or too few bars, is refused naming
//! what is wrong.

use botai_daemon::ml::features::{BarField, FeatureError, RAW_BARS};
use chrono::Utc;

use super::*;

/// The 121 real bars of the window ending at Jan 21 22:49, with `spoil`
/// applied to the bar `at` (0 = the extra oldest bar).
fn spoiled(at: usize, spoil: impl FnOnce(&mut Bar)) -> (Vec<Bar>, chrono::DateTime<Utc>) {
    let end = row_at("2022-01-21 22:49");
    let mut raw = bars()[end + 1 - RAW_BARS..=end].to_vec();
    spoil(&mut raw[at]);
    let ts = raw[at].ts;
    (raw, ts)
}

#[test]
fn nan_close_rejects_the_window_naming_bar_and_field() {
    let (raw, ts) = spoiled(60, |bar| bar.close = f64::NAN);
    let err = features::window(&raw).unwrap_err();
    assert!(
        matches!(err, FeatureError::InvalidPrice { ts: t, field: BarField::Close, value } if t == ts && value.is_nan())
    );
    assert!(err.to_string().contains("2022-01-21") && err.to_string().contains("close"), "{err}");
}

#[test]
fn zero_price_rejects_the_window() {
    let (raw, ts) = spoiled(0, |bar| bar.open = 0.0);
    let err = features::window(&raw).unwrap_err();
    assert_eq!(err, FeatureError::InvalidPrice { ts, field: BarField::Open, value: 0.0 });
}

#[test]
fn negative_volume_rejects_the_window() {
    let (raw, ts) = spoiled(RAW_BARS - 1, |bar| bar.volume = -1.0);
    assert_eq!(features::window(&raw).unwrap_err(), FeatureError::InvalidVolume { ts, value: -1.0 });
}

#[test]
fn infinite_high_rejects_the_window() {
    let (raw, ts) = spoiled(100, |bar| bar.high = f64::INFINITY);
    let err = features::window(&raw).unwrap_err();
    assert_eq!(err, FeatureError::InvalidPrice { ts, field: BarField::High, value: f64::INFINITY });
}

#[test]
fn too_few_bars_says_how_many_are_missing() {
    let err = features::window(&bars()[..RAW_BARS - 1]).unwrap_err();
    assert_eq!(err, FeatureError::TooFewBars { needed: RAW_BARS, got: RAW_BARS - 1 });
    assert!(err.to_string().contains("1 missing"), "{err}");
}
