//! Pipelines of GPU microservices in the worker (Camelot): deploy a spec under a placement plan,
//! run requests through it, report per-stage figures, re-plan when load or latency drifts.
//!
//! - [`request`]: what a client sends to deploy (spec, profile, policy) and how it is planned;
//! - `deploy`: a plan's stage instances, co-location groups and measurements;
//! - `instance`: one stage instance: sandbox, batching queue, batch frames;
//! - `route`: one request through the DAG, with in-place hand-off between co-located stages;
//! - `payload`: inline bytes, shared-memory segments (deleted when the last holder drops them) and
//!   CUDA IPC device buffers (released to their producer then; never handed out once it died);
//! - `control`: the re-planning loop over `sluice_pipeline::controller`, fed by `meter`;
//! - `stats`: windows for the status view and the `sluice_pipeline_*` Prometheus families;
//! - [`error`]: typed errors, the stage named once in [`StageError`].
//!
//! Deployments are replaced whole: an update (or a re-plan) starts the new instances first, then
//! switches new requests to them and stops the old ones once their requests are done.

mod control;
mod deploy;
pub mod error;
mod instance;
mod meter;
mod payload;
pub mod profile;
pub mod request;
mod route;
mod stats;

pub use deploy::{DeploymentStatus, StageStatus};
pub use error::{
    DeployError, PayloadError, ProfileError, RequestError, RunError, StageError, StageErrorKind,
};
pub use request::{Autoscale, DeployRequest};
pub use route::{Finished, StageTiming};

use crate::engine::Engine;
pub(crate) use deploy::Deployment;
use serde::Serialize;
use stats::{PipelineLabel, PipelineMetrics};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why a pipeline call failed; each maps to one HTTP status (404, 409, 400, 502, 502, 504).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No pipeline of this name is deployed (404).
    #[error("unknown pipeline {0:?}")]
    Unknown(String),
    /// A create named a pipeline that is already deployed (409).
    #[error("pipeline {0:?} already exists (update it instead)")]
    Exists(String),
    /// The deploy request is invalid or cannot be planned (400).
    #[error("invalid pipeline request: {0}")]
    Invalid(#[from] RequestError),
    /// The plan's deployment did not start (502): too few GPUs, shared memory, sandbox users,
    /// a stage image, or a stage instance that failed; instances already started are stopped.
    #[error("cannot deploy pipeline: {0}")]
    Deploy(#[from] DeployError),
    /// One request through the pipeline failed (502).
    #[error("pipeline request failed: {0}")]
    Failed(#[from] RunError),
    /// One request took longer than its limit (the value carried: 20 × the pipeline's
    /// `slo_ms`, clamped to 30 s..600 s) (504).
    #[error("pipeline request timed out after {0:?}")]
    Timeout(Duration),
}

struct Live {
    request: DeployRequest,
    deployment: Arc<Deployment>,
    /// Every plan change so far, oldest first (at most [`HISTORY`]).
    history: Vec<PlanChange>,
    /// The load meter's last reading, requests/s, as `f64` bits (`u64::MAX`: none yet).
    measured_load: Arc<AtomicU64>,
}

/// How many plan changes a pipeline's status keeps.
const HISTORY: usize = 32;

/// One change of a pipeline's plan, as `sluice pipeline status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanChange {
    /// The deployment generation the change started.
    pub generation: u64,
    /// The planner policy of the new plan.
    pub policy: String,
    /// The load the plan was made for, requests/s (`None` for `max-load`, which plans for the most).
    pub planned_load_rps: Option<f64>,
    /// The load the plan is predicted to carry within the target, requests/s.
    pub capacity_rps: f64,
    /// Why the plan changed: created, updated, or what the load meter and the target showed.
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A pipeline's autoscaling setting as in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AutoscaleView {
    /// Whether the worker re-plans the pipeline from measured load.
    pub enabled: bool,
    /// The least load a re-plan is made for, requests/s.
    pub min_load_rps: f64,
}

/// What made a plan change, for its [`PlanChange`] record.
pub(crate) struct Change {
    reason: String,
    planned_load_rps: Option<f64>,
}

struct Inner {
    engine: Engine,
    metrics: Arc<PipelineMetrics>,
    live: RwLock<BTreeMap<String, Live>>,
    /// Serialises create/update/delete/re-plan (deployments take seconds to start).
    changes: tokio::sync::Mutex<()>,
    shm_root: PathBuf,
    generation: AtomicU64,
    next_request: AtomicU64,
}

/// The pipelines of one worker; cheap to clone.
#[derive(Clone)]
pub struct Pipelines {
    inner: Arc<Inner>,
}

/// A pipeline in the list/status views.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineView {
    /// The pipeline's name.
    pub name: String,
    /// The planner policy of the plan in force.
    pub policy: String,
    /// The spec's end-to-end p99 latency target, ms.
    pub slo_ms: f64,
    /// Stage names, in spec order.
    pub stages: Vec<String>,
    /// The deployment in force: counts, latencies, per-stage figures and its plan.
    pub status: DeploymentStatus,
    /// The autoscaling setting in force.
    pub autoscale: AutoscaleView,
    /// Requests finished per second over the load meter's window (`None` before its first
    /// reading, or without a profile: only profiled pipelines are metered).
    pub measured_load_rps: Option<f64>,
    /// Plan changes, oldest first.
    pub history: Vec<PlanChange>,
}

