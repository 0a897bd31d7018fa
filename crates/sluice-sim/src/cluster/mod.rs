//! The cluster in the simulator: `N` workers, each its own [`Node`](crate::engine::Node) (its
//! own scheduler and device model), under one event clock, with a router from
//! [`sluice_policy::routing`] (the code the cluster router runs) choosing the worker of every
//! arrival, and churn ([`Churn`]) removing and adding workers during the run.
//!
//! This module owns the cluster's parameters ([`ClusterParams`]), the run ([`run`], in
//! `engine`), churn parsing ([`churn`]) and the per-router summary ([`summary`]). The routers
//! see what a real router sees: each worker's outstanding invocations, reported with every
//! completion (the `x-sluice-load` of each response), its own increments between reports, and
//! warm workers as locality hints (a worker the function was recently sent to that holds an idle
//! sandbox of it). Reports reach the router up to [`ClusterParams::report_delay`] late: arrivals
//! within one such window are routed on what was reported before it, then every worker advances
//! to the next window on several threads at once (`crew`) when that is faster on this machine
//! (`tuner`). Deterministic: the same arrivals,
//! parameters and seed give the same rows, whatever the number of threads.

pub mod churn;
mod crew;
mod engine;
mod feed;
pub mod summary;
mod tuner;
mod wake;

pub use churn::{Churn, ChurnEvent, ChurnKind};
pub use engine::run;
pub use summary::{render_table, to_json, ClusterSummary, Histogram};

use sluice_core::Dur;
use sluice_policy::placement::PlacementParams;
use sluice_policy::routing::{cluster_params, RouterKind};

/// Most workers in a run, joined ones included.
pub const MAX_WORKERS: usize = 100_000;
/// The default [`ClusterParams::report_delay`].
pub const REPORT_DELAY: Dur = Dur::from_millis(10);

/// How the cluster is built and routed.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterParams {
    /// Workers at the start (ids `0..workers`).
    pub workers: usize,
    /// GPUs of each worker.
    pub gpus_per_worker: usize,
    /// The routing rule.
    pub router: RouterKind,
    /// The ring's parameters for the hashing rules (ε, points, probes, hint slack, fractional
    /// rounding; the gate and jitter come from the rule) and every rule's seed.
    pub placement: PlacementParams,
    /// A function is popular (may spill under `ch-rlu`'s gate) above this many arrivals a second,
    /// the cluster router's default.
    pub popular_rps: f64,
    /// Workers leaving and joining.
    pub churn: Churn,
    /// How late a worker's load reports (its completions and refusals) reach the router; its
    /// own increments it knows at once. Zero routes every instant on exact loads.
    pub report_delay: Dur,
    /// Threads that advance workers (the caller's included); 0: one per available core, at
    /// most [`MAX_THREADS`], or one without a report delay (epochs of one instant are too small
    /// to share). Results do not depend on it.
    pub threads: usize,
}

/// Locks `m`; a poisoned lock (a thread panicked holding it) is taken as it is, since the
/// panic itself ends the run.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Most threads [`ClusterParams::threads`] picks on its own.
pub const MAX_THREADS: usize = 8;

impl ClusterParams {
    /// `workers` workers of `gpus_per_worker` GPUs under `router`, the cluster router's ring
    /// ([`cluster_params`]: ε 0.05, fractional rounding, a walk of 32), no churn.
    pub fn new(workers: usize, gpus_per_worker: usize, router: RouterKind) -> Self {
        ClusterParams {
            workers,
            gpus_per_worker,
            router,
            placement: cluster_params(),
            popular_rps: 5.0,
            churn: Churn::default(),
            report_delay: REPORT_DELAY,
            threads: 0,
        }
    }

    /// The threads a run uses.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 if self.report_delay == Dur::ZERO => 1,
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_THREADS),
            n => n,
        }
    }

    /// Checks the sizes, the ring's parameters and the churn schedule.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(format!(
                "workers must be in 1..=100000, got {}",
                self.workers
            ));
        }
        if self.gpus_per_worker == 0 || self.gpus_per_worker > 64 {
            return Err(format!(
                "gpus per worker must be in 1..=64, got {}",
                self.gpus_per_worker
            ));
        }
        self.placement.validate().map_err(|e| e.to_string())?;
        if !(self.popular_rps.is_finite() && self.popular_rps >= 0.0) {
            return Err("popular_rps must be a non-negative number".into());
        }
        if self.threads > 256 {
            return Err(format!("threads must be at most 256, got {}", self.threads));
        }
        if self.report_delay > Dur::from_secs(60) {
            return Err("the report delay must be at most 60 s".into());
        }
        self.churn.validate(self.workers)
    }
}

#[cfg(test)]
mod tests;
