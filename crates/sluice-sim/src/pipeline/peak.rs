//! Peak load of a plan: the highest Poisson rate at which the simulated end-to-end p99 stays
//! within a target and no request is dropped.
//!
//! The search, deterministic for a given [`PeakConfig`]:
//! 1. Every probe is one [`simulate`] run with the same seed (common random numbers: probes at
//!    different rates see the same arrival pattern, scaled), sized to `requests` measured
//!    requests (window = `requests / rate`) after a warm-up of `warmup_frac` of that window, and
//!    stopped at the first drop. A probe *passes* when nothing was dropped, every measured request
//!    completed and the p99 is ≤ the target.
//! 2. Bracket: start at the service bound of the plan (per stage, the sum over its instances of
//!    `batch / batch_ms(batch)`; the smallest stage's value), which no plan can sustain beyond.
//!    If it passes, double until a probe fails; otherwise halve until one passes (a plan that
//!    fails even at 2⁻²⁰ of its bound has peak 0).
//! 3. Bisect between the last pass and the first failure until they are within `tolerance` of
//!    each other (relative to the pass); the peak is the last passing rate.
//!
//! A finite run is noisy near the knee, so pass/fail need not be monotone in the rate there;
//! bisection then returns one of the crossing points, all within the noise of each other.

use super::config::{RunConfig, DEFAULT_NOISE_CV, DEFAULT_QUEUE_LIMIT};
use super::engine::simulate;
use super::report::PipelineRun;
use super::SimError;
use serde::{Deserialize, Serialize};
use sluice_pipeline::{Cluster, PipelineSpec, Plan, ServiceModel};

/// How to search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakConfig {
    /// Measured requests per probe.
    pub requests: u64,
    /// Warm-up before the measured window, as a fraction of it.
    pub warmup_frac: f64,
    /// Seed of every probe: the same for all, so probes at different rates see the same arrival
    /// pattern, scaled.
    pub seed: u64,
    /// Service-time noise of every probe (see [`RunConfig::noise_cv`]).
    pub noise_cv: f64,
    /// Per-instance queue bound of every probe (see [`RunConfig::queue_limit`]).
    pub queue_limit: usize,
    /// Stop bisecting when (fail − pass) ≤ tolerance × pass.
    pub tolerance: f64,
}

impl Default for PeakConfig {
    fn default() -> Self {
        PeakConfig {
            requests: 20_000,
            warmup_frac: 0.2,
            seed: 1,
            noise_cv: DEFAULT_NOISE_CV,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            tolerance: 0.01,
        }
    }
}

/// Halvings below the service bound before giving up.
const MAX_HALVINGS: u32 = 20;
/// Doublings above the service bound before stopping (the bound cannot be beaten by much).
const MAX_DOUBLINGS: u32 = 10;

impl PeakConfig {
    fn validate(&self) -> Result<(), SimError> {
        let bad = |field, rule, value| Err(SimError::Config { field, rule, value });
        if !(10..=2_000_000).contains(&self.requests) {
            return bad("requests", "in 10..=2000000", self.requests as f64);
        }
        if !(self.warmup_frac.is_finite() && (0.0..=10.0).contains(&self.warmup_frac)) {
            return bad("warmup_frac", "in 0..=10", self.warmup_frac);
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0 && self.tolerance < 1.0) {
            return bad("tolerance", "in (0, 1)", self.tolerance);
        }
        Ok(())
    }

    /// The run configuration of one probe at `rate_rps`.
    pub fn run_config(&self, rate_rps: f64) -> RunConfig {
        let duration_s = self.requests as f64 / rate_rps;
        RunConfig {
            rate_rps,
            duration_s,
            warmup_s: duration_s * self.warmup_frac,
            seed: self.seed,
            noise_cv: self.noise_cv,
            queue_limit: self.queue_limit,
            max_drops: Some(0),
        }
    }
}

/// Whether `run` meets `slo_ms` with nothing lost.
pub fn meets(run: &PipelineRun, slo_ms: f64) -> bool {
    !run.aborted
        && run.dropped == 0
        && run.completed > 0
        && run.completed == run.offered
        && run.e2e_ms.p99 <= slo_ms
}

/// The highest rate (requests/s) at which `plan` meets `slo_ms` (see the module doc).
pub fn peak_load(
    spec: &PipelineSpec,
    plan: &Plan,
    model: &dyn ServiceModel,
    cluster: &Cluster,
    slo_ms: f64,
    cfg: &PeakConfig,
) -> Result<f64, SimError> {
    cfg.validate()?;
    if !(slo_ms.is_finite() && slo_ms > 0.0) {
        return Err(SimError::Config {
            field: "slo_ms",
            rule: "a finite number > 0",
            value: slo_ms,
        });
    }
    let bound = service_bound_rps(spec, plan, model);
    if !(bound.is_finite() && bound > 0.0) {
        return Err(SimError::Config {
            field: "service bound of the plan (rps)",
            rule: "a finite number > 0 (every batch must take some time)",
            value: bound,
        });
    }
    let probe = |rate: f64| -> Result<bool, SimError> {
        let run = simulate(spec, plan, model, cluster, &cfg.run_config(rate))?;
        Ok(meets(&run, slo_ms))
    };
    let (mut lo, mut hi) = if probe(bound)? {
        let mut lo = bound;
        let mut doublings = 0;
        while probe(lo * 2.0)? {
            lo *= 2.0;
            doublings += 1;
            if doublings == MAX_DOUBLINGS {
                return Ok(lo);
            }
        }
        (lo, lo * 2.0)
    } else {
        let mut hi = bound;
        let mut halvings = 0;
        while !probe(hi / 2.0)? {
            hi /= 2.0;
            halvings += 1;
            if halvings == MAX_HALVINGS {
                return Ok(0.0);
            }
        }
        (hi / 2.0, hi)
    };
    while hi - lo > cfg.tolerance * lo {
        let mid = (lo + hi) / 2.0;
        if probe(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The rate the plan's instances could serve if every batch were full and nothing waited: per
/// stage, `Σ batch / batch_ms(batch)` over its instances (whole GPUs taking turns under
/// time-sharing are counted as if concurrent, so this stays an upper bound); the least stage.
pub fn service_bound_rps(spec: &PipelineSpec, plan: &Plan, model: &dyn ServiceModel) -> f64 {
    (0..spec.stages.len())
        .map(|s| {
            plan.instances
                .iter()
                .enumerate()
                .filter(|(_, x)| x.stage == s)
                .map(|(k, x)| x.batch as f64 / model.batch_ms(spec, plan, k, x.batch) * 1000.0)
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min)
}
