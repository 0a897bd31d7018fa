//! The performance model of a placed pipeline: service time of a batch on an instance (profile ×
//! contention), per-GPU bandwidth demand, and an analytic end-to-end p99 and capacity of a plan.
//! This module owns those formulas; planners and the simulator call them.
//!
//! Analytic p99 (`docs/pipelines.md`, "Performance model"): every request visits every stage once
//! (fan-out broadcasts, fan-in joins). A stage's load is split over its instances in proportion
//! to their throughput `b / T(b)` (what a least-loaded dispatcher approximates). Per instance, at
//! item rate `λ`, batch `b`, timeout `w`:
//! - batching: if `λ·w ≥ b−1` the batch fills and the first item waits `(b−1)/λ`; otherwise the
//!   timeout fires with `⌈1+λ·w⌉` items after `w`. If that smaller batch cannot keep up, the
//!   queue grows it to the smallest batch that can;
//! - queueing: a Kingman/exponential tail for the batch queue, `p99 wait = T·(ca²+cs²)/(2(1−ρ))·
//!   ln(100ρ)` with `ca² = 1/b` (a batch of Poisson items), `cs² = 0.1` (exact for M/M/1 when both
//!   are 1); under time-sharing the instances of a GPU share one server (`ρ` summed, `ca² = 1`);
//! - service `T` at that batch from the profile at the instance's share, times its contention
//!   slowdown (co-runners busy);
//! - item p99 at the instance = batching + queueing + service; a stage's p99 is its worst
//!   instance's; a hand-off edge costs `LinkModel::cost_ms(output_kb, in_place)`, in place when
//!   both stages accept `shm` or `cuda-ipc` and ≥ 99% of the producer's flow can go to consumer
//!   instances on the same GPU; the end-to-end p99 is the worst source→sink path of stage p99s
//!   plus hand-offs (a sum of percentiles: an upper bound).

use std::path::Path;

use crate::cluster::{Cluster, GpuModel};
use crate::contention::Contention;
use crate::plan::{Plan, Prediction, ServiceModel, FULL_SHARE};
use crate::profile::{Estimate, ProfileError, Profiles, Util};
use crate::spec::{Handoff, PipelineSpec};

/// Squared coefficient of variation assumed for batch service times (contention, input jitter).
pub const SERVICE_CV2: f64 = 0.1;
/// Share of a producer's flow that must reach same-GPU consumers for an edge to count as in place.
pub const IN_PLACE_FRACTION: f64 = 0.99;
/// Highest DRAM demand a GPU may carry, as a fraction of its bandwidth.
pub const BANDWIDTH_CAP: f64 = 1.0;

/// Profiles + contention + hardware: everything needed to predict a plan.
#[derive(Clone, Debug)]
pub struct PerfModel {
    pub profiles: Profiles,
    pub contention: Contention,
    pub cluster: Cluster,
}

/// What one instance of a stage looks like to the model, before it is placed.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Member {
    pub stage: usize,
    pub batch: u32,
    pub share: u32,
}

/// The tail of one instance at one arrival rate.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Tail {
    /// Batch actually formed.
    pub batch: u32,
    /// Longest wait for the batch to form, ms.
    pub fill_ms: f64,
    /// Service time of that batch, ms.
    pub service_ms: f64,
    /// Busy fraction.
    pub rho: f64,
}

impl Tail {
    /// Batching + queueing (own server) + service: the item p99, ms.
    pub fn p99_ms(&self) -> f64 {
        self.fill_ms
            + queue_p99_ms(self.rho, self.service_ms, 1.0 / self.batch as f64)
            + self.service_ms
    }
}

