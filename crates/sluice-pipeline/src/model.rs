//! The performance model of a placed pipeline: service time of a batch on an instance (profile ×
//! contention), per-GPU bandwidth demand, and an analytic end-to-end p99 and capacity of a plan.
//! This module owns those formulas; planners and the simulator call them.
//!
//! Analytic p99 (`docs/pipelines.md`, "Performance model"), built to agree with the pipeline
//! simulator's semantics: every request visits every stage once (fan-out broadcasts, fan-in
//! joins); a stage's items go to the instance with the least backlog, which behaves like one
//! queue in front of all of them (M/G/c). Per instance, at item rate `λᵢ` (its share of the stage
//! in proportion to full-batch throughput), batch cap `b`, timeout `w`:
//! - batch: one item opens a batch that takes what arrives within `w` (`E[min(b, 1 + Poisson(λᵢw))]`),
//!   growing toward the items that queue during a service as the server gets busy (a fixed point);
//! - fill wait p99: `min(w, time for (b−1)·c stage arrivals)` (`c` instances share arrivals);
//! - queueing: `P(W > x) = C(c, ρ)·e^{−θx}` with `ρ` the stage's utilisation, `C` Erlang-C and
//!   `θ = u·μ` (`μ` the stage's items per ms, `u` the M/D/1 root of `u = ρ(e^{u}−1)` with the
//!   service jitter); waiting and batch filling overlap, so the wait only counts beyond the fill;
//! - service: the profile latency at the instance's share × its contention slowdown, with a
//!   coefficient of variation of [`SERVICE_CV`];
//! - time-sharing: one server per GPU; a request's work there (its items' shares of batch times)
//!   is one customer, and a stage's item also waits for its siblings on the GPU (stages fed by
//!   the same predecessors become ready together and take turns).
//!
//! A stage's latency is summarised by [`Latency`] (mean, p99, p99.9); a hand-off edge costs
//! `LinkModel::cost_ms(output_kb, in_place)`, in place when both stages accept `shm` or
//! `cuda-ipc` and ≥ 99% of the producer's flow can go to consumer instances on the same GPU;
//! latencies add along edges and the latest predecessor of a join (and of the sinks) is their
//! maximum, as independent parts (under time-sharing as parts that move together: a request's
//! branches share its wait for the GPUs).

use std::path::Path;

use crate::cluster::{Cluster, GpuModel};
use crate::contention::Contention;
use crate::plan::{Plan, Prediction, ServiceModel, FULL_SHARE};
use crate::profile::{Estimate, ProfileError, Profiles, Util};
use crate::queueing::{
    capped_poisson_batch, decay_root, erlang_c, gamma_p99_ms, Latency, Wait, SERVICE_CV,
};
use crate::spec::{Handoff, PipelineSpec};

/// Share of a producer's flow that must reach same-GPU consumers for an edge to count as in place.
pub const IN_PLACE_FRACTION: f64 = 0.99;
/// Highest DRAM demand a GPU may carry, as a fraction of its bandwidth.
pub const BANDWIDTH_CAP: f64 = 1.0;

/// Profiles + contention + hardware: everything needed to predict a plan.
#[derive(Clone, Debug)]
pub struct PerfModel {
    /// Per-model latency and utilisation by batch and SM share.
    pub profiles: Profiles,
    /// How co-runners on one GPU slow each other down.
    pub contention: Contention,
    /// The GPUs plans are made for and the cost of hand-offs between them.
    pub cluster: Cluster,
}

/// What one instance of a stage looks like to the model, before it is placed.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Member {
    /// Index of the stage in the spec.
    pub stage: usize,
    /// Batch size the instance runs at (≥ 1).
    pub batch: u32,
    /// SM share, percent (1..=100).
    pub share: u32,
}

/// What one batching instance looks like at its arrival rate.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Server {
    /// Mean batch formed.
    pub batch: f64,
    /// Service time of that mean batch, ms.
    pub service_ms: f64,
    /// Service time of the largest batch items commonly see (the mean rounded up), ms.
    pub tail_service_ms: f64,
    /// p99 of the wait for a batch to fill (or time out), ms.
    pub fill_ms: f64,
    /// Items per ms at full batches (what a long queue is served at).
    pub full_rate: f64,
}

impl Server {
    /// Items per ms at the mean batch.
    pub fn rate(&self) -> f64 {
        self.batch / self.service_ms
    }
}

