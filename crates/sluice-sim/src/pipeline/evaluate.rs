//! The simulated evaluation of the pipeline planners: for each application (Gpu-let
//! `traffic` and `game`, and the OCR pipeline when its profile is at hand), each GPU count and
//! each policy, plan for maximum load and measure the plan's simulated peak load at the p99
//! target; then, at a low load, plan for minimum resources and measure what each policy uses and
//! whether it still meets the target in simulation. Camelot's two policies are compared with the
//! best baseline by *simulated* numbers, and the planner's analytic p99 is checked against the
//! simulated one at the same loads.
//!
//! Choices, all stated in the report:
//! - service times in the simulator come from the same `PerfModel` the planner used (profile ×
//!   contention model), so the simulation tests the plans' queueing, batching, routing and
//!   hand-offs — not the profiles themselves;
//! - the low load of an app is `low_load_frac` (default 20%) of the best baseline's simulated
//!   1-GPU peak, and min-resources plans may use up to the largest GPU count evaluated;
//! - "best baseline" is the baseline with the highest simulated peak (max load) or the fewest
//!   GPUs among those that meet the target in simulation (low load);
//! - prediction error is checked at 70% of each max-load plan's simulated peak and at the low
//!   load, as `(predicted p99 − simulated p99) / simulated p99`.
//!
//! Apps run in parallel threads; everything else is deterministic (fixed seeds).

mod markdown;

pub use markdown::render_markdown;

use super::config::RunConfig;
use super::engine::simulate;
use super::peak::{meets, peak_load, PeakConfig};
use super::SimError;
use serde::{Deserialize, Serialize};
use sluice_pipeline::contention::Contention;
use sluice_pipeline::gpulet::load_app;
use sluice_pipeline::model::PerfModel;
use sluice_pipeline::planner::{plan, Goal, Policy};
use sluice_pipeline::profile::{ProfileError, Profiles};
use sluice_pipeline::{Cluster, GpuModel, PipelineSpec, Plan, SpecError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Camelot's claimed gain in peak load over the prior state of the art, percent.
pub const TARGET_PEAK_GAIN_PCT: f64 = 64.5;
/// Camelot's claimed saving of resources at low load, percent.
pub const TARGET_SAVING_PCT: f64 = 35.0;
/// Fraction of a max-load plan's simulated peak at which its prediction is checked.
pub const CHECK_FRACTION: f64 = 0.7;

/// What to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Directory of the Gpu-let data (`UTIL.CSV`, `INT_MODEL_CONSTANT.CSV`, `mem-config.json`,
    /// `traffic.json`, `game.json`).
    pub gpulet_dir: PathBuf,
    /// The OCR pipeline: (profile CSV, spec YAML); skipped when `None`.
    pub ocr: Option<(PathBuf, PathBuf)>,
    /// GPU counts to plan each app for (each ≥ 1); min-resources plans may use the largest.
    pub gpu_counts: Vec<u32>,
    /// Low load as a fraction of the best baseline's simulated 1-GPU (smallest count) peak.
    pub low_load_frac: f64,
    /// How each max-load plan's simulated peak is searched; its seed, warm-up, noise and queue
    /// bound also apply to the fixed-load checks.
    pub peak: PeakConfig,
    /// Measured requests of each fixed-load check run.
    pub check_requests: u64,
    /// Apps evaluated at once.
    pub threads: usize,
}

impl EvalConfig {
    /// The evaluation: 1, 2 and 4 GPUs, low load at 20%, two threads.
    pub fn new(gpulet_dir: PathBuf, ocr: Option<(PathBuf, PathBuf)>) -> Self {
        EvalConfig {
            gpulet_dir,
            ocr,
            gpu_counts: vec![1, 2, 4],
            low_load_frac: 0.2,
            peak: PeakConfig::default(),
            check_requests: 20_000,
            threads: 2,
        }
    }
}