/// The tail of an instance with service times `svc(batch)` (ms) at `lambda` items per ms.
pub fn tail(svc: impl Fn(u32) -> f64, batch: u32, max_wait_ms: f64, lambda: f64) -> Tail {
    if lambda <= 0.0 {
        return Tail {
            batch: 1,
            fill_ms: 0.0,
            service_ms: svc(1),
            rho: 0.0,
        };
    }
    let fills = lambda * max_wait_ms >= (batch - 1) as f64;
    let (mut b, fill_ms) = if fills {
        (batch, (batch - 1) as f64 / lambda)
    } else {
        let b = (1.0 + lambda * max_wait_ms).ceil() as u32;
        (b.clamp(1, batch), max_wait_ms)
    };
    let mut service_ms = svc(b);
    while b < batch && lambda * service_ms / b as f64 >= 1.0 {
        b += 1;
        service_ms = svc(b);
    }
    Tail {
        batch: b,
        fill_ms,
        service_ms,
        rho: lambda * service_ms / b as f64,
    }
}

/// p99 of the wait in a queue with busy fraction `rho`, mean service `t` ms and arrival SCV `ca2`.
pub fn queue_p99_ms(rho: f64, t: f64, ca2: f64) -> f64 {
    if rho >= 1.0 {
        return f64::INFINITY;
    }
    if rho <= 0.01 {
        return 0.0;
    }
    (t * (ca2 + SERVICE_CV2) / (2.0 * (1.0 - rho)) * (100.0 * rho).ln()).max(0.0)
}

impl PerfModel {
    /// The Gpu-let data set: profiles and contention from `dir`, `gpus` RTX 2080 Ti.
    pub fn gpulet(dir: &Path, gpus: u32) -> Result<PerfModel, ProfileError> {
        Ok(PerfModel {
            profiles: Profiles::load_gpulet(dir)?,
            contention: Contention::load_gpulet(dir)?,
            cluster: Cluster::new(GpuModel::rtx_2080_ti(), gpus),
        })
    }

    /// Solo (uncontended) estimate for stage `stage` of `spec`.
    pub fn solo(
        &self,
        spec: &PipelineSpec,
        stage: usize,
        batch: u32,
        share: u32,
    ) -> Option<Estimate> {
        self.profiles
            .estimate(spec.stages.get(stage)?.model(), batch, share)
    }

    /// Memory of one instance of `stage`: the spec's figure, else the profile's.
    pub fn memory_mb(&self, spec: &PipelineSpec, stage: usize) -> u64 {
        let s = &spec.stages[stage];
        if s.memory_mb > 0 {
            s.memory_mb
        } else {
            self.profiles.memory_mb(s.model()).unwrap_or(0)
        }
    }

