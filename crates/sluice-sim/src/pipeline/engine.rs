//! The pipeline discrete-event engine: Poisson requests flow through a plan's stage instances,
//! batch by batch, and every item's ready, start and finish instants are kept for the report.
//!
//! The model, event by event:
//! - **Arrival**: a request enters every source stage at its arrival instant (the pipeline input
//!   is already on the host; no hand-off is charged for it).
//! - **Fan-in**: a stage's item for a request exists once every predecessor has finished that
//!   request. The consumer instance is chosen then (see routing), and each predecessor's output
//!   is taken to have been sent at that predecessor's finish, so the item is *ready* at
//!   `max over predecessors (finish + hand-off cost)`.
//! - **Hand-off**: `cluster.link.cost_ms(producer output_kb, in_place)`, in place when producer
//!   and consumer instances share a GPU and both stages accept the same in-place kind (`shm` or
//!   `cuda-ipc`: a consumer cannot open a handle its producer never exports).
//! - **Routing** (join the shortest expected delay): each instance of the consumer stage is scored
//!   by when the item would be ready there (hand-off costs included) plus the backlog of its
//!   executor (the running batch's remaining time plus every queued item at the per-item time of
//!   a full batch). The lowest score wins; on a tie, an instance on the producing GPU, then the
//!   lowest index. Because an in-place hand-off is cheaper, an instance on the producer's GPU is
//!   preferred whenever queues are even, yet a busy co-located instance does not starve idle
//!   ones elsewhere (a strict "same GPU first" rule would leave every remote instance of a stage
//!   unused when any instance sits beside its producer).
//! - **Batching**: each instance queues items FIFO. Its next batch is *ready* at the earlier of
//!   the instant `plan batch` items were queued and the oldest item's ready time plus the
//!   stage's `max_wait_ms`; it starts as soon as it is ready and its executor is free, taking up
//!   to `plan batch` items (all of them if fewer are queued).
//! - **Executors**: in a spatial plan every instance is its own executor (instances run
//!   concurrently, contention is in the service model). In a time-sharing plan
//!   ([`Plan::time_shared`]) all instances on a GPU share one executor that runs one batch at a
//!   time, taking ready batches in order of their ready instants.
//! - **Service**: `ServiceModel::batch_ms(spec, plan, instance, size)` times a lognormal factor of
//!   mean 1 ([`RunConfig::noise_cv`]), drawn per batch.
//! - **Completion**: a request completes when every sink stage has finished it.
//! - **Overload**: an item delivered to an instance already holding `queue_limit` items drops its
//!   request (its other items still run but nothing more is sent on); with `max_drops` the run
//!   stops once more requests than that were dropped.
//!
//! Events at one instant run in the order they were scheduled, so a run is a pure function of its
//! inputs and seed.

use super::config::RunConfig;
use super::noise::{Arrivals, ServiceNoise};
use super::report::{PipelineRun, RunData};
use super::trace::{BatchRecord, ItemRecord, RequestRecord, Trace};
use super::SimError;
use sluice_core::{Dur, Time};
use sluice_pipeline::{Cluster, Handoff, PipelineSpec, Plan, ServiceModel, StageSpec};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Most stage items (requests × stages) one run may be expected to hold.
pub const MAX_ITEMS: u64 = 8_000_000;

/// Simulates `plan` under `cfg` and summarises the measured window.
pub fn simulate(
    spec: &PipelineSpec,
    plan: &Plan,
    model: &dyn ServiceModel,
    cluster: &Cluster,
    cfg: &RunConfig,
) -> Result<PipelineRun, SimError> {
    let sim = Sim::new(spec, plan, model, cluster, cfg, false)?.run();
    Ok(sim.report())
}

/// [`simulate`], also returning every batch, item and request.
pub fn simulate_traced(
    spec: &PipelineSpec,
    plan: &Plan,
    model: &dyn ServiceModel,
    cluster: &Cluster,
    cfg: &RunConfig,
) -> Result<(PipelineRun, Trace), SimError> {
    let sim = Sim::new(spec, plan, model, cluster, cfg, true)?.run();
    let trace = sim.trace();
    Ok((sim.report(), trace))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival,
    /// An item's inputs have all reached its instance.
    Deliver {
        req: usize,
        stage: usize,
        inst: usize,
    },
    /// The oldest queued item of an instance may have waited long enough.
    Timeout(usize),
    /// The running batch of an executor is done.
    BatchDone(usize),
}