/// Why the evaluation could not run at all (per-plan failures are recorded in the results).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Gpu-let profiles, the contention model, an app file or the OCR profile could not be loaded.
    #[error("loading {what}: {source}")]
    Profile {
        /// What was being loaded, naming its file or directory.
        what: String,
        /// The loader's error.
        source: ProfileError,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The OCR pipeline spec could not be parsed or breaks one of its rules.
    #[error("OCR spec {path}: {source}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// What is wrong with it.
        source: SpecError,
    },
    /// An [`EvalConfig`] value is out of range.
    #[error("{field} must be {rule}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// The range it must be in, in words.
        rule: &'static str,
    },
}

/// One application's inputs.
pub struct App {
    /// The app's name: `traffic`, `game`, or the OCR spec's own name.
    pub name: String,
    /// Its pipeline.
    pub spec: PipelineSpec,
    /// Per-stage service-time profiles, used by the planner and, through the same model, the
    /// simulator.
    pub profiles: Profiles,
    /// How co-located stages slow each other (none for OCR).
    pub contention: Contention,
    /// Where the profiles came from, for the report.
    pub source: String,
}

impl App {
    fn model(&self, gpus: u32) -> PerfModel {
        PerfModel {
            profiles: self.profiles.clone(),
            contention: self.contention.clone(),
            cluster: Cluster::new(GpuModel::rtx_2080_ti(), gpus),
        }
    }
}

/// Loads `traffic` and `game` from the Gpu-let directory and OCR when configured.
pub fn load_apps(cfg: &EvalConfig) -> Result<Vec<App>, EvalError> {
    let dir = &cfg.gpulet_dir;
    let profile_err = |what: String| move |source| EvalError::Profile { what, source };
    let profiles = Profiles::load_gpulet(dir).map_err(profile_err(format!(
        "Gpu-let profiles from {}",
        dir.display()
    )))?;
    let contention = Contention::load_gpulet(dir).map_err(profile_err(format!(
        "Gpu-let contention model from {}",
        dir.display()
    )))?;
    let mut apps = Vec::new();
    for name in ["traffic", "game"] {
        let path = dir.join(format!("{name}.json"));
        let spec = load_app(&path).map_err(profile_err(path.display().to_string()))?;
        apps.push(App {
            name: name.into(),
            spec,
            profiles: profiles.clone(),
            contention: contention.clone(),
            source: format!("Gpu-let RTX 2080 Ti profiles ({})", dir.display()),
        });
    }
    if let Some((profile, spec_path)) = &cfg.ocr {
        let text = read(profile)?;
        let profiles =
            Profiles::from_csv(&text).map_err(profile_err(profile.display().to_string()))?;
        let spec = PipelineSpec::parse(&read(spec_path)?).map_err(|source| EvalError::Spec {
            path: spec_path.clone(),
            source,
        })?;
        apps.push(App {
            name: spec.name.clone(),
            spec,
            profiles,
            contention: Contention::none(),
            source: format!(
                "OCR stage profile {} (no contention model: co-located stages are not slowed)",
                profile.display()
            ),
        });
    }
    Ok(apps)
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A fixed-load check: the planner's p99 against the simulated one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The offered load, requests per second.
    pub load_rps: f64,
    /// The planner's predicted end-to-end p99 at that load, ms.
    pub predicted_p99_ms: f64,
    /// The simulated end-to-end p99, ms.
    pub simulated_p99_ms: f64,
    /// The simulated run met the target with nothing dropped.
    pub meets_slo: bool,
    /// `(predicted − simulated) / simulated`, percent.
    pub error_pct: f64,
}

/// One policy's max-load plan on one GPU count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxLoadRow {
    /// GPUs the plan may use.
    pub gpus: u32,
    /// The planner policy's name.
    pub policy: String,
    /// Whether the policy is a comparison baseline rather than one of Camelot's.
    pub baseline: bool,
    /// Stage instances in the plan.
    pub instances: usize,
    /// GPUs the plan occupies: its total SM share, possibly fractional.
    pub gpus_used: f64,
    /// The planner's predicted peak: the highest load with predicted p99 within the target,
    /// requests/s.
    pub predicted_capacity_rps: f64,
    /// The simulated peak load at the p99 target (see [`peak_load`]), requests/s.
    pub simulated_peak_rps: f64,
    /// At [`CHECK_FRACTION`] of the simulated peak (absent when the peak is 0).
    pub check: Option<Check>,
    /// Why there is no plan or no simulation (then the numbers are 0).
    pub error: Option<String>,
}