impl Pipelines {
    /// Pipelines whose stage instances use `engine`'s launcher and devices, with shared-memory
    /// groups under `shm_root`. Starts the re-planning loop.
    pub fn new(engine: Engine, shm_root: PathBuf) -> Pipelines {
        match sluice_handoff::shm::sweep(&shm_root) {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                removed = removed.len(),
                "removed shared-memory groups of dead workers"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot sweep {}: {e}", shm_root.display()),
        }
        let p = Pipelines {
            inner: Arc::new(Inner {
                engine,
                metrics: Arc::new(PipelineMetrics::new()),
                live: RwLock::new(BTreeMap::new()),
                changes: tokio::sync::Mutex::new(()),
                shm_root,
                generation: AtomicU64::new(1),
                next_request: AtomicU64::new(1),
            }),
        };
        tokio::spawn(control::run(Arc::downgrade(&p.inner)));
        p
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Live>> {
        self.inner.live.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Deploys a new pipeline (`update = false`) or replaces one (`update = true`). A refusal
    /// (an invalid request, a stage that does not start) is logged with its reason.
    pub async fn deploy(
        &self,
        req: DeployRequest,
        update: bool,
    ) -> Result<PipelineView, PipelineError> {
        let name = req.spec.name.clone();
        let deployed = self.deploy_inner(req, update).await;
        if let Err(e) = &deployed {
            let verb = if update { "update" } else { "deploy" };
            let why = crate::sandbox::one_line(&e.to_string());
            let hint = (crate::sandbox::python_hint(&why))
                .map(|h| format!("; hint: {h}"))
                .unwrap_or_default();
            tracing::warn!(pipeline = %name, "pipeline {verb} refused: {why}{hint}");
        }
        deployed
    }

    async fn deploy_inner(
        &self,
        req: DeployRequest,
        update: bool,
    ) -> Result<PipelineView, PipelineError> {
        let _guard = self.inner.changes.lock().await;
        let name = req.spec.name.clone();
        let exists = self.read().contains_key(&name);
        match (exists, update) {
            (true, false) => return Err(PipelineError::Exists(name)),
            (false, true) => return Err(PipelineError::Unknown(name)),
            _ => {}
        }
        let host = self.inner.engine.stage_host();
        // Planning is CPU work (up to about a second for a large app): keep it off the async threads.
        let planned = req.clone();
        let gpus = host.gpus.max(1);
        let plan = tokio::task::spawn_blocking(move || planned.plan(gpus))
            .await
            .map_err(|e| RequestError::Planning(e.to_string()))??;
        let planned_load_rps = (plan.policy != "max-load").then(|| req.load());
        let reason = if update { "updated" } else { "created" };
        let change = Change {
            reason: reason.into(),
            planned_load_rps,
        };
        self.inner.install(req, plan, change).await?;
        self.view(&name).ok_or(PipelineError::Unknown(name))
    }

    /// Stops and forgets a pipeline.
    pub async fn delete(&self, name: &str) -> Result<(), PipelineError> {
        let _guard = self.inner.changes.lock().await;
        let removed = self
            .inner
            .live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(live) => {
                live.deployment.stop().await;
                let groups: Vec<_> = live
                    .deployment
                    .groups
                    .values()
                    .map(Arc::downgrade)
                    .collect();
                drop(live);
                released(name, &groups).await;
                if let Some(images) = self.inner.engine.stage_host().images {
                    let holder = deploy::image_holder(name);
                    let r = tokio::task::spawn_blocking(move || images.release_holder(&holder));
                    if let Ok(Err(e)) = r.await {
                        tracing::warn!(pipeline = name, "cannot release its images: {e}");
                    }
                }
                Ok(())
            }
            None => Err(PipelineError::Unknown(name.to_string())),
        }
    }

    /// The deploy requests of every pipeline (what the store keeps).
    pub fn requests(&self) -> Vec<DeployRequest> {
        self.read().values().map(|l| l.request.clone()).collect()
    }

    /// Every pipeline, by name.
    pub fn list(&self) -> Vec<PipelineView> {
        let names: Vec<String> = self.read().keys().cloned().collect();
        names.iter().filter_map(|n| self.view(n)).collect()
    }

    /// One pipeline's status.
    pub fn view(&self, name: &str) -> Option<PipelineView> {
        let live = self.read();
        let l = live.get(name)?;
        let d = &l.deployment;
        let bits = l.measured_load.load(Ordering::Relaxed);
        Some(PipelineView {
            name: name.to_string(),
            policy: d.plan.policy.clone(),
            slo_ms: d.spec.slo_ms,
            stages: d.spec.stages.iter().map(|s| s.name.clone()).collect(),
            status: d.status(),
            autoscale: AutoscaleView {
                enabled: l.request.autoscale.enabled && l.request.profile_csv.is_some(),
                min_load_rps: l.request.load_floor(),
            },
            measured_load_rps: (bits != u64::MAX).then(|| f64::from_bits(bits)),
            history: l.history.clone(),
        })
    }

    /// Runs one request through pipeline `name`.
    pub async fn invoke(&self, name: &str, input: bytes::Bytes) -> Result<Finished, PipelineError> {
        let dep = self
            .read()
            .get(name)
            .map(|l| l.deployment.clone())
            .ok_or_else(|| PipelineError::Unknown(name.to_string()))?;
        let limit = request_timeout(dep.spec.slo_ms);
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let metrics = self.inner.metrics.clone();
        let run = route::run(dep.clone(), metrics.clone(), id, input);
        let result = match tokio::time::timeout(limit, run).await {
            Ok(r) => r,
            Err(_) => {
                dep.failed.fetch_add(1, Ordering::Relaxed);
                return Err(PipelineError::Timeout(limit));
            }
        };
        route::account(&dep, &result);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        let label = PipelineLabel {
            pipeline: name.to_string(),
            outcome: outcome.into(),
        };
        metrics.requests.get_or_create(&label).inc();
        if let Ok(f) = &result {
            metrics
                .e2e_seconds
                .get_or_create(&label)
                .observe(f.total_ms / 1e3);
        }
        Ok(result?)
    }

    /// The `sluice_pipeline_*` metrics (OpenMetrics text with its `# EOF`).
    pub fn metrics_text(&self) -> String {
        for l in self.read().values() {
            for (g, arena) in &l.deployment.groups {
                let label = stats::StageLabel {
                    pipeline: l.deployment.spec.name.clone(),
                    stage: format!("gpu{g}"),
                };
                self.inner
                    .metrics
                    .shm_bytes
                    .get_or_create(&label)
                    .set(arena.usage().bytes as i64);
            }
        }
        self.inner.metrics.encode()
    }

    /// Stops every deployment (worker shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Deployment>> =
            std::mem::take(&mut *self.inner.live.write().unwrap_or_else(|e| e.into_inner()))
                .into_values()
                .map(|l| l.deployment)
                .collect();
        for d in all {
            d.stop().await;
        }
    }
}

