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
//! sandbox of it). Deterministic: the same arrivals, parameters and seed give the same rows.

pub mod churn;
mod engine;
pub mod summary;
mod wake;

pub use churn::{Churn, ChurnEvent, ChurnKind};
pub use engine::run;
pub use summary::{render_table, to_json, ClusterSummary, Histogram};

use sluice_policy::placement::PlacementParams;
use sluice_policy::routing::{cluster_params, RouterKind};

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
}

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
        }
    }

    /// Checks the sizes, the ring's parameters and the churn schedule.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 100_000 {
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
        self.churn.validate(self.workers)
    }
}

#[cfg(test)]
mod tests;