    /// Utilisation and contention slowdown of each member of a set co-located on one GPU (all
    /// running at once; a missing profile counts as idle and unslowed).
    pub fn colocated(&self, spec: &PipelineSpec, members: &[Member]) -> Vec<(Util, f64)> {
        let utils: Vec<Util> = members
            .iter()
            .map(|m| {
                self.solo(spec, m.stage, m.batch, m.share)
                    .map_or(Util::default(), |e| e.util)
            })
            .collect();
        let mut others = Vec::with_capacity(utils.len());
        (0..utils.len())
            .map(|i| {
                others.clear();
                others.extend(
                    utils
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, u)| *u),
                );
                (utils[i], self.contention.slowdown(utils[i], &others))
            })
            .collect()
    }

    /// DRAM demand of a co-located set, as a fraction of the GPU's bandwidth: each member moves
    /// its bytes per batch over its contended batch time (`dram / slowdown`).
    pub fn dram_demand(&self, spec: &PipelineSpec, members: &[Member]) -> f64 {
        self.colocated(spec, members)
            .iter()
            .map(|(u, s)| u.dram / s)
            .sum()
    }

    /// Members of GPU `g` of a plan.
    pub fn members(plan: &Plan, g: u32) -> Vec<Member> {
        plan.on_gpu(g)
            .map(|x| Member {
                stage: x.stage,
                batch: x.batch,
                share: x.sm_share,
            })
            .collect()
    }

    /// The first GPU whose DRAM demand exceeds [`BANDWIDTH_CAP`], with that demand. Under
    /// time-sharing only one instance runs at a time, so the largest single demand counts.
    pub fn bandwidth_violation(&self, spec: &PipelineSpec, plan: &Plan) -> Option<(u32, f64)> {
        (0..plan.gpus.max(self.cluster.count)).find_map(|g| {
            let members = Self::members(plan, g);
            let demand = if plan.time_shared() {
                members
                    .iter()
                    .map(|m| self.dram_demand(spec, std::slice::from_ref(m)))
                    .fold(0.0, f64::max)
            } else {
                self.dram_demand(spec, &members)
            };
            (demand > BANDWIDTH_CAP + 1e-9).then_some((g, demand))
        })
    }

    /// Contention slowdown of instance `k` of `plan` (1 under time-sharing).
    pub fn slowdown(&self, spec: &PipelineSpec, plan: &Plan, k: usize) -> f64 {
        if plan.time_shared() {
            return 1.0;
        }
        let g = plan.instances[k].gpu;
        let idx: Vec<usize> = (0..plan.instances.len())
            .filter(|&j| plan.instances[j].gpu == g)
            .collect();
        let members: Vec<Member> = idx
            .iter()
            .map(|&j| {
                let x = &plan.instances[j];
                Member {
                    stage: x.stage,
                    batch: x.batch,
                    share: x.sm_share,
                }
            })
            .collect();
        let pos = idx.iter().position(|&j| j == k).unwrap_or(0);
        self.colocated(spec, &members)
            .get(pos)
            .map_or(1.0, |(_, s)| *s)
    }

    /// Precomputes what predicting `plan` needs (service tables, split weights, hand-off costs).
    pub fn evaluate(&self, spec: &PipelineSpec, plan: &Plan) -> Evaluation {
        let mut slowdowns = vec![1.0; plan.instances.len()];
        if !plan.time_shared() {
            for g in 0..plan.gpus.max(self.cluster.count) {
                let idx: Vec<usize> = (0..plan.instances.len())
                    .filter(|&j| plan.instances[j].gpu == g)
                    .collect();
                let members = Self::members(plan, g);
                for (&j, (_, s)) in idx.iter().zip(self.colocated(spec, &members)) {
                    slowdowns[j] = s;
                }
            }
        }
        let instances: Vec<EvalInstance> = plan
            .instances
            .iter()
            .zip(&slowdowns)
            .map(|(x, &slow)| {
                let share = if plan.time_shared() {
                    FULL_SHARE
                } else {
                    x.sm_share
                };
                let svc_ms: Vec<f64> = (1..=x.batch)
                    .map(|b| {
                        self.solo(spec, x.stage, b, share)
                            .map_or(f64::INFINITY, |e| e.latency_ms * slow)
                    })
                    .collect();
                EvalInstance {
                    stage: x.stage,
                    gpu: x.gpu,
                    batch: x.batch,
                    max_wait_ms: spec.stages.get(x.stage).map_or(0.0, |s| s.max_wait_ms),
                    throughput: x.batch as f64 / svc_ms[svc_ms.len() - 1],
                    svc_ms,
                    weight: 0.0,
                }
            })
            .collect();
        let mut ev = Evaluation {
            instances,
            stages: spec.stages.len(),
            order: spec.topo_order().unwrap_or_default(),
            preds: (0..spec.stages.len())
                .map(|i| spec.predecessors(i))
                .collect(),
            edge_ms: Vec::new(),
            gpus: plan.gpus.max(self.cluster.count),
            time_shared: plan.time_shared(),
            slo_ms: spec.slo_ms,
        };
        for s in 0..ev.stages {
            let total: f64 = ev.of(s).map(|x| x.throughput).sum();
            for x in ev.instances.iter_mut().filter(|x| x.stage == s) {
                x.weight = if total > 0.0 {
                    x.throughput / total
                } else {
                    0.0
                };
            }
        }
        ev.edge_ms = spec
            .edges()
            .into_iter()
            .map(|(p, c)| {
                let in_place =
                    in_place_kinds(spec, p, c) && ev.colocated_fraction(p, c) >= IN_PLACE_FRACTION;
                (
                    (p, c),
                    self.cluster
                        .link
                        .cost_ms(spec.stages[p].output_kb, in_place),
                )
            })
            .collect();
        ev
    }

    /// End-to-end p99 of `plan` at `load_rps`, ms (infinite when a stage cannot keep up).
    pub fn p99_ms(&self, spec: &PipelineSpec, plan: &Plan, load_rps: f64) -> f64 {
        self.evaluate(spec, plan).p99_ms(load_rps)
    }

    /// Highest load with predicted p99 within the spec's target, requests/s.
    pub fn capacity_rps(&self, spec: &PipelineSpec, plan: &Plan) -> f64 {
        self.evaluate(spec, plan).capacity_rps()
    }

    /// Analytic prediction of a plan at a load: p99 end to end (queueing + batching + hand-offs),
    /// capacity, and the SM share used.
    pub fn predict(&self, spec: &PipelineSpec, plan: &Plan, load_rps: f64) -> Prediction {
        let ev = self.evaluate(spec, plan);
        Prediction {
            capacity_rps: ev.capacity_rps(),
            load_rps,
            p99_ms: ev.p99_ms(load_rps),
            gpus_used: plan.gpus_used(),
        }
    }
}

