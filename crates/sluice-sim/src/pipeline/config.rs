//! Parameters of one pipeline simulation run: the arrival process, the measurement window, the
//! service-time noise and the queue bound, with their validity rules.

use super::SimError;
use serde::{Deserialize, Serialize};

/// One run: Poisson arrivals at `rate_rps` for `warmup_s + duration_s` seconds; requests that
/// arrive during the warm-up are served but left out of every statistic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Mean arrival rate, requests per second.
    pub rate_rps: f64,
    /// Length of the measured window of arrivals, seconds.
    pub duration_s: f64,
    /// Arrivals before the measured window, seconds (excluded from statistics).
    pub warmup_s: f64,
    /// Seeds the arrival stream and the service-noise stream (two ChaCha8 streams).
    pub seed: u64,
    /// Coefficient of variation of the lognormal factor (mean 1) on every batch's service time;
    /// 0 makes service deterministic.
    pub noise_cv: f64,
    /// Most items one instance holds queued; an item beyond it drops its whole request.
    pub queue_limit: usize,
    /// Stop the run once more than this many requests were dropped (`None`: never). The report
    /// of a stopped run says `aborted`.
    pub max_drops: Option<u64>,
}

/// Default coefficient of variation of service times.
pub const DEFAULT_NOISE_CV: f64 = 0.05;
/// Default per-instance queue bound, items.
pub const DEFAULT_QUEUE_LIMIT: usize = 4096;

impl RunConfig {
    /// A run at `rate_rps` for `duration_s` measured seconds, after a warm-up of a tenth of that,
    /// with seed 1, noise CV 0.05, queues bounded at 4096 items and no early stop.
    pub fn new(rate_rps: f64, duration_s: f64) -> Self {
        RunConfig {
            rate_rps,
            duration_s,
            warmup_s: duration_s / 10.0,
            seed: 1,
            noise_cv: DEFAULT_NOISE_CV,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            max_drops: None,
        }
    }

    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field, rule, value| Err(SimError::Config { field, rule, value });
        if !(self.rate_rps.is_finite() && self.rate_rps > 0.0) {
            return bad("rate_rps", "a finite number > 0", self.rate_rps);
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            return bad("duration_s", "a finite number > 0", self.duration_s);
        }
        if !(self.warmup_s.is_finite() && self.warmup_s >= 0.0) {
            return bad("warmup_s", "a finite number >= 0", self.warmup_s);
        }
        if !(self.noise_cv.is_finite() && (0.0..=10.0).contains(&self.noise_cv)) {
            return bad("noise_cv", "in 0..=10", self.noise_cv);
        }
        if self.queue_limit == 0 {
            return bad("queue_limit", "at least 1", 0.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes one field of a config invalid.
    type Breaker = fn(&mut RunConfig);

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(RunConfig::new(10.0, 5.0).validate(), Ok(()));
        let cases: [(&str, Breaker); 5] = [
            ("rate_rps", |c| c.rate_rps = 0.0),
            ("duration_s", |c| c.duration_s = f64::NAN),
            ("warmup_s", |c| c.warmup_s = -1.0),
            ("noise_cv", |c| c.noise_cv = 11.0),
            ("queue_limit", |c| c.queue_limit = 0),
        ];
        for (field, breaks) in cases {
            let mut c = RunConfig::new(10.0, 5.0);
            breaks(&mut c);
            let err = c.validate().expect_err(field).to_string();
            assert!(err.starts_with(field), "{err}");
        }
    }
}