/// Camelot's max-load policy against the best baseline on one GPU count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gain {
    /// The GPU count compared.
    pub gpus: u32,
    /// Simulated peak of Camelot's max-load plan, requests/s.
    pub camelot_rps: f64,
    /// The baseline with the highest simulated peak.
    pub best_baseline: String,
    /// That baseline's simulated peak, requests/s.
    pub best_baseline_rps: f64,
    /// `camelot / best − 1`, percent (absent when the best baseline's peak is 0).
    pub gain_pct: Option<f64>,
}

/// One policy's min-resources plan at the low load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LowLoadRow {
    /// The planner policy's name.
    pub policy: String,
    /// Whether the policy is a comparison baseline rather than one of Camelot's.
    pub baseline: bool,
    /// Stage instances in the plan.
    pub instances: usize,
    /// GPUs the plan occupies: its total SM share, possibly fractional.
    pub gpus_used: f64,
    /// The simulated run at the low load (absent when there is no plan or the run failed).
    pub check: Option<Check>,
    /// Why there is no plan or no simulation (then the numbers are 0).
    pub error: Option<String>,
}

/// Resources at low load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LowLoad {
    /// The low load, requests/s: `low_load_frac` of the best baseline's simulated peak on the
    /// smallest GPU count.
    pub load_rps: f64,
    /// How the load was chosen.
    pub basis: String,
    /// GPUs the min-resources plans could use.
    pub gpus_available: u32,
    /// One row per policy.
    pub rows: Vec<LowLoadRow>,
    /// The baseline with the fewest GPUs among those meeting the target in simulation.
    pub best_baseline: Option<String>,
    /// `1 − camelot / best`, percent, when both met the target.
    pub saving_pct: Option<f64>,
}

/// Everything measured for one app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppResult {
    /// The app's name.
    pub app: String,
    /// Where its profiles came from.
    pub source: String,
    /// Its end-to-end p99 target, ms.
    pub slo_ms: f64,
    /// Stages in its pipeline.
    pub stages: usize,
    /// One row per GPU count and policy, GPU counts outermost.
    pub max_load: Vec<MaxLoadRow>,
    /// Camelot against the best baseline, one per GPU count.
    pub gains: Vec<Gain>,
    /// Absent when no baseline had a positive peak to derive the load from.
    pub low_load: Option<LowLoad>,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The configuration evaluated.
    pub config: EvalConfig,
    /// One result per app, in the order the apps were given to [`run`].
    pub apps: Vec<AppResult>,
    /// Mean |error| of every prediction check, percent.
    pub mean_abs_prediction_error_pct: Option<f64>,
}

