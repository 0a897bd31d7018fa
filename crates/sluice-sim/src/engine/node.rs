//! One simulated worker: a [`Scheduler`] (unchanged) on its devices under the [`DeviceModel`],
//! with its own event heap. It owns execution starts (after cold starts and memory moves),
//! completions (per device, recomputed whenever the set of co-running invocations changes; stale
//! ones are recognised by a version number) and scheduler timers; the caller owns the clock and
//! the arrivals: the single-worker [`run`](super::run) and the cluster engine
//! ([`crate::cluster`]) both step nodes through [`Node::arrive`] and [`Node::step`].

use super::RunOptions;
use crate::device::{DeviceKind, DeviceModel};
use crate::record::InvocationRecord;
use crate::workload::FunctionProfile;
use sluice_core::{Dur, FunctionId, GpuId, Invocation, InvocationId, SandboxId, Time};
use sluice_policy::admission::{decide, Admission};
use sluice_policy::idmap::IdMap;
use sluice_policy::memory::{Location, MemMove};
use sluice_policy::scheduler::{
    Action, ColdCauses, ConfigError, Create, FunctionInfo, Scheduler, SchedulerConfig, Start,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Residual work below this (µs) counts as done; absorbs float rounding.
const EPS_WORK: f64 = 1e-3;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Job `slot` begins executing.
    ExecStart(usize),
    /// The earliest completion on a device, valid if the device's version still matches.
    Completion { gpu: u16, version: u64 },
    /// A scheduler timer is due.
    Timer,
    /// A sandbox bought ahead ([`Action::Create`]) is ready.
    Created(SandboxId),
}

#[derive(Clone, Debug)]
struct Job {
    inv: Invocation,
    sandbox: SandboxId,
    gpu: GpuId,
    cold: bool,
    dispatched: Time,
    started: Time,
    solo: Dur,
    /// Work left, in solo microseconds.
    remaining: f64,
    /// Oversubscription stretch of this job's work.
    stretch: f64,
    bytes_to_device: u64,
    /// A cold start whose sandbox the scheduler has not yet been told is ready.
    awaiting_ready: bool,
}

#[derive(Clone, Debug, Default)]
struct Device {
    running: Vec<usize>,
    last_update: Time,
    version: u64,
    busy_since: Option<Time>,
    busy: Dur,
    copy_free: Time,
}

/// A workload function as one worker's scheduler knows it (dense, in registration order).
pub type LocalId = FunctionId;

/// One simulated worker: its own [`Scheduler`] and devices under the [`DeviceModel`], stepped
/// by an outer clock ([`Node::arrive`], [`Node::next_event`], [`Node::step`]).
pub struct Node<'a> {
    functions: &'a [FunctionProfile],
    model: &'a DeviceModel,
    on_gpu: bool,
    sched: Scheduler,
    heap: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    jobs: Vec<Option<Job>>,
    free_slots: Vec<usize>,
    devices: Vec<Device>,
    /// When an asynchronous prefetch of a sandbox's memory lands on its device.
    ready_at: IdMap<SandboxId, Time>,
    /// Cold-started jobs whose sandbox is ready and which wait for a token (the scheduler
    /// answers a warm start of the same invocation when one frees), by invocation.
    parked: IdMap<InvocationId, usize>,
    timer_at: Option<Time>,
    records: Vec<InvocationRecord>,
    cold_starts: u64,
    bytes_to_device: u64,
    bytes_to_host: u64,
    actions: Vec<Action>,
    max_queue: Option<Dur>,
    rejected: u64,
    /// The scheduler's dense function id of each workload function (by workload id;
    /// `u32::MAX` until registered here).
    local: Vec<u32>,
    /// The workload function of each local id.
    global: Vec<FunctionId>,
}