/// Per (request, stage).
#[derive(Copy, Clone, Debug)]
struct Cell {
    /// Predecessors not yet finished.
    pending: u32,
    instance: u32,
    ready: Time,
    start: Time,
    finish: Option<Time>,
}

#[derive(Copy, Clone, Debug)]
struct Queued {
    req: usize,
    ready: Time,
}

#[derive(Clone, Debug, Default)]
struct Inst {
    queue: VecDeque<Queued>,
    /// Items routed here whose hand-off has not arrived yet (counted in the backlog, so one
    /// finished batch does not send all its items to the same idle instance).
    in_flight: usize,
    armed: bool,
    /// Busy time inside the measured window, µs.
    busy_us: u64,
    /// Batches and items started inside the measured window.
    batches: u64,
    batch_items: u64,
}

#[derive(Clone, Debug)]
struct Running {
    inst: usize,
    reqs: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
struct Exec {
    members: Vec<usize>,
    running: Option<Running>,
    busy_until: Time,
    /// Armed instances by (batch ready instant, arming order).
    ready: BinaryHeap<Reverse<(Time, u64, usize)>>,
}

#[derive(Clone, Debug)]
struct Request {
    arrival: Time,
    sinks_left: u32,
    done: Option<Time>,
    dropped: bool,
}

struct Sim<'a> {
    spec: &'a PipelineSpec,
    plan: &'a Plan,
    cluster: &'a Cluster,
    cfg: &'a RunConfig,
    preds: Vec<Vec<usize>>,
    succs: Vec<Vec<usize>>,
    sources: Vec<usize>,
    is_sink: Vec<bool>,
    by_stage: Vec<Vec<usize>>,
    /// `service_ms[k][b - 1]`: model time of a batch of `b` on instance `k`.
    service_ms: Vec<Vec<f64>>,
    per_item_ms: Vec<f64>,
    exec_of: Vec<usize>,
    max_wait: Vec<Dur>,
    /// `in_place_kinds[p][c]`: stages `p` and `c` share an in-place hand-off kind.
    in_place_kinds: Vec<Vec<bool>>,
    warm_end: Time,
    end: Time,
    arrivals: Arrivals,
    next_arrival_s: f64,
    noise: ServiceNoise,
    heap: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    insts: Vec<Inst>,
    execs: Vec<Exec>,
    reqs: Vec<Request>,
    cells: Vec<Cell>,
    dropped: u64,
    aborted: bool,
    batches: Option<Vec<BatchRecord>>,
}