/// Runs the evaluation; `progress` receives one line per finished step.
pub fn run(
    cfg: &EvalConfig,
    apps: &[App],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Evaluation, EvalError> {
    if cfg.gpu_counts.is_empty() || cfg.gpu_counts.contains(&0) {
        return Err(EvalError::Config {
            field: "gpu_counts",
            rule: "a non-empty list of counts >= 1",
        });
    }
    if !(cfg.low_load_frac.is_finite() && cfg.low_load_frac > 0.0 && cfg.low_load_frac <= 1.0) {
        return Err(EvalError::Config {
            field: "low_load_frac",
            rule: "in (0, 1]",
        });
    }
    if !(10..=2_000_000).contains(&cfg.check_requests) {
        return Err(EvalError::Config {
            field: "check_requests",
            rule: "in 10..=2000000",
        });
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<AppResult>>> = Mutex::new(vec![None; apps.len()]);
    std::thread::scope(|scope| {
        for _ in 0..cfg.threads.clamp(1, apps.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(app) = apps.get(i) else { break };
                let r = evaluate_app(cfg, app, progress);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    let apps: Vec<AppResult> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let errors: Vec<f64> = apps
        .iter()
        .flat_map(|a| {
            let max = a.max_load.iter().filter_map(|r| r.check.as_ref());
            let low = a
                .low_load
                .iter()
                .flat_map(|l| l.rows.iter().filter_map(|r| r.check.as_ref()));
            max.chain(low)
                .map(|c| c.error_pct.abs())
                .filter(|e| e.is_finite())
        })
        .collect();
    Ok(Evaluation {
        config: cfg.clone(),
        apps,
        mean_abs_prediction_error_pct: sluice_core::stats::mean(&errors),
    })
}

fn evaluate_app(cfg: &EvalConfig, app: &App, progress: &(dyn Fn(&str) + Sync)) -> AppResult {
    let spec = &app.spec;
    let mut max_load = Vec::new();
    for &gpus in &cfg.gpu_counts {
        let model = app.model(gpus);
        for policy in Policy::ALL {
            let row = max_load_row(cfg, spec, &model, policy, gpus);
            progress(&format!(
                "{}: {gpus} GPU(s) {policy}: simulated peak {} rps{}",
                app.name,
                markdown::rps(row.simulated_peak_rps),
                row.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
            max_load.push(row);
        }
    }
    let gains = cfg
        .gpu_counts
        .iter()
        .filter_map(|&g| gain(&max_load, g))
        .collect();
    let low_load = low_load(cfg, app, &max_load, progress);
    AppResult {
        app: app.name.clone(),
        source: app.source.clone(),
        slo_ms: spec.slo_ms,
        stages: spec.stages.len(),
        max_load,
        gains,
        low_load,
    }
}

fn max_load_row(
    cfg: &EvalConfig,
    spec: &PipelineSpec,
    model: &PerfModel,
    policy: Policy,
    gpus: u32,
) -> MaxLoadRow {
    let mut row = MaxLoadRow {
        gpus,
        policy: policy.to_string(),
        baseline: policy.is_baseline(),
        instances: 0,
        gpus_used: 0.0,
        predicted_capacity_rps: 0.0,
        simulated_peak_rps: 0.0,
        check: None,
        error: None,
    };
    let p = match plan(spec, model, policy, Goal::MaxLoad) {
        Ok(p) => p,
        Err(e) => {
            row.error = Some(format!("no plan: {e}"));
            return row;
        }
    };
    row.instances = p.instances.len();
    row.gpus_used = p.gpus_used();
    row.predicted_capacity_rps = p.predicted.capacity_rps;
    let peak = peak_load(spec, &p, model, &model.cluster, spec.slo_ms, &cfg.peak);
    match peak {
        Ok(peak) => {
            row.simulated_peak_rps = peak;
            if peak > 0.0 {
                match check(cfg, spec, model, &p, peak * CHECK_FRACTION) {
                    Ok(c) => row.check = Some(c),
                    Err(e) => row.error = Some(format!("check run: {e}")),
                }
            }
        }
        Err(e) => row.error = Some(format!("simulation: {e}")),
    }
    row
}

/// Simulates `plan` at `load_rps` and compares with the planner's prediction at that load.
fn check(
    cfg: &EvalConfig,
    spec: &PipelineSpec,
    model: &PerfModel,
    plan: &Plan,
    load_rps: f64,
) -> Result<Check, SimError> {
    let duration_s = cfg.check_requests as f64 / load_rps;
    let run_cfg = RunConfig {
        warmup_s: duration_s * cfg.peak.warmup_frac,
        seed: cfg.peak.seed,
        noise_cv: cfg.peak.noise_cv,
        queue_limit: cfg.peak.queue_limit,
        ..RunConfig::new(load_rps, duration_s)
    };
    let run = simulate(spec, plan, model, &model.cluster, &run_cfg)?;
    let predicted = model.predict(spec, plan, load_rps).p99_ms;
    let simulated = run.e2e_ms.p99;
    Ok(Check {
        load_rps,
        predicted_p99_ms: predicted,
        simulated_p99_ms: simulated,
        meets_slo: meets(&run, spec.slo_ms),
        error_pct: (predicted - simulated) / simulated * 100.0,
    })
}

/// The best baseline by simulated peak on `gpus`, and Camelot's max-load policy against it.
fn gain(rows: &[MaxLoadRow], gpus: u32) -> Option<Gain> {
    let on = || rows.iter().filter(move |r| r.gpus == gpus);
    let camelot = on().find(|r| r.policy == Policy::MaxLoad.to_string())?;
    let best = on()
        .filter(|r| r.baseline)
        .max_by(|a, b| a.simulated_peak_rps.total_cmp(&b.simulated_peak_rps))?;
    Some(Gain {
        gpus,
        camelot_rps: camelot.simulated_peak_rps,
        best_baseline: best.policy.clone(),
        best_baseline_rps: best.simulated_peak_rps,
        gain_pct: (best.simulated_peak_rps > 0.0)
            .then(|| (camelot.simulated_peak_rps / best.simulated_peak_rps - 1.0) * 100.0),
    })
}

fn low_load(
    cfg: &EvalConfig,
    app: &App,
    max_load: &[MaxLoadRow],
    progress: &(dyn Fn(&str) + Sync),
) -> Option<LowLoad> {
    let smallest = *cfg.gpu_counts.iter().min()?;
    let largest = *cfg.gpu_counts.iter().max()?;
    let best = gain(max_load, smallest)?;
    if best.best_baseline_rps <= 0.0 {
        return None;
    }
    let load_rps = cfg.low_load_frac * best.best_baseline_rps;
    let model = app.model(largest);
    let rows: Vec<LowLoadRow> = Policy::ALL
        .into_iter()
        .map(|policy| {
            let row = low_load_row(cfg, &app.spec, &model, policy, load_rps);
            progress(&format!(
                "{}: low load {} rps {policy}: {:.2} GPUs{}",
                app.name,
                markdown::rps(load_rps),
                row.gpus_used,
                row.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
            row
        })
        .collect();
    let counted = |r: &&LowLoadRow| r.check.as_ref().is_some_and(|c| c.meets_slo);
    let best_baseline = rows
        .iter()
        .filter(|r| r.baseline)
        .filter(counted)
        .min_by(|a, b| a.gpus_used.total_cmp(&b.gpus_used));
    let camelot = rows
        .iter()
        .filter(counted)
        .find(|r| r.policy == Policy::MinResources.to_string());
    let saving_pct = match (camelot, best_baseline) {
        (Some(c), Some(b)) if b.gpus_used > 0.0 => Some((1.0 - c.gpus_used / b.gpus_used) * 100.0),
        _ => None,
    };
    Some(LowLoad {
        load_rps,
        basis: format!(
            "{:.0}% of the best baseline's ({}) simulated peak on {smallest} GPU(s), {} rps",
            cfg.low_load_frac * 100.0,
            best.best_baseline,
            markdown::rps(best.best_baseline_rps)
        ),
        gpus_available: largest,
        best_baseline: best_baseline.map(|b| b.policy.clone()),
        saving_pct,
        rows,
    })
}

fn low_load_row(
    cfg: &EvalConfig,
    spec: &PipelineSpec,
    model: &PerfModel,
    policy: Policy,
    load_rps: f64,
) -> LowLoadRow {
    let mut row = LowLoadRow {
        policy: policy.to_string(),
        baseline: policy.is_baseline(),
        instances: 0,
        gpus_used: 0.0,
        check: None,
        error: None,
    };
    match plan(spec, model, policy, Goal::MinResources { load_rps }) {
        Ok(p) => {
            row.instances = p.instances.len();
            row.gpus_used = p.gpus_used();
            match check(cfg, spec, model, &p, load_rps) {
                Ok(c) => row.check = Some(c),
                Err(e) => row.error = Some(format!("simulation: {e}")),
            }
        }
        Err(e) => row.error = Some(format!("no plan: {e}")),
    }
    row
}
