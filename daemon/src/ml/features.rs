//! The signal model's input: one feature window per bar, exactly as defined
//! in `ml/FEATURES.md` and implemented by `ml/features.py`, the reference the
//! model was trained on. The order of floating-point operations follows the
//! Python code (f64 throughout, numpy's summation order, one cast to f32 at
//! the end) so that both give the same f32s, not just close ones.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::market::Bar;

/// Bars (rows) per window, oldest first; row `WINDOW - 1` is the newest bar.
pub const WINDOW: usize = 120;
/// Channels per row, in this order: `ret`, `range`, `clv`, `vol_z`.
pub const CHANNELS: usize = 4;
/// Raw bars a window needs: the oldest only supplies the previous close for
/// the first `ret`.
pub const RAW_BARS: usize = WINDOW + 1;

/// One model input: `WINDOW` rows of `CHANNELS` features, row-major, the
/// layout of the ONNX input `features` (`[batch, 120, 4]`).
pub type FeatureWindow = [[f32; CHANNELS]; WINDOW];

/// Added to the volume std so that a constant-volume window gives 0, not NaN.
const VOL_EPS: f64 = 1e-6;
const VOL_CLIP: f64 = 5.0;

/// A field of a bar, to say which one was invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarField {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl fmt::Display for BarField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarField::Open => "open",
            BarField::High => "high",
            BarField::Low => "low",
            BarField::Close => "close",
            BarField::Volume => "volume",
        })
    }
}

/// Why no window could be built. There is never a partial window: one bad
/// bar among the `RAW_BARS` rejects the whole window, as in the reference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("a feature window needs {needed} consecutive bars, got {got} ({} missing)", needed - got)]
    TooFewBars { needed: usize, got: usize },
    #[error("bar at {ts}: {field} is {value}, a price must be finite and > 0")]
    InvalidPrice { ts: DateTime<Utc>, field: BarField, value: f64 },
    #[error("bar at {ts}: volume is {value}, it must be finite and >= 0")]
    InvalidVolume { ts: DateTime<Utc>, value: f64 },
}

/// The feature window of the newest bar of `bars`, computed from its last
/// `RAW_BARS` bars (oldest first, consecutive minutes: gaps are the caller's
/// to avoid or fill, the features do not look at timestamps).
pub fn window(bars: &[Bar]) -> Result<FeatureWindow, FeatureError> {
    let Some(start) = bars.len().checked_sub(RAW_BARS) else {
        return Err(FeatureError::TooFewBars { needed: RAW_BARS, got: bars.len() });
    };
    let raw = &bars[start..];
    raw.iter().try_for_each(check_bar)?;

    // vol_z is standardised over the WINDOW feature bars only, not the extra
    // oldest bar (raw[0]).
    let mut log_volume = [0.0f64; WINDOW];
    for (lv, bar) in log_volume.iter_mut().zip(&raw[1..]) {
        *lv = bar.volume.ln_1p();
    }
    let mean = pairwise_sum(&log_volume) / WINDOW as f64;
    let mut squared_deviation = [0.0f64; WINDOW];
    for (sq, lv) in squared_deviation.iter_mut().zip(&log_volume) {
        let deviation = lv - mean;
        *sq = deviation * deviation;
    }
    let std = (pairwise_sum(&squared_deviation) / WINDOW as f64).sqrt();

    let mut features = [[0.0f32; CHANNELS]; WINDOW];
    for (row, (pair, lv)) in features.iter_mut().zip(raw.windows(2).zip(&log_volume)) {
        let (previous, bar) = (&pair[0], &pair[1]);
        let ret = (bar.close / previous.close).ln();
        let range = (bar.high / bar.low).ln();
        *row = [ret as f32, range as f32, close_location(bar) as f32, vol_z(*lv, mean, std) as f32];
    }
    Ok(features)
}

/// Same order as the reference's `(2c - h - l) / (h - l)`: numpy evaluates
/// `2*c - h - l` left to right. A flat bar (`h <= l`) has no location: 0.
fn close_location(bar: &Bar) -> f64 {
    let spread = bar.high - bar.low;
    if spread > 0.0 {
        ((2.0 * bar.close - bar.high) - bar.low) / spread
    } else {
        0.0
    }
}