/// Whether both ends of edge `p → c` accept an in-place hand-off (shm or CUDA IPC).
pub fn in_place_kinds(spec: &PipelineSpec, p: usize, c: usize) -> bool {
    [Handoff::Shm, Handoff::CudaIpc]
        .iter()
        .any(|&k| spec.stages[p].accepts(k) && spec.stages[c].accepts(k))
}

impl ServiceModel for PerfModel {
    /// Profile latency at the instance's batch and share (whole GPU under time-sharing) times its
    /// contention slowdown; infinite if the stage's model has no profile.
    fn batch_ms(&self, spec: &PipelineSpec, plan: &Plan, instance: usize, batch: u32) -> f64 {
        let Some(x) = plan.instances.get(instance) else {
            return f64::INFINITY;
        };
        let share = if plan.time_shared() {
            FULL_SHARE
        } else {
            x.sm_share
        };
        self.solo(spec, x.stage, batch.max(1), share)
            .map_or(f64::INFINITY, |e| {
                e.latency_ms * self.slowdown(spec, plan, instance)
            })
    }
}

#[derive(Clone, Debug)]
struct EvalInstance {
    stage: usize,
    gpu: u32,
    batch: u32,
    max_wait_ms: f64,
    /// Contended service time for batches 1..=batch, ms.
    svc_ms: Vec<f64>,
    /// Items per ms at full batches.
    throughput: f64,
    /// Share of the stage's load this instance takes.
    weight: f64,
}

impl EvalInstance {
    fn tail(&self, lambda: f64) -> Tail {
        let svc = |b: u32| self.svc_ms[(b.max(1) as usize - 1).min(self.svc_ms.len() - 1)];
        tail(svc, self.batch, self.max_wait_ms, lambda)
    }
}

/// A plan prepared for fast prediction at many loads.
#[derive(Clone, Debug)]
pub struct Evaluation {
    instances: Vec<EvalInstance>,
    stages: usize,
    order: Vec<usize>,
    preds: Vec<Vec<usize>>,
    edge_ms: Vec<((usize, usize), f64)>,
    gpus: u32,
    time_shared: bool,
    slo_ms: f64,
}

impl Evaluation {
    fn of(&self, s: usize) -> impl Iterator<Item = &EvalInstance> {
        self.instances.iter().filter(move |x| x.stage == s)
    }

    fn colocated_fraction(&self, p: usize, c: usize) -> f64 {
        (0..self.gpus)
            .map(|g| {
                let on =
                    |s: usize| -> f64 { self.of(s).filter(|x| x.gpu == g).map(|x| x.weight).sum() };
                on(p).min(on(c))
            })
            .sum()
    }

    /// Hand-off cost of each edge `(producer, consumer)`, ms.
    pub fn edge_ms(&self) -> &[((usize, usize), f64)] {
        &self.edge_ms
    }

