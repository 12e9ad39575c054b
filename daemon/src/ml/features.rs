//! A model's input: one feature window per bar and symbol, computed from the
//! feature catalogue of `ml/FEATURES.md` exactly as `ml/features.py`, the
//! reference models are trained with, computes it. The order of
//! floating-point operations follows the Python code (f64 throughout,
//! numpy's summation order, one cast to f32 at the end) so that both give the
//! same f32s, not just close ones.
//!
//! A model names its features and window length in its manifest
//! (`ml/contract.rs`); [`FeatureSpec`] is that part of the contract.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::market::Bar;

/// The shipped model's window (`models/patchtst.json`): 120 bars of 4
/// channels, 121 raw bars. The replay warms up with this many bars.
pub const WINDOW: usize = 120;
pub const CHANNELS: usize = 4;
pub const RAW_BARS: usize = WINDOW + 1;

/// Added to the volume std so that a constant-volume window gives 0, not NaN.
const VOL_EPS: f64 = 1e-6;
const VOL_CLIP: f64 = 5.0;
/// The longest window a manifest may ask for (a day of one-minute bars).
pub const MAX_WINDOW: usize = 1440;

/// The feature catalogue. Every feature describes one bar `t` of the window
/// from that bar and, for returns, earlier closes; `vol_z` is standardised
/// over the window's own bars. Volumes are in the quote currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `ln(close[t] / close[t-1])`
    Ret,
    /// `ln(close[t] / close[t-15])`
    Ret15,
    /// `ln(high[t] / low[t])`
    Range,
    /// `ln(close[t] / open[t])`
    Body,
    /// `((2 close - high) - low) / (high - low)`, 0 for a flat bar
    Clv,
    /// `clip((lv[t] - mean) / (std + 1e-6), -5, 5)`, `lv = ln(1 + volume)`,
    /// mean and population std over the window's bars
    VolZ,
}

impl Feature {
    pub const ALL: [Feature; 6] =
        [Feature::Ret, Feature::Ret15, Feature::Range, Feature::Body, Feature::Clv, Feature::VolZ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Ret => "ret",
            Feature::Ret15 => "ret_15",
            Feature::Range => "range",
            Feature::Body => "body",
            Feature::Clv => "clv",
            Feature::VolZ => "vol_z",
        }
    }

    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Bars before a window row the feature looks at.
    pub fn lookback(self) -> usize {
        match self {
            Feature::Ret => 1,
            Feature::Ret15 => 15,
            _ => 0,
        }
    }

    /// The catalogue's names, for error messages.
    pub fn names() -> String {
        Feature::ALL.map(Feature::name).join(", ")
    }

    /// The value for `bars[t]`, `t >= lookback`; `VolZ` is not per bar.
    fn per_bar(self, bars: &[Bar], t: usize) -> f64 {
        let bar = &bars[t];
        match self {
            Feature::Ret => (bar.close / bars[t - 1].close).ln(),
            Feature::Ret15 => (bar.close / bars[t - 15].close).ln(),
            Feature::Range => (bar.high / bar.low).ln(),
            Feature::Body => (bar.close / bar.open).ln(),
            Feature::Clv => close_location(bar),
            Feature::VolZ => unreachable!("vol_z is standardised over the window"),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a model reads: `window` rows (oldest first) of the named features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSpec {
    window: usize,
    features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("window must be 2 to {MAX_WINDOW} bars, got {0}")]
    Window(usize),
    #[error("no features named")]
    NoFeatures,
    #[error("feature `{0}` is named twice")]
    Duplicate(Feature),
}

impl FeatureSpec {
    pub fn new(window: usize, features: Vec<Feature>) -> Result<FeatureSpec, SpecError> {
        if !(2..=MAX_WINDOW).contains(&window) {
            return Err(SpecError::Window(window));
        }
        if features.is_empty() {
            return Err(SpecError::NoFeatures);
        }
        if let Some(twice) = features.iter().enumerate().find_map(|(i, f)| features[..i].contains(f).then_some(*f)) {
            return Err(SpecError::Duplicate(twice));
        }
        Ok(FeatureSpec { window, features })
    }

    /// The shipped model's input: 120 bars of `ret, range, clv, vol_z`.
    pub fn patchtst() -> FeatureSpec {
        FeatureSpec { window: WINDOW, features: vec![Feature::Ret, Feature::Range, Feature::Clv, Feature::VolZ] }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    pub fn channels(&self) -> usize {
        self.features.len()
    }

    /// Bars a window needs: the window and the longest lookback before it.
    pub fn raw_bars(&self) -> usize {
        self.window + self.features.iter().map(|f| f.lookback()).max().unwrap_or(0)
    }

    /// The feature window of the newest bar of `bars`, computed from its last
    /// `raw_bars()` bars (oldest first, consecutive minutes: gaps are the
    /// caller's to avoid or fill, the features do not look at timestamps).
    pub fn compute(&self, bars: &[Bar]) -> Result<FeatureWindow, FeatureError> {
        let needed = self.raw_bars();
        let Some(start) = bars.len().checked_sub(needed) else {
            return Err(FeatureError::TooFewBars { needed, got: bars.len() });
        };
        let raw = &bars[start..];
        raw.iter().try_for_each(check_bar)?;
        let first = needed - self.window;
        let channels = self.channels();
        let mut values = vec![0.0f32; self.window * channels];
        for (c, feature) in self.features.iter().enumerate() {
            if *feature == Feature::VolZ {
                let z = vol_z(&raw[first..]);
                for (row, v) in z.into_iter().enumerate() {
                    values[row * channels + c] = v as f32;
                }
            } else {
                for row in 0..self.window {
                    values[row * channels + c] = feature.per_bar(raw, first + row) as f32;
                }
            }
        }
        Ok(FeatureWindow { window: self.window, channels, values })
    }
}

/// One model input: `window` rows of `channels` features, row-major, the
/// layout of the ONNX input (`[batch, window, channels]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureWindow {
    window: usize,
    channels: usize,
    values: Vec<f32>,
}

impl FeatureWindow {
    pub fn window(&self) -> usize {
        self.window
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Row-major values, `window * channels` of them.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Row `i` (bar `i` of the window, 0 = oldest).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.channels..(i + 1) * self.channels]
    }

    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.channels)
    }
}

