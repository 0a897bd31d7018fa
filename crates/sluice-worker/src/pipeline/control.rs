//! Planning with a profile, and the re-planning loop: once a second, every profiled pipeline's
//! measured load (requests finished per second over the load meter's window) and recent p99 go to
//! its [`sluice_pipeline::Controller`]; when the controller asks for a re-plan (sustained high load
//! or a missed target → `max-load`; sustained low load → `min-resources` at the load plus
//! headroom, never below the pipeline's autoscale floor) and the pipeline's autoscaling is on, the
//! new plan is deployed if it differs from the one in force, and the change is recorded with its
//! reason. The controller's hysteresis (window, cooldown) is what keeps this from flapping.

use super::error::RequestError;
use super::meter::RateMeter;
use super::{Change, DeployRequest, Inner};
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
) -> Result<Plan, RequestError> {
    let profiles = Profiles::from_csv(csv).map_err(|e| RequestError::Profile(e.to_string()))?;
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
                Some(p) => p.parse::<Policy>()?,
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
    Ok(plan(&req.spec, &model, policy, goal)?)
}

/// Least load a re-plan for `min-resources` is made for, requests/s.
const MIN_PLANNED_LOAD: f64 = 0.05;

/// How long the load meter averages over, seconds.
const METER_WINDOW_S: f64 = 10.0;

struct Tracked {
    generation: u64,
    controller: Controller,
    meter: RateMeter,
}

/// The loop; ends when the pipelines are dropped.
pub(super) async fn run(inner: Weak<Inner>) {
    let started = Instant::now();
    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // After a slow re-plan, wait a full period rather than catching up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let live: Vec<Metered> = inner
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, l)| l.request.profile_csv.is_some())
            .map(|(n, l)| Metered {
                name: n.clone(),
                req: l.request.clone(),
                dep: l.deployment.clone(),
                reading: l.measured_load.clone(),
            })
            .collect();
        tracked.retain(|n, _| live.iter().any(|m| &m.name == n));
        for m in live {
            step(&inner, &mut tracked, m, started.elapsed().as_secs_f64()).await;
        }
    }
}

/// A metered pipeline, read out of the live map for one tick.
struct Metered {
    name: String,
    req: DeployRequest,
    dep: std::sync::Arc<super::Deployment>,
    reading: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// One tick for one pipeline: read the meter, publish the reading, and re-plan when the
/// controller asks and autoscaling is on.
async fn step(inner: &Inner, tracked: &mut BTreeMap<String, Tracked>, m: Metered, now: f64) {
    let Metered {
        name,
        req,
        dep,
        reading,
    } = m;
    let finished = dep.completed.load(Ordering::Relaxed) + dep.failed.load(Ordering::Relaxed);
    let t = match tracked.get_mut(&name) {
        Some(t) if t.generation == dep.generation => t,
        _ => {
            let Ok(policy) = dep.plan.policy.parse::<Policy>() else {
                return;
            };
            let cfg = req.controller.clone().unwrap_or_default();
            let capacity = dep.plan.predicted.capacity_rps;
            let Ok(controller) = Controller::new(cfg, dep.spec.slo_ms, policy, capacity, now)
            else {
                return;
            };
            let mut meter = RateMeter::new(METER_WINDOW_S);
            meter.observe(now, finished);
            let fresh = Tracked {
                generation: dep.generation,
                controller,
                meter,
            };
            tracked.insert(name, fresh);
            return;
        }
    };
    let Some(load) = t.meter.observe(now, finished) else {
        return;
    };
    reading.store(load.to_bits(), Ordering::Relaxed);
    let recent = ((load * 10.0).ceil() as usize).clamp(1, 4096);
    let p99 = dep.e2e.recent(recent).p99_ms;
    let decision = t.controller.observe(now, load, p99);
    let Decision::Replan { policy, load_rps } = decision else {
        return;
    };
    if !req.autoscale.enabled {
        return;
    }
    let floor = req.load_floor().max(MIN_PLANNED_LOAD);
    let load_rps = load_rps.max(floor);
    let host = inner.engine.stage_host();
    let csv = req.profile_csv.clone().unwrap_or_default();
    let gpus = req.gpus.unwrap_or(host.gpus.max(1)).min(host.gpus.max(1));
    let planned = req.clone();
    let replanned = tokio::task::spawn_blocking(move || {
        plan_with_profile(&planned, &csv, gpus, Some((policy, load_rps)))
    })
    .await
    .unwrap_or_else(|e| Err(RequestError::Planning(e.to_string())));
    match replanned {
        Ok(p) if p.instances == dep.plan.instances => {
            t.controller.adopt(policy, p.predicted.capacity_rps, now);
        }
        Ok(p) => {
            let capacity = dep.plan.predicted.capacity_rps;
            let reason = match policy {
                Policy::MaxLoad if p99 > dep.spec.slo_ms => format!(
                    "target missed: p99 {p99:.0} ms above {:.0} ms",
                    dep.spec.slo_ms
                ),
                Policy::MaxLoad => {
                    format!("high load: {load:.2} req/s of a planned {capacity:.2} req/s")
                }
                _ => format!(
                    "low load: {load:.2} req/s of a planned {capacity:.2} req/s; \
                     planning for {load_rps:.2} req/s (floor {floor:.2})"
                ),
            };
            tracing::warn!(pipeline = %name, %policy, measured_load = load, p99_ms = p99, "re-planning: {reason}");
            let change = Change {
                reason,
                planned_load_rps: (policy != Policy::MaxLoad).then_some(load_rps),
            };
            let _guard = inner.changes.lock().await;
            if let Err(e) = inner.install(req, p, change).await {
                tracing::warn!(pipeline = %name, "re-plan not deployed: {e}");
            }
        }
        Err(e) => tracing::warn!(pipeline = %name, "re-plan failed: {e}"),
    }
}