    /// Throughput each stage sustains at full batches, requests/s (a stage without instances: 0).
    pub fn stage_rps(&self) -> Vec<f64> {
        (0..self.stages)
            .map(|s| self.of(s).map(|x| x.throughput).sum::<f64>() * 1000.0)
            .collect()
    }

    /// p99 of each stage at `load_rps`, ms.
    pub fn stage_p99_ms(&self, load_rps: f64) -> Vec<f64> {
        let lambda = load_rps / 1000.0;
        let tails: Vec<Tail> = self
            .instances
            .iter()
            .map(|x| x.tail(lambda * x.weight))
            .collect();
        let mut out = vec![0.0_f64; self.stages];
        let mut seen = vec![false; self.stages];
        for (k, x) in self.instances.iter().enumerate() {
            let t = &tails[k];
            let p99 = if self.time_shared {
                let on: Vec<usize> = (0..self.instances.len())
                    .filter(|&j| self.instances[j].gpu == x.gpu)
                    .collect();
                let rho: f64 = on.iter().map(|&j| tails[j].rho).sum();
                let mean_t = if rho > 0.0 {
                    on.iter()
                        .map(|&j| tails[j].rho * tails[j].service_ms)
                        .sum::<f64>()
                        / rho
                } else {
                    t.service_ms
                };
                let ca2 = if on.len() > 1 {
                    1.0
                } else {
                    1.0 / t.batch as f64
                };
                t.fill_ms + queue_p99_ms(rho, mean_t, ca2) + t.service_ms
            } else {
                t.p99_ms()
            };
            out[x.stage] = if seen[x.stage] {
                out[x.stage].max(p99)
            } else {
                p99
            };
            seen[x.stage] = true;
        }
        for (s, v) in out.iter_mut().enumerate() {
            if !seen[s] {
                *v = f64::INFINITY;
            }
        }
        out
    }

    /// End-to-end p99 at `load_rps`: the worst source→sink path, ms.
    pub fn p99_ms(&self, load_rps: f64) -> f64 {
        let d = self.stage_p99_ms(load_rps);
        let mut done = vec![0.0_f64; self.stages];
        for &s in &self.order {
            let before = self.preds[s]
                .iter()
                .map(|&p| {
                    let h = self
                        .edge_ms
                        .iter()
                        .find(|(e, _)| *e == (p, s))
                        .map_or(0.0, |(_, c)| *c);
                    done[p] + h
                })
                .fold(0.0, f64::max);
            done[s] = before + d[s];
        }
        done.into_iter().fold(0.0, f64::max)
    }

    /// Highest load with p99 within the target, requests/s: a 48-point scan below the
    /// throughput bound, then bisection above the highest feasible point.
    pub fn capacity_rps(&self) -> f64 {
        let mut bound = self.stage_rps().into_iter().fold(f64::INFINITY, f64::min);
        if self.time_shared {
            for g in 0..self.gpus {
                let per_item: f64 = self
                    .instances
                    .iter()
                    .filter(|x| x.gpu == g)
                    .map(|x| x.weight / x.throughput)
                    .sum();
                if per_item > 0.0 {
                    bound = bound.min(1000.0 / per_item);
                }
            }
        }
        if !(bound.is_finite() && bound > 0.0) {
            return 0.0;
        }
        const STEPS: u32 = 48;
        let ok = |l: f64| self.p99_ms(l) <= self.slo_ms;
        let (mut lo, mut hi) = match (1..STEPS)
            .rev()
            .find(|&i| ok(bound * i as f64 / STEPS as f64))
        {
            Some(i) => (
                bound * i as f64 / STEPS as f64,
                bound * (i + 1) as f64 / STEPS as f64,
            ),
            // Only loads below the first grid point can be feasible, if any.
            None if ok(bound * 1e-6) => (bound * 1e-6, bound / STEPS as f64),
            None => return 0.0,
        };
        for _ in 0..24 {
            let mid = 0.5 * (lo + hi);
            if ok(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