impl<'a> Sim<'a> {
    fn new(
        spec: &'a PipelineSpec,
        plan: &'a Plan,
        model: &dyn ServiceModel,
        cluster: &'a Cluster,
        cfg: &'a RunConfig,
        traced: bool,
    ) -> Result<Self, SimError> {
        spec.validate()?;
        plan.check(spec, cluster)?;
        cfg.validate()?;
        let n_stages = spec.stages.len();
        let expected_items = cfg.rate_rps * (cfg.warmup_s + cfg.duration_s) * n_stages as f64;
        if expected_items > MAX_ITEMS as f64 {
            return Err(SimError::TooLarge(
                expected_items.min(u64::MAX as f64) as u64
            ));
        }
        let mut service_ms = Vec::with_capacity(plan.instances.len());
        for (k, inst) in plan.instances.iter().enumerate() {
            let mut row = Vec::with_capacity(inst.batch as usize);
            for b in 1..=inst.batch {
                let ms = model.batch_ms(spec, plan, k, b);
                if !(ms.is_finite() && ms >= 0.0) {
                    return Err(SimError::Service {
                        instance: k,
                        stage: spec.stages[inst.stage].name.clone(),
                        batch: b,
                        ms,
                    });
                }
                row.push(ms);
            }
            service_ms.push(row);
        }
        let per_item_ms = service_ms
            .iter()
            .map(|row| row.last().copied().unwrap_or(0.0) / row.len().max(1) as f64)
            .collect();
        let exec_of: Vec<usize> = if plan.time_shared() {
            plan.instances.iter().map(|x| x.gpu as usize).collect()
        } else {
            (0..plan.instances.len()).collect()
        };
        let n_execs = exec_of.iter().map(|&e| e + 1).max().unwrap_or(0);
        let mut execs = vec![Exec::default(); n_execs];
        for (k, &e) in exec_of.iter().enumerate() {
            execs[e].members.push(k);
        }
        let warm_end = Time::from_secs_f64(cfg.warmup_s);
        let mut arrivals = Arrivals::new(cfg.seed, cfg.rate_rps);
        let next_arrival_s = arrivals.gap_s();
        Ok(Sim {
            spec,
            plan,
            cluster,
            cfg,
            preds: (0..n_stages).map(|s| spec.predecessors(s)).collect(),
            succs: (0..n_stages).map(|s| spec.successors(s)).collect(),
            sources: spec.sources(),
            is_sink: (0..n_stages)
                .map(|s| spec.successors(s).is_empty())
                .collect(),
            by_stage: (0..n_stages)
                .map(|s| {
                    (0..plan.instances.len())
                        .filter(|&k| plan.instances[k].stage == s)
                        .collect()
                })
                .collect(),
            service_ms,
            per_item_ms,
            exec_of,
            max_wait: spec
                .stages
                .iter()
                .map(|s| Dur::from_millis_f64(s.max_wait_ms))
                .collect(),
            in_place_kinds: spec
                .stages
                .iter()
                .map(|p| {
                    let kinds = [Handoff::Shm, Handoff::CudaIpc];
                    let shared =
                        |c: &StageSpec| kinds.iter().any(|&k| p.accepts(k) && c.accepts(k));
                    spec.stages.iter().map(shared).collect()
                })
                .collect(),
            warm_end,
            end: Time::from_secs_f64(cfg.warmup_s + cfg.duration_s),
            arrivals,
            next_arrival_s,
            noise: ServiceNoise::new(cfg.seed, cfg.noise_cv),
            heap: BinaryHeap::new(),
            seq: 0,
            insts: vec![Inst::default(); plan.instances.len()],
            execs,
            reqs: Vec::new(),
            cells: Vec::new(),
            dropped: 0,
            aborted: false,
            batches: traced.then(Vec::new),
        })
    }

    fn push(&mut self, at: Time, ev: Event) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    fn run(mut self) -> Self {
        let first = Time::from_secs_f64(self.next_arrival_s);
        if first < self.end {
            self.push(first, Event::Arrival);
        }
        while let Some(Reverse((now, _, ev))) = self.heap.pop() {
            match ev {
                Event::Arrival => self.arrival(now),
                Event::Deliver { req, stage, inst } => {
                    self.insts[inst].in_flight -= 1;
                    self.enqueue(req, stage, inst, now)
                }
                Event::Timeout(k) => {
                    self.try_arm(k, now);
                    self.try_start(self.exec_of[k], now);
                }
                Event::BatchDone(e) => self.batch_done(e, now),
            }
            if self.aborted {
                break;
            }
        }
        self
    }

    fn arrival(&mut self, now: Time) {
        let req = self.reqs.len();
        self.reqs.push(Request {
            arrival: now,
            sinks_left: self.is_sink.iter().filter(|&&s| s).count() as u32,
            done: None,
            dropped: false,
        });
        for s in 0..self.spec.stages.len() {
            self.cells.push(Cell {
                pending: self.preds[s].len() as u32,
                instance: 0,
                ready: Time::ZERO,
                start: Time::ZERO,
                finish: None,
            });
        }
        for i in 0..self.sources.len() {
            let s = self.sources[i];
            let k = self.route(req, s, None, now);
            self.enqueue(req, s, k, now);
        }
        self.next_arrival_s += self.arrivals.gap_s();
        let next = Time::from_secs_f64(self.next_arrival_s);
        if next < self.end {
            self.push(next, Event::Arrival);
        }
    }

    fn cell(&mut self, req: usize, stage: usize) -> &mut Cell {
        &mut self.cells[req * self.spec.stages.len() + stage]
    }

    fn handoff_ms(&self, producer: usize, consumer: usize) -> f64 {
        let p = &self.plan.instances[producer];
        let c = &self.plan.instances[consumer];
        let in_place = p.gpu == c.gpu && self.in_place_kinds[p.stage][c.stage];
        let kb = self.spec.stages[p.stage].output_kb;
        self.cluster.link.cost_ms(kb, in_place)
    }