/// An instance with service times `svc(batch)` (ms), batch cap `cap` and timeout `max_wait_ms`,
/// receiving `lambda` items per ms, one of `spread` instances that take turns with the stage's
/// arrivals (see the module doc).
pub fn server(
    svc: impl Fn(u32) -> f64,
    cap: u32,
    max_wait_ms: f64,
    lambda: f64,
    spread: u32,
) -> Server {
    let cap = cap.max(1);
    let at = |x: f64| -> f64 {
        let lo = (x.floor() as u32).clamp(1, cap);
        let hi = (lo + 1).min(cap);
        let f = (x - lo as f64).clamp(0.0, 1.0);
        svc(lo) * (1.0 - f) + svc(hi) * f
    };
    if lambda <= 0.0 {
        let t = svc(1);
        return Server {
            batch: 1.0,
            service_ms: t,
            tail_service_ms: t,
            fill_ms: if cap > 1 { max_wait_ms } else { 0.0 },
            full_rate: cap as f64 / svc(cap),
        };
    }
    let idle = capped_poisson_batch(lambda * max_wait_ms, cap);
    let mut b = idle;
    for _ in 0..8 {
        let t = at(b);
        let rho = (lambda * t / b).min(1.0);
        let busy = capped_poisson_batch(lambda * t, cap).max(idle);
        let next = (1.0 - rho) * idle + rho * busy;
        let done = (next - b).abs() < 1e-3;
        b = next;
        if done {
            break;
        }
    }
    let fill_ms = if cap > 1 {
        let c = spread.max(1) as f64;
        gamma_p99_ms((cap - 1) as f64 * c, lambda * c).min(max_wait_ms)
    } else {
        0.0
    };
    Server {
        batch: b,
        service_ms: at(b),
        tail_service_ms: svc((b.ceil() as u32).clamp(1, cap)),
        fill_ms,
        full_rate: cap as f64 / svc(cap),
    }
}

/// What a stage's instances (or a time-shared GPU set) add up to, for [`pooled`].
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Pool {
    /// Customers per ms.
    pub lambda: f64,
    /// Work per customer at the mean batch, ms of one server (`1 / rate`).
    pub work_ms: f64,
    /// Work per customer at full batches, ms of one server: what each customer costs when a
    /// long queue is served.
    pub full_work_ms: f64,
    /// Servers.
    pub servers: u32,
    /// Mean residual of the batch in service, ms (`E[T²] / 2E[T]`).
    pub residual_ms: f64,
    /// Longest fill wait, ms.
    pub fill_ms: f64,
    /// Service an item sees (its batch, plus siblings under time-sharing), ms.
    pub service_ms: f64,
    /// Standard deviation of that service, ms.
    pub sigma_ms: f64,
}

/// The latency through a pool of `servers` fed by least backlog (see the module doc): an arrival
/// finds every server busy with the Erlang-C probability at the mean-batch utilisation; it then
/// waits for the batch in service (residual granularity) and for the queue ahead, which a long
/// queue serves at full batches (M/D/c root at the full-batch utilisation); the slower of the two
/// decays sets the exponential tail, and the wait counts only beyond the fill. Infinite when the
/// pool cannot keep up.
pub fn pooled(pool: &Pool) -> Latency {
    let c = pool.servers.max(1) as f64;
    let rho = pool.lambda * pool.work_ms / c;
    if !(rho < 1.0 && pool.service_ms.is_finite() && pool.work_ms.is_finite()) {
        return Latency::infinite();
    }
    if rho <= 0.0 {
        return Latency::stage(pool.fill_ms, pool.service_ms, pool.sigma_ms, Wait::NONE);
    }
    let rho_full = (pool.lambda * pool.full_work_ms / c).min(rho);
    let theta_queue = c * decay_root(rho_full, SERVICE_CV) / pool.full_work_ms;
    let theta_residual = (c + 1.0) / (2.0 * pool.residual_ms.max(1e-9));
    let theta = theta_queue.min(theta_residual);
    let wait = Wait {
        p: erlang_c(pool.servers.max(1), rho) * (-theta * pool.fill_ms).exp(),
        theta,
    };
    Latency::stage(pool.fill_ms, pool.service_ms, pool.sigma_ms, wait)
}

/// The latency of `k` identical instances (service `svc`, cap `batch`, timeout `max_wait_ms`)
/// sharing `lambda` items per ms.
pub fn identical(
    svc: impl Fn(u32) -> f64,
    batch: u32,
    max_wait_ms: f64,
    lambda: f64,
    k: u32,
) -> Latency {
    let k = k.max(1);
    identical_from(
        &server(svc, batch, max_wait_ms, lambda / k as f64, k),
        lambda,
        k,
    )
}