/// The shipped model's window of the newest bar of `bars`.
pub fn window(bars: &[Bar]) -> Result<FeatureWindow, FeatureError> {
    FeatureSpec::patchtst().compute(bars)
}

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
/// bar among the raw bars rejects the whole window, as in the reference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("a feature window needs {needed} consecutive bars, got {got} ({} missing)", needed - got)]
    TooFewBars { needed: usize, got: usize },
    #[error("bar at {ts}: {field} is {value}, a price must be finite and > 0")]
    InvalidPrice { ts: DateTime<Utc>, field: BarField, value: f64 },
    #[error("bar at {ts}: volume is {value}, it must be finite and >= 0")]
    InvalidVolume { ts: DateTime<Utc>, value: f64 },
}

/// `vol_z` of every bar of `bars` (the window's bars, not the lookback).
fn vol_z(bars: &[Bar]) -> Vec<f64> {
    let log_volume: Vec<f64> = bars.iter().map(|bar| bar.volume.ln_1p()).collect();
    let n = log_volume.len() as f64;
    let mean = pairwise_sum(&log_volume) / n;
    let squared_deviation: Vec<f64> = log_volume
        .iter()
        .map(|lv| {
            let deviation = lv - mean;
            deviation * deviation
        })
        .collect();
    let std = (pairwise_sum(&squared_deviation) / n).sqrt();
    log_volume.iter().map(|lv| ((lv - mean) / (std + VOL_EPS)).clamp(-VOL_CLIP, VOL_CLIP)).collect()
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
        let row = w.row(WINDOW - 1);
        assert_eq!(row[0], (last.close / prev.close).ln() as f32);
        assert_eq!(row[1], (last.high / last.low).ln() as f32);
        assert_eq!(row[2], ((2.0 * last.close - last.high - last.low) / (last.high - last.low)) as f32);
    }

    #[test]
    fn flat_bar_has_clv_zero() {
        let mut b = bars(RAW_BARS);
        let last = b.last_mut().unwrap();
        (last.open, last.high, last.low, last.close) = (40_000.0, 40_000.0, 40_000.0, 40_000.0);
        let w = window(&b).unwrap();
        let row = w.row(WINDOW - 1);
        assert_eq!(row[1], 0.0, "range of a flat bar");
        assert_eq!(row[2], 0.0, "clv of a flat bar");
    }

    #[test]
    fn close_at_high_is_plus_one_and_at_low_minus_one() {
        let mut b = bars(RAW_BARS);
        b[RAW_BARS - 1].close = b[RAW_BARS - 1].high;
        b[RAW_BARS - 2].close = b[RAW_BARS - 2].low;
        let w = window(&b).unwrap();
        assert_eq!(w.row(WINDOW - 1)[2], 1.0);
        assert_eq!(w.row(WINDOW - 2)[2], -1.0);
    }

    #[test]
    fn constant_volume_gives_vol_z_zero() {
        let mut b = bars(RAW_BARS);
        b.iter_mut().for_each(|bar| bar.volume = 0.0);
        assert!(window(&b).unwrap().rows().all(|row| row[3] == 0.0), "zero volume is allowed and gives exactly 0");

        // Otherwise the mean of 120 equal logs is off by its rounding and the
        // 1e6-fold division turns that into a few 1e-9, zero within the
        // contract's 1e-6. The reference does the same: ml/features.py gives
        // -3.5527137e-09 on every row for this volume.
        b.iter_mut().for_each(|bar| bar.volume = 123_456.789);
        assert!(window(&b).unwrap().rows().all(|row| row[3] == -3.5527137e-09));
    }

    #[test]
    fn vol_z_is_clipped_at_plus_and_minus_five() {
        let mut b = bars(RAW_BARS);
        b.iter_mut().for_each(|bar| bar.volume = 1.0e6);
        b[RAW_BARS - 1].volume = 1.0e30;
        b[RAW_BARS - 2].volume = 0.0;
        b[RAW_BARS - 3].volume = 1.0e-3;
        let w = window(&b).unwrap();
        assert_eq!(w.row(WINDOW - 1)[3], 5.0);
        // one huge bar drags the mean up, so the small ones are far below it
        assert!(w.row(WINDOW - 2)[3] < 0.0 && w.row(WINDOW - 2)[3] >= -5.0);
        assert!(w.rows().all(|row| (-5.0..=5.0).contains(&row[3])));
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
        assert_ne!(window(&a).unwrap().row(0)[0], window(&b).unwrap().row(0)[0]);
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
    fn catalogue_features_follow_their_formulas() {
        let b = bars(200);
        let spec = FeatureSpec::new(60, vec![Feature::Body, Feature::Ret15, Feature::VolZ]).unwrap();
        assert_eq!(spec.raw_bars(), 75, "60 rows and 15 bars of history for ret_15");
        let w = spec.compute(&b).unwrap();
        assert_eq!((w.window(), w.channels(), w.values().len()), (60, 3, 180));
        let last = &b[199];
        assert_eq!(w.row(59)[0], (last.close / last.open).ln() as f32);
        assert_eq!(w.row(59)[1], (last.close / b[184].close).ln() as f32);
        assert_eq!(w.row(0)[1], (b[140].close / b[125].close).ln() as f32);
        // only the last 75 bars count
        assert_eq!(spec.compute(&b[125..]).unwrap(), w);
        assert!(matches!(spec.compute(&b[126..]), Err(FeatureError::TooFewBars { needed: 75, got: 74 })));
    }

    #[test]
    fn a_spec_names_each_feature_once_and_a_sane_window() {
        assert_eq!(FeatureSpec::new(1, vec![Feature::Ret]), Err(SpecError::Window(1)));
        assert_eq!(FeatureSpec::new(MAX_WINDOW + 1, vec![Feature::Ret]), Err(SpecError::Window(MAX_WINDOW + 1)));
        assert_eq!(FeatureSpec::new(60, vec![]), Err(SpecError::NoFeatures));
        assert_eq!(
            FeatureSpec::new(60, vec![Feature::Ret, Feature::Clv, Feature::Ret]),
            Err(SpecError::Duplicate(Feature::Ret))
        );
        assert_eq!(FeatureSpec::patchtst().raw_bars(), RAW_BARS);
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.name()), Some(f));
        }
        assert_eq!(Feature::parse("RET"), None, "names are exact");
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
