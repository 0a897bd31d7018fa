//! One `sluice sim` experiment: load a trace, scale it to each requested load, and replay it
//! under each policy (policies in parallel threads, each run single-threaded and deterministic).

use crate::config::SimConfig;
use crate::engine;
use crate::record::RunResult;
use crate::trace::{self, Catalog, LoadOptions, TraceError, TraceSpec};
use crate::workload::Workload;
use sluice_policy::queue::POLICY_NAMES;
use sluice_policy::scheduler::ConfigError;

/// What to run.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub trace: TraceSpec,
    pub policies: Vec<String>,
    /// Offered GPU utilisations to scale the trace to; `None` replays it as recorded.
    pub loads: Vec<Option<f64>>,
    pub config: SimConfig,
    pub catalog: Catalog,
}

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("unknown policy {0:?}; known: {known}", known = POLICY_NAMES.join(", "))]
    UnknownPolicy(String),
    #[error("no policy given")]
    NoPolicy,
}

/// The runs at one load.
#[derive(Clone, Debug)]
pub struct LoadResult {
    pub target_util: Option<f64>,
    /// Factor applied to inter-arrival times (1 when replayed as recorded).
    pub scale: f64,
    pub results: Vec<RunResult>,
}

impl Experiment {
    /// Checks policy names before any work is done.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.policies.is_empty() {
            return Err(ExperimentError::NoPolicy);
        }
        for p in &self.policies {
            if !POLICY_NAMES.contains(&p.as_str()) {
                return Err(ExperimentError::UnknownPolicy(p.clone()));
            }
        }
        Ok(())
    }

    /// Loads the trace as recorded.
    pub fn load(&self) -> Result<(Workload, Vec<String>), ExperimentError> {
        let opts = LoadOptions {
            seed: self.config.trace.seed,
            spread: self.config.trace.spread,
            catalog: self.catalog.clone(),
        };
        let loaded = trace::load(&self.trace, &opts)?;
        Ok((loaded.workload, loaded.warnings))
    }

    /// Runs every load and policy. `progress(policy_index, arrivals_done)` reports advancement.
    pub fn run(
        &self,
        base: &Workload,
        progress: &(dyn Fn(usize, u64) + Sync),
    ) -> Result<Vec<LoadResult>, ExperimentError> {
        self.validate()?;
        let mut out = Vec::new();
        for &load in &self.loads {
            let mut w = base.clone();
            let scale = match load {
                Some(target) => trace::scale_to_util(&mut w, target, self.config.gpus)?,
                None => 1.0,
            };
            let results = self.run_policies(&w, progress)?;
            out.push(LoadResult {
                target_util: load,
                scale,
                results,
            });
        }
        Ok(out)
    }

    fn run_policies(
        &self,
        w: &Workload,
        progress: &(dyn Fn(usize, u64) + Sync),
    ) -> Result<Vec<RunResult>, ExperimentError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut results: Vec<Option<Result<RunResult, ConfigError>>> =
            (0..self.policies.len()).map(|_| None).collect();
        for chunk in (0..self.policies.len()).collect::<Vec<_>>().chunks(threads) {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&i| {
                        let mut cfg = self.config.scheduler.clone();
                        cfg.policy = self.policies[i].clone();
                        let device = &self.config.device;
                        let gpus = self.config.gpus;
                        (
                            i,
                            s.spawn(move || {
                                engine::run(w, &cfg, device, gpus, &mut |n| progress(i, n))
                            }),
                        )
                    })
                    .collect();
                for (i, h) in handles {
                    results[i] = Some(h.join().expect("simulation threads do not panic"));
                }
            });
        }
        results
            .into_iter()
            .map(|r| r.expect("every policy ran").map_err(ExperimentError::from))
            .collect()
    }
}
