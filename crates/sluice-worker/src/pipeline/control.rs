//! Planning with a profile, and the re-planning loop: once a second, every profiled pipeline's
//! measured load (requests finished per second) and recent p99 go to its
//! [`sluice_pipeline::Controller`]; when the controller asks for a re-plan (sustained high load or
//! a missed target → `max-load`; sustained low load → `min-resources` at the load plus headroom),
//! the new plan is deployed if it differs from the one in force. The controller's hysteresis
//! (window, cooldown) is what keeps this from flapping.

use super::{DeployRequest, Inner};
use sluice_pipeline::{
    plan, Cluster, Contention, Controller, Decision, Goal, GpuModel, PerfModel, Plan, Policy,
    Profiles,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Plans `req` with its profile on `gpus` GPUs: with `target` a policy and load chosen by the
/// controller, else the request's policy (default `min-resources` at its load, `max-load` when
/// it gives none).
pub(super) fn plan_with_profile(
    req: &DeployRequest,
    csv: &str,
    gpus: u32,
    target: Option<(Policy, f64)>,
) -> Result<Plan, String> {
    let profiles = Profiles::from_csv(csv).map_err(|e| format!("profile: {e}"))?;
    let model = PerfModel {
        profiles,
        contention: Contention::none(),
        cluster: Cluster::new(GpuModel::rtx_2080_ti(), gpus),
    };
    let (policy, load) = match target {
        Some(t) => t,
        None => {
            let load = req.load();
            let default = if load > 0.0 {
                Policy::MinResources
            } else {
                Policy::MaxLoad
            };
            let policy = match &req.policy {
                Some(p) => p.parse::<Policy>().map_err(|e| e.to_string())?,
                None => default,
            };
            (policy, load)
        }
    };
    // An idle pipeline still gets the smallest plan that serves a trickle.
    let goal = match (policy, target.is_some()) {
        (Policy::MaxLoad, _) => Goal::MaxLoad,
        (_, true) => Goal::MinResources {
            load_rps: load.max(MIN_PLANNED_LOAD),
        },
        (_, false) if load > 0.0 => Goal::MinResources { load_rps: load },
        (_, false) => Goal::MaxLoad,
    };
    plan(&req.spec, &model, policy, goal).map_err(|e| e.to_string())
}

/// Least load a re-plan for `min-resources` is made for, requests/s.
const MIN_PLANNED_LOAD: f64 = 0.05;

struct Tracked {
    generation: u64,
    controller: Controller,
    finished: u64,
    at: Instant,
}

/// The loop; ends when the pipelines are dropped.
pub(super) async fn run(inner: Weak<Inner>) {
    let started = Instant::now();
    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = started.elapsed().as_secs_f64();
        let live: Vec<(String, DeployRequest, std::sync::Arc<super::Deployment>)> = inner
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, l)| l.request.profile_csv.is_some())
            .map(|(n, l)| (n.clone(), l.request.clone(), l.deployment.clone()))
            .collect();
        tracked.retain(|n, _| live.iter().any(|(m, _, _)| m == n));
        for (name, req, dep) in live {
            let finished =
                dep.completed.load(Ordering::Relaxed) + dep.failed.load(Ordering::Relaxed);
            let t = match tracked.get_mut(&name) {
                Some(t) if t.generation == dep.generation => t,
                _ => {
                    let Ok(policy) = dep.plan.policy.parse::<Policy>() else {
                        continue;
                    };
                    let cfg = req.controller.clone().unwrap_or_default();
                    let Ok(controller) = Controller::new(
                        cfg,
                        dep.spec.slo_ms,
                        policy,
                        dep.plan.predicted.capacity_rps,
                        now,
                    ) else {
                        continue;
                    };
                    tracked.insert(
                        name.clone(),
                        Tracked {
                            generation: dep.generation,
                            controller,
                            finished,
                            at: Instant::now(),
                        },
                    );
                    continue;
                }
            };
            let dt = t.at.elapsed().as_secs_f64().max(1e-3);
            let load = (finished - t.finished) as f64 / dt;
            t.finished = finished;
            t.at = Instant::now();
            let recent = ((load * 10.0).ceil() as usize).clamp(1, 4096);
            let p99 = dep.e2e.recent(recent).p99_ms;
            let Decision::Replan { policy, load_rps } = t.controller.observe(now, load, p99) else {
                continue;
            };
            let host = inner.engine.stage_host();
            let csv = req.profile_csv.clone().unwrap_or_default();
            let gpus = req.gpus.unwrap_or(host.gpus.max(1)).min(host.gpus.max(1));
            let planned = req.clone();
            let replanned = tokio::task::spawn_blocking(move || {
                plan_with_profile(&planned, &csv, gpus, Some((policy, load_rps)))
            })
            .await
            .unwrap_or_else(|e| Err(format!("planning failed: {e}")));
            match replanned {
                Ok(p) if p.instances == dep.plan.instances => {
                    t.controller.adopt(policy, p.predicted.capacity_rps, now);
                }
                Ok(p) => {
                    tracing::info!(
                        pipeline = %name, %policy, load_rps, measured_load = load, p99_ms = p99,
                        "re-planning"
                    );
                    let _guard = inner.changes.lock().await;
                    if let Err(e) = inner.install(req.clone(), p).await {
                        tracing::warn!(pipeline = %name, "re-plan not deployed: {e}");
                    }
                }
                Err(e) => tracing::warn!(pipeline = %name, "re-plan failed: {e}"),
            }
        }
    }
}