    /// When the item of `req` at `stage` would be ready on instance `k`.
    fn ready_on(&self, req: usize, stage: usize, k: usize, now: Time) -> Time {
        let n = self.spec.stages.len();
        let mut ready = now;
        for &p in &self.preds[stage] {
            let cell = &self.cells[req * n + p];
            let sent = cell.finish.unwrap_or(now);
            let cost = Dur::from_millis_f64(self.handoff_ms(cell.instance as usize, k));
            ready = ready.max(sent + cost);
        }
        ready
    }

    /// Queued work ahead of a new item on executor `e`, ms.
    fn backlog_ms(&self, e: usize, now: Time) -> f64 {
        let exec = &self.execs[e];
        let running = if exec.running.is_some() {
            exec.busy_until.since(now).as_millis_f64()
        } else {
            0.0
        };
        let queued: f64 = exec
            .members
            .iter()
            .map(|&k| {
                let inst = &self.insts[k];
                (inst.queue.len() + inst.in_flight) as f64 * self.per_item_ms[k]
            })
            .sum();
        running + queued
    }

    fn route(&self, req: usize, stage: usize, from_gpu: Option<u32>, now: Time) -> usize {
        let mut best: Option<(f64, bool, usize)> = None;
        for &k in &self.by_stage[stage] {
            let ready = self.ready_on(req, stage, k, now).since(now).as_millis_f64();
            let score = ready + self.backlog_ms(self.exec_of[k], now);
            let local = from_gpu == Some(self.plan.instances[k].gpu);
            let better = match best {
                None => true,
                Some((b, b_local, _)) => score < b || (score == b && local && !b_local),
            };
            if better {
                best = Some((score, local, k));
            }
        }
        // `plan.check` guarantees every stage has an instance.
        best.map_or(0, |(_, _, k)| k)
    }

    fn enqueue(&mut self, req: usize, stage: usize, k: usize, now: Time) {
        if self.reqs[req].dropped {
            return;
        }
        if self.insts[k].queue.len() >= self.cfg.queue_limit {
            self.drop_request(req);
            return;
        }
        let cell = self.cell(req, stage);
        cell.instance = k as u32;
        cell.ready = now;
        let inst = &mut self.insts[k];
        inst.queue.push_back(Queued { req, ready: now });
        if inst.queue.len() == 1 {
            self.schedule_timeout(k, now);
        }
        self.try_arm(k, now);
        self.try_start(self.exec_of[k], now);
    }

    fn drop_request(&mut self, req: usize) {
        let r = &mut self.reqs[req];
        if !r.dropped {
            r.dropped = true;
            self.dropped += 1;
            if self.cfg.max_drops.is_some_and(|m| self.dropped > m) {
                self.aborted = true;
            }
        }
    }

    /// Wakes instance `k` when its oldest item's wait runs out, if that is still to come.
    fn schedule_timeout(&mut self, k: usize, now: Time) {
        let stage = self.plan.instances[k].stage;
        if let Some(oldest) = self.insts[k].queue.front() {
            let due = oldest.ready + self.max_wait[stage];
            if due > now {
                self.push(due, Event::Timeout(k));
            }
        }
    }

    /// When instance `k`'s next batch is (or will be, by waiting alone) ready.
    fn batch_ready_at(&self, k: usize) -> Option<Time> {
        let inst = &self.insts[k];
        let oldest = inst.queue.front()?;
        let by_wait = oldest.ready + self.max_wait[self.plan.instances[k].stage];
        let batch = self.plan.instances[k].batch as usize;
        let by_size = inst.queue.get(batch - 1).map(|q| q.ready);
        Some(by_size.map_or(by_wait, |t| t.min(by_wait)))
    }

    fn try_arm(&mut self, k: usize, now: Time) {
        if self.insts[k].armed {
            return;
        }
        if let Some(at) = self.batch_ready_at(k).filter(|&at| at <= now) {
            self.insts[k].armed = true;
            self.seq += 1;
            let seq = self.seq;
            self.execs[self.exec_of[k]]
                .ready
                .push(Reverse((at, seq, k)));
        }
    }

