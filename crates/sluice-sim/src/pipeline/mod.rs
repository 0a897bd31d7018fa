//! Simulation of GPU-microservice pipelines (Camelot): a placement [`Plan`] of a
//! [`PipelineSpec`] is driven by a Poisson arrival process through a discrete-event engine
//! ([`engine`]) whose batch service times come from a [`ServiceModel`]; runs are summarised
//! per stage and end to end ([`report`]); [`peak`] searches a plan's highest load within a
//! p99 target; [`evaluate`] plans every policy on the Gpu-let and OCR profiles and compares
//! simulated peak loads and low-load resources against the baselines.
//!
//! Conventions follow the rest of the crate: virtual time is integer microseconds
//! ([`sluice_core::Time`]), reported durations are milliseconds (`f64`), randomness is seeded
//! ChaCha (the same inputs and seed give identical results), and nothing here panics on bad
//! input: errors are [`SimError`] values.
//!
//! [`Plan`]: sluice_pipeline::Plan
//! [`PipelineSpec`]: sluice_pipeline::PipelineSpec
//! [`ServiceModel`]: sluice_pipeline::ServiceModel

mod config;
pub mod engine;
pub mod evaluate;
mod noise;
pub mod peak;
pub mod report;
mod trace;

pub use config::RunConfig;
pub use engine::{simulate, simulate_traced};
pub use peak::{peak_load, PeakConfig};
pub use report::{LatencyMs, PipelineRun, StageRun};
pub use trace::{BatchRecord, ItemRecord, RequestRecord, Trace};

use sluice_pipeline::{SpecError, Violation};

/// Why a pipeline simulation could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// The spec breaks one of its own rules.
    #[error("invalid pipeline spec: {0}")]
    Spec(#[from] SpecError),
    /// The plan breaks a hard constraint on this spec and cluster.
    #[error("invalid plan: {0}")]
    Plan(#[from] Violation),
    /// A run or search parameter is out of range.
    #[error("{field} must be {rule}, got {value}")]
    Config {
        /// The parameter's name.
        field: &'static str,
        /// The range it must be in, in words.
        rule: &'static str,
        /// The value given.
        value: f64,
    },
    /// The service model returned a time the engine cannot use.
    #[error(
        "the service model gave {ms} ms for a batch of {batch} on instance {instance} \
         (stage {stage:?}); it must be a finite number >= 0"
    )]
    Service {
        /// The instance's index in the plan.
        instance: usize,
        /// The name of the instance's stage.
        stage: String,
        /// The batch size asked about.
        batch: u32,
        /// The time the model gave: negative, NaN or infinite.
        ms: f64,
    },
    /// The run would hold more stage items (requests × stages) than the engine accepts.
    #[error(
        "the run would hold about {0} stage items (requests x stages); at most {max} are allowed",
        max = engine::MAX_ITEMS
    )]
    TooLarge(u64),
}