impl Inner {
    /// Starts a deployment of `plan` and swaps it in, recording `change` in the pipeline's
    /// history; the old one (if any) stops after its in-flight requests drain (bounded by the
    /// request timeout).
    async fn install(
        &self,
        req: DeployRequest,
        plan: sluice_pipeline::Plan,
        change: Change,
    ) -> Result<(), PipelineError> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let dep = Deployment::start(
            req.spec.clone(),
            plan,
            req.base_dir.clone(),
            &self.engine,
            &self.shm_root,
            generation,
            self.metrics.clone(),
        )
        .await?;
        let name = req.spec.name.clone();
        let slo = req.spec.slo_ms;
        let record = PlanChange {
            generation,
            policy: dep.plan.policy.clone(),
            planned_load_rps: change.planned_load_rps,
            capacity_rps: dep.plan.predicted.capacity_rps,
            reason: change.reason,
            at_ms: unix_ms(),
        };
        tracing::info!(
            pipeline = %name, generation, policy = %record.policy, reason = %record.reason,
            "pipeline plan in force"
        );
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let (mut history, measured_load) = match live.get(&name) {
            Some(l) => (l.history.clone(), l.measured_load.clone()),
            None => (Vec::new(), Arc::new(AtomicU64::new(u64::MAX))),
        };
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push(record);
        let old = live.insert(
            name,
            Live {
                request: req,
                deployment: Arc::new(dep),
                history,
                measured_load,
            },
        );
        drop(live);
        if let Some(old) = old {
            let grace = request_timeout(slo);
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + grace;
                while Arc::strong_count(&old.deployment) > 1 && tokio::time::Instant::now() < until
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                old.deployment.stop().await;
            });
        }
        Ok(())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long one request may take: generous next to the target, never below 30 s.
fn request_timeout(slo_ms: f64) -> Duration {
    Duration::from_secs_f64((slo_ms * 20.0 / 1e3).clamp(30.0, 600.0))
}

/// How long `DELETE` waits for a deleted pipeline's in-flight work to let go of its shared memory.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Waits (at most [`RELEASE_WAIT`]) until nothing holds the shared-memory groups of a deleted
/// pipeline any more, so that their directories are gone when `DELETE` answers: its stage tasks
/// and in-flight requests drop their handles just after the stages stop. Whatever still holds one
/// after that removes the directory when it lets go (logged).
async fn released(name: &str, groups: &[std::sync::Weak<sluice_handoff::shm::ShmArena>]) {
    let start = tokio::time::Instant::now();
    while groups.iter().any(|g| g.strong_count() > 0) {
        if start.elapsed() >= RELEASE_WAIT {
            tracing::warn!(
                pipeline = name,
                "shared memory still held {RELEASE_WAIT:?} after delete; it goes when released"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