/// [`identical`] from one instance's [`server`] at `lambda / k`.
pub fn identical_from(s: &Server, lambda: f64, k: u32) -> Latency {
    pooled(&Pool {
        lambda,
        work_ms: 1.0 / s.rate(),
        full_work_ms: 1.0 / s.full_rate,
        servers: k.max(1),
        residual_ms: s.service_ms / 2.0,
        fill_ms: s.fill_ms,
        service_ms: s.tail_service_ms,
        sigma_ms: SERVICE_CV * s.tail_service_ms,
    })
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
            siblings: (0..spec.stages.len())
                .map(|i| {
                    let mine = spec.predecessors(i);
                    (0..spec.stages.len())
                        .filter(|&j| j != i && spec.predecessors(j) == mine)
                        .collect()
                })
                .collect(),
            sinks: (0..spec.stages.len())
                .filter(|&i| spec.successors(i).is_empty())
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
    fn svc(&self, b: u32) -> f64 {
        self.svc_ms[(b.max(1) as usize - 1).min(self.svc_ms.len() - 1)]
    }

    fn server(&self, lambda: f64, spread: u32) -> Server {
        server(
            |b| self.svc(b),
            self.batch,
            self.max_wait_ms,
            lambda,
            spread,
        )
    }
}

/// A plan prepared for fast prediction at many loads.
#[derive(Clone, Debug)]
pub struct Evaluation {
    instances: Vec<EvalInstance>,
    stages: usize,
    order: Vec<usize>,
    preds: Vec<Vec<usize>>,
    /// Other stages fed by exactly the same predecessors (ready at the same instants).
    siblings: Vec<Vec<usize>>,
    sinks: Vec<usize>,
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

    /// Latency of each stage at `load_rps` (ready on an instance → batch done).
    pub fn stage_latency(&self, load_rps: f64) -> Vec<Latency> {
        let lambda = load_rps / 1000.0;
        let spread: Vec<u32> = (0..self.stages)
            .map(|s| self.of(s).count() as u32)
            .collect();
        let servers: Vec<Server> = self
            .instances
            .iter()
            .map(|x| x.server(lambda * x.weight, spread[x.stage]))
            .collect();
        if self.time_shared {
            return self.time_shared_latency(lambda, &servers);
        }
        (0..self.stages)
            .map(|s| {
                let (mut mu, mut mu2, mut full, mut t, mut t2) = (0.0, 0.0, 0.0, 0.0, 0.0);
                let (mut fill, mut svc) = (0.0_f64, 0.0_f64);
                for (x, sv) in self.instances.iter().zip(&servers) {
                    if x.stage == s && x.weight > 0.0 {
                        let r = sv.rate();
                        mu += r;
                        mu2 += r * r;
                        full += sv.full_rate;
                        // Batches per ms at this instance's share of the load, and their times.
                        let n = lambda * x.weight / sv.batch;
                        t += n * sv.service_ms;
                        t2 += n * sv.service_ms * sv.service_ms;
                        fill = fill.max(sv.fill_ms);
                        svc = svc.max(sv.tail_service_ms);
                    }
                }
                let c = if mu2 > 0.0 { mu * mu / mu2 } else { 1.0 };
                let c = c.round().max(1.0);
                pooled(&Pool {
                    lambda,
                    work_ms: c / mu,
                    full_work_ms: c / full,
                    servers: c as u32,
                    residual_ms: if t > 0.0 { t2 / (2.0 * t) } else { svc / 2.0 },
                    fill_ms: fill,
                    service_ms: svc,
                    sigma_ms: SERVICE_CV * svc,
                })
            })
            .collect()
    }