    fn try_start(&mut self, e: usize, now: Time) {
        if self.execs[e].running.is_some() {
            return;
        }
        let Some(Reverse((ready, _, k))) = self.execs[e].ready.pop() else {
            return;
        };
        let inst = &mut self.insts[k];
        inst.armed = false;
        let size = inst.queue.len().min(self.plan.instances[k].batch as usize);
        if size == 0 {
            // Only an instance with queued items is ever armed; stay safe if that changes.
            return self.try_start(e, now);
        }
        let taken: Vec<Queued> = inst.queue.drain(..size).collect();
        let ms = self.service_ms[k][size - 1] * self.noise.factor();
        let finish = now + Dur::from_millis_f64(ms);
        if now >= self.warm_end && now < self.end {
            inst.batches += 1;
            inst.batch_items += size as u64;
        }
        inst.busy_us += overlap_us(now, finish, self.warm_end, self.end);
        let stage = self.plan.instances[k].stage;
        for q in &taken {
            self.cell(q.req, stage).start = now;
        }
        if let Some(log) = &mut self.batches {
            log.push(BatchRecord {
                instance: k,
                gpu: self.plan.instances[k].gpu,
                size: size as u32,
                oldest_ready: taken[0].ready,
                ready,
                start: now,
                finish,
            });
        }
        let exec = &mut self.execs[e];
        exec.running = Some(Running {
            inst: k,
            reqs: taken.into_iter().map(|q| q.req).collect(),
        });
        exec.busy_until = finish;
        self.push(finish, Event::BatchDone(e));
        self.schedule_timeout(k, now);
        self.try_arm(k, now);
    }

    fn batch_done(&mut self, e: usize, now: Time) {
        let Some(done) = self.execs[e].running.take() else {
            return;
        };
        let k = done.inst;
        let stage = self.plan.instances[k].stage;
        let gpu = self.plan.instances[k].gpu;
        for &req in &done.reqs {
            self.cell(req, stage).finish = Some(now);
            if self.reqs[req].dropped {
                continue;
            }
            if self.is_sink[stage] {
                let r = &mut self.reqs[req];
                r.sinks_left -= 1;
                if r.sinks_left == 0 {
                    r.done = Some(now);
                }
            }
            for i in 0..self.succs[stage].len() {
                let next = self.succs[stage][i];
                let cell = self.cell(req, next);
                cell.pending -= 1;
                if cell.pending == 0 {
                    let c = self.route(req, next, Some(gpu), now);
                    let at = self.ready_on(req, next, c, now);
                    self.insts[c].in_flight += 1;
                    self.push(
                        at,
                        Event::Deliver {
                            req,
                            stage: next,
                            inst: c,
                        },
                    );
                }
            }
        }
        self.try_start(e, now);
    }

    fn report(&self) -> PipelineRun {
        let n = self.spec.stages.len();
        let measured = |r: &Request| r.arrival >= self.warm_end && r.arrival < self.end;
        let mut data = RunData {
            spec: self.spec,
            plan: self.plan,
            cfg: self.cfg,
            stage_ms: vec![Vec::new(); n],
            e2e_ms: Vec::new(),
            offered: 0,
            dropped: 0,
            aborted: self.aborted,
            inst_busy_us: self.insts.iter().map(|i| i.busy_us).collect(),
            inst_batches: self
                .insts
                .iter()
                .map(|i| (i.batches, i.batch_items))
                .collect(),
            window: self.end.since(self.warm_end),
        };
        for (id, r) in self.reqs.iter().enumerate() {
            if !measured(r) {
                continue;
            }
            data.offered += 1;
            if r.dropped {
                data.dropped += 1;
                continue;
            }
            let Some(done) = r.done else { continue };
            data.e2e_ms.push(done.since(r.arrival).as_millis_f64());
            for (s, cell) in self.cells[id * n..(id + 1) * n].iter().enumerate() {
                if let Some(f) = cell.finish {
                    data.stage_ms[s].push(f.since(cell.ready).as_millis_f64());
                }
            }
        }
        PipelineRun::from_data(data)
    }

    fn trace(&self) -> Trace {
        let n = self.spec.stages.len();
        let items = self
            .cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.finish.map(|finish| ItemRecord {
                    request: i / n,
                    stage: i % n,
                    instance: c.instance as usize,
                    ready: c.ready,
                    start: c.start,
                    finish,
                })
            })
            .collect();
        Trace {
            batches: self.batches.clone().unwrap_or_default(),
            items,
            requests: self
                .reqs
                .iter()
                .map(|r| RequestRecord {
                    arrival: r.arrival,
                    done: r.done,
                    dropped: r.dropped,
                })
                .collect(),
        }
    }
}

/// Microseconds of `[a, b)` inside `[lo, hi)`.
fn overlap_us(a: Time, b: Time, lo: Time, hi: Time) -> u64 {
    let start = a.max(lo);
    let end = b.min(hi);
    end.since(start).as_micros()
}
