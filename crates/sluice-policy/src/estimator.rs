//! Service-time estimates per function: an EWMA of measured execution time, a configured fixed
//! value where one is given, and a default before any sample.

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, Ewma, FunctionId};

/// Estimator parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimatorParams {
    /// EWMA smoothing factor in (0, 1]; larger follows recent samples faster.
    pub alpha: f64,
    /// Estimate before the first sample, in milliseconds. MQFQ-Sticky's authors use T/10.
    pub default_ms: f64,
}

impl Default for EstimatorParams {
    fn default() -> Self {
        EstimatorParams {
            alpha: 0.3,
            default_ms: 500.0,
        }
    }
}

impl EstimatorParams {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err("estimator.alpha must be in (0, 1]".into());
        }
        if !(self.default_ms.is_finite() && self.default_ms >= 0.0) {
            return Err("estimator.default_ms must be a non-negative number".into());
        }
        Ok(())
    }
}

/// One function's measurements and pinned value, side by side (an estimate reads both).
#[derive(Clone, Debug)]
struct Entry {
    ewma: Ewma,
    fixed: Option<Dur>,
}

/// Per-function service-time estimates.
#[derive(Clone, Debug)]
pub struct Estimator {
    alpha: f64,
    default: Dur,
    entries: Vec<Entry>,
}

impl Estimator {
    /// No function known yet: every estimate is `params.default_ms` until it is measured or pinned.
    pub fn new(params: &EstimatorParams) -> Self {
        Estimator {
            alpha: params.alpha,
            default: Dur::from_millis_f64(params.default_ms),
            entries: Vec::new(),
        }
    }

    fn entry(&mut self, func: FunctionId) -> &mut Entry {
        if self.entries.len() <= func.index() {
            let empty = Entry {
                ewma: Ewma::new(self.alpha),
                fixed: None,
            };
            self.entries.resize(func.index() + 1, empty);
        }
        &mut self.entries[func.index()]
    }

    /// Pins `func`'s estimate to `d`, ignoring measurements.
    pub fn set_fixed(&mut self, func: FunctionId, d: Dur) {
        self.entry(func).fixed = Some(d);
    }

    /// Records a measured execution time.
    pub fn observe(&mut self, func: FunctionId, exec: Dur) {
        self.entry(func).ewma.observe(exec.as_micros() as f64);
    }

    /// The current estimate for `func`.
    pub fn estimate(&self, func: FunctionId) -> Dur {
        let Some(e) = self.entries.get(func.index()) else {
            return self.default;
        };
        if let Some(d) = e.fixed {
            return d;
        }
        match e.ewma.value() {
            Some(us) => Dur::from_micros(us.round() as u64),
            None => self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_then_ewma_then_fixed() {
        let mut e = Estimator::new(&EstimatorParams {
            alpha: 0.5,
            default_ms: 7.0,
        });
        let f = FunctionId(3);
        assert_eq!(e.estimate(f), Dur::from_millis(7));
        e.observe(f, Dur::from_millis(10));
        assert_eq!(e.estimate(f), Dur::from_millis(10));
        e.observe(f, Dur::from_millis(20));
        assert_eq!(e.estimate(f), Dur::from_millis(15));
        e.set_fixed(f, Dur::from_millis(2));
        e.observe(f, Dur::from_millis(100));
        assert_eq!(e.estimate(f), Dur::from_millis(2));
        assert_eq!(e.estimate(FunctionId(0)), Dur::from_millis(7));
    }
}
