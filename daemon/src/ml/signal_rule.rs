//! When a prediction becomes a signal: the cost rule (|predicted return| >
//! the round trip cost + the manifest's margin), silence when the manifest's
//! margin is null, the operator's fixed threshold, and the reversal demo
//! that shows the system trading without claiming an edge.

use super::config::MlConfig;
use super::contract::Manifest;

/// When a prediction becomes a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalRule {
    /// |predicted return| must exceed the round trip cost plus the margin
    /// the model's validation chose (its manifest).
    CostAware { round_trip: f64, margin: f64 },
    /// No margin made money on the model's validation: it emits nothing.
    Silent { round_trip: f64 },
    /// `SIGNAL_THRESHOLD`, set by the operator, replaces the cost rule.
    Fixed { threshold: f64, round_trip: f64 },
    /// `STRATEGY=reversal-demo`: a signal against every 15-minute move
    /// larger than `threshold` (the model still runs and is logged). It shows
    /// the whole system trading and claims no edge: the evaluation
    /// (models/EVALUATION.md) finds none for a reversal after costs.
    ReversalDemo { threshold: f64, round_trip: f64 },
}

/// The strategy name that selects [`SignalRule::ReversalDemo`].
pub const REVERSAL_DEMO: &str = "reversal-demo";
/// The reversal demo's default move: 0.6 % in 15 minutes.
pub const REVERSAL_DEMO_THRESHOLD: f64 = 0.006;
/// The move the reversal demo looks at, in bars.
pub const REVERSAL_DEMO_BARS: usize = 15;

impl SignalRule {
    /// The rule for `manifest` with the venue costs of `cfg` (`SIGNAL_FEE`,
    /// `SIGNAL_SLIPPAGE`; the manifest's when unset).
    pub fn new(manifest: &Manifest, cfg: &MlConfig) -> SignalRule {
        let fee = cfg.fee.unwrap_or(manifest.costs.fee);
        let slippage = cfg.slippage.unwrap_or(manifest.costs.slippage);
        let round_trip = 2.0 * (fee + slippage);
        if cfg.strategy == REVERSAL_DEMO {
            return SignalRule::ReversalDemo {
                threshold: cfg.threshold.unwrap_or(REVERSAL_DEMO_THRESHOLD),
                round_trip,
            };
        }
        match (cfg.threshold, manifest.margin) {
            (Some(threshold), _) => SignalRule::Fixed { threshold, round_trip },
            (None, Some(margin)) => SignalRule::CostAware { round_trip, margin },
            (None, None) => SignalRule::Silent { round_trip },
        }
    }

    /// The smallest |predicted return| that is a signal; None: none is.
    pub fn threshold(&self) -> Option<f64> {
        match *self {
            SignalRule::CostAware { round_trip, margin } => Some(round_trip + margin),
            SignalRule::Silent { .. } => None,
            SignalRule::Fixed { threshold, .. } | SignalRule::ReversalDemo { threshold, .. } => Some(threshold),
        }
    }

    /// The return the rule judges for a bar: the model's prediction at the
    /// trade horizon, or (the reversal demo) minus the last 15-minute move.
    pub fn judged(&self, predicted: f32, bars: &[crate::market::Bar]) -> f32 {
        match self {
            SignalRule::ReversalDemo { .. } => {
                let n = bars.len();
                if n <= REVERSAL_DEMO_BARS {
                    return 0.0;
                }
                (-(bars[n - 1].close / bars[n - 1 - REVERSAL_DEMO_BARS].close).ln()) as f32
            }
            _ => predicted,
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            SignalRule::CostAware { round_trip, margin } => format!(
                "a signal when |predicted return| > {:.5} (round trip cost {round_trip:.5} + margin {margin:.5})",
                round_trip + margin
            ),
            SignalRule::Silent { round_trip } => format!(
                "no signals: the model's manifest margin is null (no edge above the round trip cost {round_trip:.5} \
                 out of sample: models/EVALUATION.md); STRATEGY=reversal-demo shows the system trading without \
                 claiming an edge, SIGNAL_THRESHOLD overrides"
            ),
            SignalRule::ReversalDemo { threshold, round_trip } => format!(
                "STRATEGY=reversal-demo: a signal against every 15-minute move larger than {threshold:.4} (round \
                 trip {round_trip:.5}); a demonstration of the system, not an edge (models/EVALUATION.md)"
            ),
            SignalRule::Fixed { threshold, round_trip } if threshold < round_trip => format!(
                "a signal when |predicted return| > {threshold:.5} (SIGNAL_THRESHOLD), BELOW the round trip cost \
                 {round_trip:.5}: every trade the model expects to make loses money after costs"
            ),
            SignalRule::Fixed { threshold, round_trip } => {
                format!(
                    "a signal when |predicted return| > {threshold:.5} (SIGNAL_THRESHOLD; round trip {round_trip:.5})"
                )
            }
        }
    }
}

