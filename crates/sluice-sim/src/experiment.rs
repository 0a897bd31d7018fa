//! One `sluice sim` experiment: load a trace, scale it to each requested load, and replay it
//! under each policy and as the ideal bound (in parallel threads, each run single-threaded and
//! deterministic).

use crate::config::SimConfig;
use crate::engine::{self, RunOptions};
use crate::ideal;
use crate::record::RunResult;
use crate::trace::{self, Catalog, LoadOptions, TraceError, TraceSpec};
use crate::workload::Workload;
use sluice_policy::queue::POLICY_NAMES;
use sluice_policy::scheduler::ConfigError;

/// What to run.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The trace to load.
    pub trace: TraceSpec,
    /// Queueing policies to compare, by name (see [`POLICY_NAMES`]): one run each at every load.
    pub policies: Vec<String>,
    /// Offered GPU utilisations to scale the trace to; `None` replays it as recorded.
    pub loads: Vec<Option<f64>>,
    /// The simulator configuration of every run; each run replaces only `scheduler.policy`.
    pub config: SimConfig,
    /// The GPU classes that trace functions are mapped onto.
    pub catalog: Catalog,
}

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The trace could not be loaded, or scaled to a requested load.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The scheduler refused the configuration of a run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A policy name is not one of [`POLICY_NAMES`].
    #[error("unknown policy {0:?}; known: {known}", known = POLICY_NAMES.join(", "))]
    UnknownPolicy(String),
    /// `policies` is empty.
    #[error("no policy given")]
    NoPolicy,
}

/// The runs at one load.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// The offered GPU utilisation the trace was scaled to; `None` when replayed as recorded.
    pub target_util: Option<f64>,
    /// Factor applied to inter-arrival times (1 when replayed as recorded).
    pub scale: f64,
    /// One run per policy, in the order of [`Experiment::policies`].
    pub results: Vec<RunResult>,
    /// The ideal bound of the same arrivals ([`crate::ideal`]).
    pub ideal: RunResult,
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
            let (results, ideal) = self.run_policies(&w, self.config.gpus, progress)?;
            out.push(LoadResult {
                target_util: load,
                scale,
                results,
                ideal,
            });
        }
        Ok(out)
    }

    /// Runs every policy, and the ideal bound, on `w` with `gpus` devices.
    pub fn run_policies(
        &self,
        w: &Workload,
        gpus: usize,
        progress: &(dyn Fn(usize, u64) + Sync),
    ) -> Result<(Vec<RunResult>, RunResult), ExperimentError> {
        let n = self.policies.len();
        // Job i < n is policy i; job n is the ideal bound.
        let mut results = parallel(n + 1, |i| {
            if i == n {
                return ideal::run(w, &self.config.scheduler, &self.config.device, gpus);
            }
            self.run_one(w, &self.policies[i], gpus, &mut |k| progress(i, k))
        })?;
        let ideal = results.pop().expect("the ideal job ran");
        Ok((results, ideal))
    }

    /// Runs one policy on `w` with `gpus` devices, with this experiment's admission bound.
    pub fn run_one(
        &self,
        w: &Workload,
        policy: &str,
        gpus: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<RunResult, ConfigError> {
        let cfg = sluice_policy::scheduler::SchedulerConfig {
            policy: policy.to_string(),
            ..self.config.scheduler.clone()
        };
        let opts = RunOptions {
            max_queue: self.config.admission.max_queue(),
            prewarm: self.config.prewarm.per_function,
        };
        engine::run_with(w, &cfg, &self.config.device, gpus, opts, progress)
    }
}

/// Runs `job(0..n)` on up to one thread per core; results in job order.
pub(crate) fn parallel<T: Send>(
    n: usize,
    job: impl Fn(usize) -> Result<T, ConfigError> + Sync,
) -> Result<Vec<T>, ExperimentError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<Option<Result<T, ConfigError>>> = (0..n).map(|_| None).collect();
    let job = &job;
    for chunk in (0..n).collect::<Vec<_>>().chunks(threads) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&i| (i, s.spawn(move || job(i))))
                .collect();
            for (i, h) in handles {
                results[i] = Some(h.join().expect("simulation threads do not panic"));
            }
        });
    }
    results
        .into_iter()
        .map(|r| r.expect("every job ran").map_err(ExperimentError::from))
        .collect()
}
