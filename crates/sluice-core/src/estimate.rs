//! Exponentially weighted moving averages, the service-time estimator of the policies.

use serde::{Deserialize, Serialize};

/// An EWMA with smoothing factor `alpha` in (0, 1]: `v ← alpha·x + (1−alpha)·v`.
/// The first sample initialises the average.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
    samples: u64,
}

impl Ewma {
    /// Creates an empty average. `alpha` is clamped into (0, 1].
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        };
        Ewma {
            alpha,
            value: None,
            samples: 0,
        }
    }

    /// Adds a sample; non-finite samples are ignored.
    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.samples += 1;
        self.value = Some(match self.value {
            None => x,
            Some(v) => self.alpha * x + (1.0 - self.alpha) * v,
        });
    }

    /// The current average, if any sample was seen.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// How many samples were observed.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_sample_initialises() {
        let mut e = Ewma::new(0.3);
        assert_eq!(e.value(), None);
        e.observe(10.0);
        assert_eq!(e.value(), Some(10.0));
        e.observe(20.0);
        assert!((e.value().unwrap() - 13.0).abs() < 1e-9);
        e.observe(f64::NAN);
        assert_eq!(e.samples(), 2);
    }

    proptest! {
        #[test]
        fn stays_within_sample_range(xs in proptest::collection::vec(0.0f64..1e6, 1..50), a in 0.01f64..1.0) {
            let mut e = Ewma::new(a);
            for &x in &xs { e.observe(x); }
            let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let v = e.value().unwrap();
            prop_assert!(v >= lo - 1e-6 && v <= hi + 1e-6);
        }
    }
}