    /// Under time-sharing: per GPU one server whose customer is a request's work there; an item
    /// also waits for its siblings' batches on that GPU.
    fn time_shared_latency(&self, lambda: f64, servers: &[Server]) -> Vec<Latency> {
        // The GPUs serve each request's items by least backlog: one pool of GPUs whose customer
        // is a request, with its work spread over them. While a GPU serves other instances,
        // items queue and batches grow: iterate the mean batches against the mean wait.
        let mut servers = servers.to_vec();
        let (mut work, mut full, mut t, mut t2) = (0.0, 0.0, 0.0, 0.0);
        let mut used = vec![false; self.gpus as usize];
        for x in &self.instances {
            if let Some(u) = used.get_mut(x.gpu as usize) {
                *u |= x.weight > 0.0;
            }
        }
        let c = used.iter().filter(|&&u| u).count().max(1) as u32;
        for round in 0..6 {
            (work, full, t, t2) = (0.0, 0.0, 0.0, 0.0);
            for (x, sv) in self.instances.iter().zip(&servers) {
                if x.weight > 0.0 {
                    work += x.weight * sv.service_ms / sv.batch;
                    full += x.weight / sv.full_rate;
                    let n = lambda * x.weight / sv.batch;
                    t += n * sv.service_ms;
                    t2 += n * sv.service_ms * sv.service_ms;
                }
            }
            if round == 5 {
                break;
            }
            let rho = (lambda * work / c as f64).min(0.99);
            let mean_wait = if t > 0.0 {
                rho / (1.0 - rho) * t2 / (2.0 * t)
            } else {
                0.0
            };
            for (x, sv) in self.instances.iter().zip(servers.iter_mut()) {
                let li = lambda * x.weight;
                let cap = x.batch.max(1);
                let idle = capped_poisson_batch(li * x.max_wait_ms, cap);
                let busy = capped_poisson_batch(li * (mean_wait + sv.service_ms), cap).max(idle);
                let b = (1.0 - rho) * idle + rho * busy;
                let at = |v: f64| -> f64 {
                    let lo = (v.floor() as u32).clamp(1, cap);
                    let hi = (lo + 1).min(cap);
                    let f = (v - lo as f64).clamp(0.0, 1.0);
                    x.svc(lo) * (1.0 - f) + x.svc(hi) * f
                };
                sv.batch = b;
                sv.service_ms = at(b);
                sv.tail_service_ms = x.svc((b.ceil() as u32).clamp(1, cap));
            }
        }
        let mut out = vec![Latency::infinite(); self.stages];
        let mut seen = vec![false; self.stages];
        for (x, sv) in self.instances.iter().zip(&servers) {
            let (mut extra, mut var) = (0.0, sv.tail_service_ms.powi(2));
            for (y, sy) in self.instances.iter().zip(&servers) {
                if y.gpu == x.gpu && self.siblings[x.stage].contains(&y.stage) {
                    let t = y.weight * sy.service_ms;
                    extra += t;
                    var += t * t;
                }
            }
            let mut lat = pooled(&Pool {
                lambda,
                work_ms: work,
                full_work_ms: full,
                servers: c,
                residual_ms: if t > 0.0 { t2 / (2.0 * t) } else { 0.0 },
                fill_ms: sv.fill_ms,
                service_ms: sv.tail_service_ms + extra,
                sigma_ms: SERVICE_CV * var.sqrt(),
            });
            // The request waits for the GPUs once (it is the customer): at its source stages.
            if !self.preds[x.stage].is_empty() && lat.mean.is_finite() {
                lat = Latency::stage(
                    sv.fill_ms,
                    sv.tail_service_ms + extra,
                    SERVICE_CV * var.sqrt(),
                    Wait::NONE,
                );
            }
            if !seen[x.stage] || lat.p99() > out[x.stage].p99() {
                out[x.stage] = lat;
            }
            seen[x.stage] = true;
        }
        out
    }

    /// p99 of each stage at `load_rps`, ms.
    pub fn stage_p99_ms(&self, load_rps: f64) -> Vec<f64> {
        self.stage_latency(load_rps)
            .iter()
            .map(Latency::p99)
            .collect()
    }

    /// End-to-end latency at `load_rps`: stage latencies added along edges, the latest of a
    /// join's predecessors and of the sinks taken as a maximum of independent parts.
    pub fn latency(&self, load_rps: f64) -> Latency {
        let d = self.stage_latency(load_rps);
        // Under time-sharing a request's branches share its wait for the GPUs (and each holds
        // its siblings' service already): they finish together rather than independently.
        let latest = if self.time_shared {
            Latency::max_of_comonotone
        } else {
            Latency::max_of
        };
        let mut done = vec![Latency::default(); self.stages];
        let mut parts = Vec::new();
        for &s in &self.order {
            parts.clear();
            for &p in &self.preds[s] {
                let h = self
                    .edge_ms
                    .iter()
                    .find(|(e, _)| *e == (p, s))
                    .map_or(0.0, |(_, c)| *c);
                parts.push(done[p].then(&Latency::fixed(h)));
            }
            done[s] = latest(&parts).then(&d[s]);
        }
        parts.clear();
        parts.extend(self.sinks.iter().map(|&s| done[s]));
        latest(&parts)
    }

    /// End-to-end p99 at `load_rps`, ms (infinite when a stage cannot keep up).
    pub fn p99_ms(&self, load_rps: f64) -> f64 {
        let q = self.latency(load_rps).p99();
        if q.is_nan() {
            f64::INFINITY
        } else {
            q
        }
    }

    /// Highest load with p99 within the target, requests/s: a 32-point scan below the
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
        const STEPS: u32 = 32;
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
        for _ in 0..16 {
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