fn vol_z(log_volume: f64, mean: f64, std: f64) -> f64 {
    ((log_volume - mean) / (std + VOL_EPS)).clamp(-VOL_CLIP, VOL_CLIP)
}

fn check_bar(bar: &Bar) -> Result<(), FeatureError> {
    let prices = [
        (BarField::Open, bar.open),
        (BarField::High, bar.high),
        (BarField::Low, bar.low),
        (BarField::Close, bar.close),
    ];
    for (field, value) in prices {
        if !value.is_finite() || value <= 0.0 {
            return Err(FeatureError::InvalidPrice { ts: bar.ts, field, value });
        }
    }
    if !bar.volume.is_finite() || bar.volume < 0.0 {
        return Err(FeatureError::InvalidVolume { ts: bar.ts, value: bar.volume });
    }
    Ok(())
}

/// numpy's `sum` of a contiguous f64 array (its `pairwise_sum`): under 8
/// values a plain loop; up to 128 values eight interleaved accumulators
/// folded as `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, then the remainder; above
/// that, halves at a multiple of 8. The reference's mean and std are sums
/// like this, and a plain left-to-right sum differs from it in the last bit
/// for most windows.
fn pairwise_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(-0.0, |sum, v| sum + v)
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let unrolled = n - n % 8;
        for chunk in values[8..unrolled].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[unrolled..].iter().fold(sum, |sum, v| sum + v)
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    /// `count` consecutive bars with a gentle up/down pattern and varying
    /// volume, every field valid.
    fn bars(count: usize) -> Vec<Bar> {
        let start = Utc.with_ymd_and_hms(2022, 1, 21, 0, 0, 0).unwrap();
        (0..count)
            .map(|i| {
                let close = 40_000.0 + (i % 7) as f64 * 10.0 - (i % 3) as f64 * 15.0;
                Bar {
                    ts: start + Duration::minutes(i as i64),
                    open: close - 5.0,
                    high: close + 20.0,
                    low: close - 30.0,
                    close,
                    volume: 1.0e6 + (i % 11) as f64 * 1.0e5,
                }
            })
            .collect()
    }

    #[test]
    fn window_uses_only_the_last_raw_bars() {
        let many = bars(500);
        assert_eq!(window(&many).unwrap(), window(&many[500 - RAW_BARS..]).unwrap());
    }

    #[test]
    fn channels_follow_the_formulas() {
        let b = bars(RAW_BARS);
        let w = window(&b).unwrap();
        let (prev, last) = (&b[RAW_BARS - 2], &b[RAW_BARS - 1]);
        let row = w[WINDOW - 1];
        assert_eq!(row[0], (last.close / prev.close).ln() as f32);
        assert_eq!(row[1], (last.high / last.low).ln() as f32);
        assert_eq!(row[2], ((2.0 * last.close - last.high - last.low) / (last.high - last.low)) as f32);
    }

    #[test]
    fn flat_bar_has_clv_zero() {
        let mut b = bars(RAW_BARS);
        let last = b.last_mut().unwrap();
        (last.open, last.high, last.low, last.close) = (40_000.0, 40_000.0, 40_000.0, 40_000.0);
        let row = window(&b).unwrap()[WINDOW - 1];
        assert_eq!(row[1], 0.0, "range of a flat bar");
        assert_eq!(row[2], 0.0, "clv of a flat bar");
    }

    #[test]
    fn close_at_high_is_plus_one_and_at_low_minus_one() {
        let mut b = bars(RAW_BARS);
        b[RAW_BARS - 1].close = b[RAW_BARS - 1].high;
        b[RAW_BARS - 2].close = b[RAW_BARS - 2].low;
        let w = window(&b).unwrap();
        assert_eq!(w[WINDOW - 1][2], 1.0);
        assert_eq!(w[WINDOW - 2][2], -1.0);
    }

    #[test]
    fn constant_volume_gives_vol_z_zero() {
        let mut b = bars(RAW_BARS);
        b.iter_mut().for_each(|bar| bar.volume = 0.0);
        assert!(window(&b).unwrap().iter().all(|row| row[3] == 0.0), "zero volume is allowed and gives exactly 0");

        // Otherwise the mean of 120 equal logs is off by its rounding and the
        // 1e6-fold division turns that into a few 1e-9, zero within the
        // contract's 1e-6. The reference does the same: ml/features.py gives
        // -3.5527137e-09 on every row for this volume.
        b.iter_mut().for_each(|bar| bar.volume = 123_456.789);
        assert!(window(&b).unwrap().iter().all(|row| row[3] == -3.5527137e-09));
    }

    #[test]
    fn vol_z_is_clipped_at_plus_and_minus_five() {
        let mut b = bars(RAW_BARS);
        b.iter_mut().for_each(|bar| bar.volume = 1.0e6);
        b[RAW_BARS - 1].volume = 1.0e30;
        b[RAW_BARS - 2].volume = 0.0;
        b[RAW_BARS - 3].volume = 1.0e-3;
        let w = window(&b).unwrap();
        assert_eq!(w[WINDOW - 1][3], 5.0);
        // one huge bar drags the mean up, so the small ones are far below it
        assert!(w[WINDOW - 2][3] < 0.0 && w[WINDOW - 2][3] >= -5.0);
        assert!(w.iter().all(|row| (-5.0..=5.0).contains(&row[3])));
    }

    #[test]
    fn extra_oldest_bar_only_supplies_the_previous_close() {
        let mut a = bars(RAW_BARS);
        let mut b = a.clone();
        // volume, high and low of the oldest bar do not enter any feature
        b[0].volume = 9.0e9;
        b[0].high *= 2.0;
        b[0].low /= 2.0;
        assert_eq!(window(&a).unwrap(), window(&b).unwrap());
        a[0].close *= 1.01;
        assert_ne!(window(&a).unwrap()[0][0], window(&b).unwrap()[0][0]);
    }

    #[test]
    fn too_few_bars_says_how_many_are_missing() {
        let err = window(&bars(RAW_BARS - 3)).unwrap_err();
        assert_eq!(err, FeatureError::TooFewBars { needed: RAW_BARS, got: RAW_BARS - 3 });
        assert_eq!(err.to_string(), "a feature window needs 121 consecutive bars, got 118 (3 missing)");
        assert!(matches!(window(&[]), Err(FeatureError::TooFewBars { got: 0, .. })));
    }

    #[test]
    fn invalid_bar_is_named_by_timestamp_and_field() {
        let mut b = bars(RAW_BARS);
        b[7].low = -1.0;
        let err = window(&b).unwrap_err();
        assert_eq!(err, FeatureError::InvalidPrice { ts: b[7].ts, field: BarField::Low, value: -1.0 });
        assert_eq!(err.to_string(), "bar at 2022-01-21 00:07:00 UTC: low is -1, a price must be finite and > 0");

        let mut b = bars(RAW_BARS);
        b[0].volume = f64::NAN; // the extra oldest bar is validated too
        assert!(matches!(window(&b), Err(FeatureError::InvalidVolume { ts, .. }) if ts == b[0].ts));
    }

    #[test]
    fn pairwise_sum_matches_numpy_order() {
        // 1e16 + 1 + ... : a left-to-right sum loses every 1.0, numpy's eight
        // accumulators keep most of them (value checked with numpy 2.4:
        // `v = np.ones(120); v[0] = 1e16; v.sum() - 1e16 == 106.0`).
        let mut v = vec![1.0f64; 120];
        v[0] = 1.0e16;
        let left_to_right = v.iter().fold(0.0, |s, x| s + x);
        assert_eq!(left_to_right, 1.0e16);
        assert_eq!(pairwise_sum(&v), 1.0e16 + 106.0);
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        assert_eq!(pairwise_sum(&(1..=300).map(f64::from).collect::<Vec<_>>()), 45150.0);
    }
}