impl<'a> Node<'a> {
    /// A worker of `gpus` devices replaying invocations of `functions` (indexed by
    /// [`FunctionId`]); functions are registered with its scheduler on first arrival (or all at
    /// once with [`Node::register_all`]).
    pub fn new(
        functions: &'a [FunctionProfile],
        cfg: &SchedulerConfig,
        model: &'a DeviceModel,
        gpus: usize,
        opts: RunOptions,
    ) -> Result<Self, ConfigError> {
        Ok(Node {
            functions,
            model,
            on_gpu: model.kind == DeviceKind::Gpu,
            sched: Scheduler::new(cfg, vec![model.memory_bytes(); gpus])?,
            heap: BinaryHeap::new(),
            seq: 0,
            jobs: Vec::new(),
            free_slots: Vec::new(),
            devices: vec![Device::default(); gpus],
            ready_at: IdMap::default(),
            parked: IdMap::default(),
            timer_at: None,
            records: Vec::new(),
            cold_starts: 0,
            bytes_to_device: 0,
            bytes_to_host: 0,
            actions: Vec::new(),
            max_queue: opts.max_queue,
            rejected: 0,
            local: vec![u32::MAX; functions.len()],
            global: Vec::new(),
        })
    }

    /// Registers every function, in id order (local ids then equal workload ids).
    pub fn register_all(&mut self) {
        for i in 0..self.functions.len() {
            self.local_of(FunctionId(i as u32));
        }
    }

    /// Creates up to `per_function` sandboxes of every function, ready at time zero (counted as
    /// cold starts), as the worker's prewarm API would before traffic arrives; where memory is
    /// short, the moves that make room are made (and counted) at time zero too.
    pub fn prewarm_all(&mut self, per_function: u32) {
        let mut room = Vec::new();
        for _ in 0..per_function {
            for i in 0..self.functions.len() {
                let local = self.local_of(FunctionId(i as u32));
                let took = self.functions[i].cold_start;
                if self
                    .sched
                    .prewarmed(local, took, Time::ZERO, &mut room)
                    .is_some()
                {
                    self.cold_starts += 1;
                }
                self.apply(&mut room, Time::ZERO);
            }
        }
    }

    /// This worker's (its scheduler's) id of workload function `func`, registering it on first
    /// use. A caller that asks often about the same functions on many workers (the cluster's
    /// hints) keeps it rather than looking it up in every worker's table.
    pub fn local_of(&mut self, func: FunctionId) -> LocalId {
        let known = self.local[func.index()];
        if known != u32::MAX {
            return FunctionId(known);
        }
        let l = FunctionId(self.global.len() as u32);
        let mem = self.functions[func.index()].gpu_mem_bytes;
        self.sched.register(
            l,
            FunctionInfo {
                gpu_mem_bytes: if self.on_gpu { mem } else { 0 },
                ..FunctionInfo::default()
            },
        );
        self.local[func.index()] = l.0;
        self.global.push(func);
        l
    }

    /// An invocation of `func` arrives at `now`: admitted (queued) unless the admission bound
    /// refuses it. Returns whether it was admitted. Call [`Node::step`] at `now` afterwards.
    pub fn arrive(&mut self, id: InvocationId, func: FunctionId, now: Time) -> bool {
        let l = self.local_of(func);
        self.arrive_local(id, l, now)
    }

    /// [`Node::arrive`] for the function this worker knows as `l` (from [`Node::local_of`]).
    pub fn arrive_local(&mut self, id: InvocationId, l: LocalId, now: Time) -> bool {
        let admitted = self
            .max_queue
            .is_none_or(|bound| decide(self.sched.predict_wait(l), bound) == Admission::Admit);
        if admitted {
            self.sched.submit(id, l, now);
        } else {
            self.rejected += 1;
        }
        admitted
    }