/// A signal the predicted return `r` (at the trade horizon) calls for, if any.
pub fn signal_for(r: f32, rule: &SignalRule, full_strength: f64) -> Option<(&'static str, f64)> {
    let r = f64::from(r);
    let threshold = rule.threshold()?;
    if !r.is_finite() || r.abs() < threshold || r == 0.0 {
        return None;
    }
    let direction = if r > 0.0 { "BUY" } else { "SELL" };
    Some((direction, (r.abs() / full_strength).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUND_TRIP: f64 = 0.0014;

    #[test]
    fn direction_from_sign_strength_from_magnitude() {
        let rule = SignalRule::Fixed { threshold: 0.0004, round_trip: ROUND_TRIP };
        let (direction, strength) = signal_for(0.0015, &rule, 0.003).unwrap();
        assert_eq!(direction, "BUY");
        assert!((strength - 0.5).abs() < 1e-6, "{strength}");
        assert_eq!(signal_for(-0.006, &rule, 0.003), Some(("SELL", 1.0)));
        assert_eq!(signal_for(0.0003, &rule, 0.003), None, "below the threshold");
        let zero = SignalRule::Fixed { threshold: 0.0, round_trip: ROUND_TRIP };
        assert_eq!(signal_for(f32::NAN, &zero, 0.003), None, "never a signal from garbage");
    }

    #[test]
    fn a_cost_aware_rule_signals_only_above_round_trip_plus_margin() {
        let rule = SignalRule::CostAware { round_trip: ROUND_TRIP, margin: 0.001 };
        assert_eq!(signal_for(0.0023, &rule, 0.003), None, "clears the costs but not the margin");
        assert_eq!(signal_for(-0.0025, &rule, 0.003).map(|s| s.0), Some("SELL"));
        let silent = SignalRule::Silent { round_trip: ROUND_TRIP };
        assert_eq!(signal_for(0.05, &silent, 0.003), None, "a model that cannot clear its costs emits nothing");
        assert!(silent.describe().contains("no signals"));
        assert!(SignalRule::Fixed { threshold: 0.0004, round_trip: ROUND_TRIP }.describe().contains("BELOW"));
    }

    #[test]
    fn the_reversal_demo_signals_against_large_moves_whatever_the_model_says() {
        let bar = |close: f64| crate::market::Bar {
            ts: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
        };
        let demo = SignalRule::ReversalDemo { threshold: REVERSAL_DEMO_THRESHOLD, round_trip: ROUND_TRIP };
        let mut bars: Vec<_> = (0..20).map(|_| bar(100.0)).collect();
        assert_eq!(signal_for(demo.judged(0.05, &bars), &demo, 0.003), None, "the model's prediction is not judged");
        bars.push(bar(101.0));
        assert_eq!(signal_for(demo.judged(0.0, &bars), &demo, 0.003).map(|s| s.0), Some("SELL"), "after a 1 % rise");
        bars.push(bar(99.0));
        assert_eq!(signal_for(demo.judged(0.0, &bars), &demo, 0.003).map(|s| s.0), Some("BUY"), "after a 1 % fall");
        assert_eq!(demo.judged(0.0, &bars[..10]), 0.0, "no 15-minute move yet");
        assert!(demo.describe().contains("not an edge"));
    }
}