    /// When this worker next has something to do on its own (an execution start, a completion,
    /// a timer), if ever.
    pub fn next_event(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Applies every event due at `now`, then polls the scheduler once for `now`.
    pub fn step(&mut self, now: Time) {
        while let Some(&Reverse((t, _, ev))) = self.heap.peek() {
            if t != now {
                break;
            }
            self.heap.pop();
            self.handle(ev, now);
        }
        self.poll(now);
    }

    /// Whether an idle warm sandbox of the function this worker knows as `local` waits here.
    pub fn has_idle_local(&self, local: LocalId) -> bool {
        self.sched.pool().has_idle_of(local)
    }

    /// The records of the invocations finished so far (in completion order); the caller may
    /// drain them.
    pub fn records_mut(&mut self) -> &mut Vec<InvocationRecord> {
        &mut self.records
    }

    /// Cold starts so far.
    pub fn cold_starts(&self) -> u64 {
        self.cold_starts
    }

    /// Cold starts so far, by cause (they sum to [`Node::cold_starts`]).
    pub fn cold_causes(&self) -> ColdCauses {
        self.sched.cold_causes()
    }

    /// Bytes moved host→device and device→host so far.
    pub fn bytes_moved(&self) -> (u64, u64) {
        (self.bytes_to_device, self.bytes_to_host)
    }

    /// Invocations refused so far (admission bound, or fitting no device).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Per device, the time during which at least one invocation executed.
    pub fn gpu_busy(&self) -> Vec<Dur> {
        self.devices.iter().map(|d| d.busy).collect()
    }

    fn push(&mut self, at: Time, ev: Event) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    fn handle(&mut self, ev: Event, now: Time) {
        match ev {
            Event::ExecStart(slot) => self.exec_start(slot, now),
            Event::Completion { gpu, version } => {
                if self.devices[gpu as usize].version == version {
                    self.complete_due(gpu as usize, now);
                }
            }
            Event::Timer => {
                if self.timer_at == Some(now) {
                    self.timer_at = None;
                }
            }
            Event::Created(sb) => self.sched.prewarm_done(sb, now),
        }
    }

    /// Polls the scheduler until it has nothing more to say at `now`, and arms its timer.
    fn poll(&mut self, now: Time) {
        let mut actions = std::mem::take(&mut self.actions);
        loop {
            actions.clear();
            self.sched.poll(now, &mut actions);
            if actions.is_empty() {
                break;
            }
            self.apply(&mut actions, now);
        }
        self.actions = actions;
        if let Some(t) = self.sched.next_timer() {
            let t = t.max(now + Dur::from_micros(1));
            if self.timer_at.is_none_or(|at| t < at || at <= now) {
                self.timer_at = Some(t);
                self.push(t, Event::Timer);
            }
        }
    }

    /// Carries out the scheduler's `actions` at `now`, draining them.
    fn apply(&mut self, actions: &mut Vec<Action>, now: Time) {
        for a in actions.drain(..) {
            match a {
                Action::Start(s) => self.start(s, now),
                Action::Move(m) => {
                    let done = self.copy(m, now);
                    if m.to == Location::Device {
                        self.ready_at.insert(m.sandbox, done);
                    }
                }
                Action::Destroy(sb) => {
                    self.ready_at.remove(&sb);
                }
                // Fits no device: refused, as the worker answers it.
                Action::Reject(_) => self.rejected += 1,
                Action::Create(c) => self.create(c, now),
            }
        }
    }

    /// Creates a sandbox bought ahead: a cold start (counted as one) that no invocation waits for.
    fn create(&mut self, c: Create, now: Time) {
        self.cold_starts += 1;
        let profile = &self.functions[self.global[c.func.index()].index()];
        let ready = now + self.model.cold_start(profile.cold_start, c.sandbox);
        self.push(ready, Event::Created(c.sandbox));
    }

    /// Queues a memory move on its device's copy channel; returns when it completes.
    fn copy(&mut self, m: MemMove, now: Time) -> Time {
        match m.to {
            Location::Device => self.bytes_to_device += m.bytes,
            Location::Host => self.bytes_to_host += m.bytes,
        }
        let dev = &mut self.devices[m.gpu.index()];
        let done = dev.copy_free.max(now) + self.model.transfer(m.bytes);
        dev.copy_free = done;
        done
    }

    fn start(&mut self, s: Start, now: Time) {
        if let Some(slot) = self.parked.remove(&s.inv.id) {
            // Its sandbox is ready and now it holds a token.
            self.exec_start(slot, now);
            return;
        }
        let profile = &self.functions[self.global[s.inv.func.index()].index()];
        let solo = self.model.work(if self.on_gpu {
            profile.gpu_warm
        } else {
            profile.cpu_warm
        });
        let mut begin = now;
        if s.cold {
            self.cold_starts += 1;
            begin += self.model.cold_start(profile.cold_start, s.sandbox);
        }
        let mut bytes_to_device = 0;
        for m in &s.moves {
            let done = self.copy(*m, now);
            if m.to == Location::Device {
                bytes_to_device += m.bytes;
            }
            begin = begin.max(done);
        }
        if let Some(t) = self.ready_at.remove(&s.sandbox) {
            begin = begin.max(t);
        }
        let mem = self.sched.memory();
        let stretch = self
            .model
            .oversubscription_factor(mem.resident(s.gpu), mem.capacity(s.gpu));
        let job = Job {
            inv: s.inv,
            sandbox: s.sandbox,
            gpu: s.gpu,
            cold: s.cold,
            dispatched: now,
            started: begin,
            solo,
            remaining: solo.as_micros() as f64,
            stretch,
            bytes_to_device,
            awaiting_ready: s.cold,
        };
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.jobs[i] = Some(job);
                i
            }
            None => {
                self.jobs.push(Some(job));
                self.jobs.len() - 1
            }
        };
        if begin == now {
            self.exec_start(slot, now);
        } else {
            self.push(begin, Event::ExecStart(slot));
        }
    }

    fn exec_start(&mut self, slot: usize, now: Time) {
        let Some(job) = self.jobs[slot].as_mut() else {
            return;
        };
        if job.awaiting_ready {
            job.awaiting_ready = false;
            if !self.sched.sandbox_ready(job.sandbox) {
                self.parked.insert(job.inv.id, slot);
                return;
            }
        }
        job.started = now;
        let g = job.gpu.index();
        self.advance(g, now);
        let dev = &mut self.devices[g];
        if dev.running.is_empty() {
            dev.busy_since = Some(now);
        }
        dev.running.push(slot);
        self.reschedule(g, now);
    }

    /// Brings every running job's remaining work on device `g` up to `now`.
    fn advance(&mut self, g: usize, now: Time) {
        let dev = &mut self.devices[g];
        let dt = now.since(dev.last_update).as_micros() as f64;
        dev.last_update = now;
        if dt == 0.0 || dev.running.is_empty() {
            return;
        }
        let rate = self.model.rate(dev.running.len());
        for &slot in &dev.running {
            if let Some(job) = self.jobs[slot].as_mut() {
                job.remaining -= dt * rate / job.stretch;
            }
        }
    }

    /// Schedules device `g`'s next completion under its current set of running jobs.
    fn reschedule(&mut self, g: usize, now: Time) {
        let dev = &mut self.devices[g];
        dev.version += 1;
        let rate = self.model.rate(dev.running.len());
        let soonest = dev
            .running
            .iter()
            .filter_map(|&s| self.jobs[s].as_ref())
            .map(|j| j.remaining.max(0.0) * j.stretch / rate)
            .fold(f64::INFINITY, f64::min);
        if soonest.is_finite() {
            let at = now + Dur::from_micros(soonest.ceil() as u64);
            let version = dev.version;
            self.push(
                at,
                Event::Completion {
                    gpu: g as u16,
                    version,
                },
            );
        }
    }

    fn complete_due(&mut self, g: usize, now: Time) {
        self.advance(g, now);
        let mut i = 0;
        while i < self.devices[g].running.len() {
            let slot = self.devices[g].running[i];
            let done = self.jobs[slot]
                .as_ref()
                .is_some_and(|j| j.remaining <= EPS_WORK);
            if !done {
                i += 1;
                continue;
            }
            self.devices[g].running.swap_remove(i);
            if let Some(job) = self.jobs[slot].take() {
                self.free_slots.push(slot);
                self.finish(job, now);
            }
        }
        let dev = &mut self.devices[g];
        if dev.running.is_empty() {
            if let Some(since) = dev.busy_since.take() {
                dev.busy += now.since(since);
            }
        }
        self.reschedule(g, now);
    }

    fn finish(&mut self, job: Job, now: Time) {
        self.sched
            .finished(job.sandbox, job.inv.func, now.since(job.started), now);
        self.records.push(InvocationRecord {
            id: job.inv.id.0,
            func: self.global[job.inv.func.index()],
            arrival: job.inv.arrival,
            dispatched: job.dispatched,
            started: job.started,
            finished: now,
            gpu: job.gpu,
            cold: job.cold,
            solo: job.solo,
            bytes_to_device: job.bytes_to_device,
        });
    }
}
