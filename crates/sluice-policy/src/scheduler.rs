//! The scheduling core that both engines drive: a queueing policy, device tokens, device memory,
//! the warm pool and service estimates composed into one event-driven state machine.
//!
//! The engine reports what happened (an invocation arrived, a sandbox finished starting, an
//! invocation finished) and calls [`Scheduler::poll`]; the scheduler answers with [`Action`]s:
//! start this invocation in this sandbox on this device after these memory moves; move this idle
//! sandbox's memory; destroy this sandbox. The simulator carries actions out on its device model,
//! the worker on real processes and GPUs.
//!
//! Every invocation that runs holds one device token until it finishes, also when it shares a
//! sandbox with others (a function with `concurrency` > 1): sharing saves the cold start and the
//! memory, not the token. A cold start does not hold one while its sandbox is created (unless
//! configured to); the invocation takes one when the sandbox is ready (`creating`). An invocation may wait in the line of a busy sandbox of its function
//! rather than cold-start another (always under a batching policy: a batch runs in one sandbox;
//! otherwise when that is expected to be quicker; `lines`).
//!
//! One dispatch step asks the queueing policy for an invocation in the context of the
//! least-loaded device with a free token (for its warm preference), then chooses the device
//! together with the function: placement (`placing`) sends it to a device that holds its warm
//! sandbox or resident memory, else to its home, spilling only when the home is over its load
//! bound. A function that keeps co-running on a busy device while most devices idle (`spread`),
//! or whose calls keep waiting in a line (`lines`), buys a second sandbox once the time lost
//! adds up to a cold start; the sandbox is created ahead, with no call waiting for it, while the
//! call that tipped the balance runs as it would have (`ahead`). Lifecycle events live in
//! `lifecycle`, the vocabulary in `types`.
//!
//! No invocation blocks others: one that can never be placed (its sandbox needs more device
//! memory than any device has) is taken off the queue and answered with [`Action::Reject`]; one
//! that cannot be placed *now* (the creation cap, memory held by running sandboxes) is set aside
//! for the rest of the dispatch round, with every later invocation of its function (so each
//! function stays FIFO), and the round goes on with other functions. Admission (a new
//! invocation's predicted wait), cancelling queued invocations and putting back one whose warm
//! sandbox was found dead are in `admission`. An invocation waiting in a sandbox's line counts as
//! queued for admission and can be cancelled there.

mod admission;
mod ahead;
mod cold_causes;
mod creating;
mod lifecycle;
mod lines;
mod placing;
mod spread;
mod token_lines;
mod types;

pub use cold_causes::ColdCauses;
pub use types::{
    Action, ConfigError, Create, FunctionInfo, Reject, RejectReason, SchedulerConfig, Start,
};

use crate::admission::{Backlog, Sharing};
use crate::estimator::Estimator;
use crate::idmap::{DenseMap, IdMap, IdSet};
use crate::keepalive::{Acquire, KeepAliveParams, WarmPool};
use crate::memory::{AdmitError, DeviceMemory, FlowCoupling, Location, MemMove, Rank};
use crate::placement::Placement;
use crate::queue::{self, DispatchCtx, FlowEvent, FlowState, QueuePolicy};
use crate::slots::DeviceSlots;
use sluice_core::{Dur, FunctionId, GpuId, Invocation, InvocationId, SandboxId, Time};

/// Most invocations one dispatch round sets aside because their function cannot be placed now;
/// bounds the work of a round when a blocked function has a long queue ahead of others.
const MAX_SET_ASIDE: usize = 64;

/// The outcome of trying to place one dispatched invocation.
enum Outcome {
    Started,
    /// Not now: try again in a later round.
    Later,
    /// Never on these devices.
    Never(RejectReason),
}

/// The composed scheduling state machine.
pub struct Scheduler {
    queue: Box<dyn QueuePolicy>,
    slots: DeviceSlots,
    memory: DeviceMemory,
    pool: WarmPool,
    estimator: Estimator,
    functions: Vec<FunctionInfo>,
    coupling: FlowCoupling,
    events: Vec<FlowEvent>,
    /// Sandboxes that failed while several invocations ran in them: their device, and how many
    /// of those invocations have not yet been reported (each still holds its token).
    orphans: IdMap<SandboxId, (GpuId, u32)>,
    /// The devices as placement bins (loads: tokens in use).
    placement: Placement<GpuId>,
    /// Scratch for placement hints.
    hints: Vec<(GpuId, u8)>,
    keepalive: KeepAliveParams,
    /// Sum and count of registered functions' device memory (for the pool's derived caps).
    function_memory: (u128, u64),
    lines: lines::Lines,
    token_lines: token_lines::TokenLines,
    creating: creating::Creating,
    cold_start_holds_token: bool,
    /// Work queued and running, for admission.
    backlog: Backlog,
    sharing: Sharing,
    /// Every queued (not yet started, not cancelled) invocation, also those waiting in a
    /// sandbox's line: its function and estimate.
    waiting: IdMap<InvocationId, (FunctionId, Dur)>,
    /// Cancelled invocations still in the queue policy or a line; dropped when handed out.
    cancelled: IdSet<InvocationId>,
    /// Per function, its co-running debt (`spread`).
    corun: DenseMap<FunctionId, spread::Debt>,
    /// Per function, the sandbox bought ahead for it that is still being created (`ahead`).
    ahead: DenseMap<FunctionId, SandboxId>,
    /// Sandbox creations by cause (`cold_causes`).
    cold_causes: ColdCauses,
    /// The functions that have had a sandbox (`cold_causes`).
    had_sandbox: DenseMap<FunctionId, ()>,
}

impl Scheduler {
    /// A scheduler over devices with the given memory capacities (bytes), one entry per device.
    pub fn new(cfg: &SchedulerConfig, gpu_memory: Vec<u64>) -> Result<Self, ConfigError> {
        cfg.slots.validate().map_err(ConfigError::Invalid)?;
        cfg.memory.validate().map_err(ConfigError::Invalid)?;
        cfg.keepalive.validate().map_err(ConfigError::Invalid)?;
        cfg.estimator.validate().map_err(ConfigError::Invalid)?;
        if gpu_memory.is_empty() || gpu_memory.len() > u16::MAX as usize {
            return Err(ConfigError::Invalid(
                "need between 1 and 65535 devices".into(),
            ));
        }
        let placement =
            placing::device_ring(&cfg.placement, gpu_memory.len(), cfg.slots.tokens_per_gpu)
                .map_err(ConfigError::Invalid)?;
        let mut s = Scheduler {
            sharing: Sharing::of_policy(&cfg.policy),
            backlog: Backlog::new(),
            waiting: IdMap::default(),
            cancelled: IdSet::default(),
            corun: DenseMap::default(),
            ahead: DenseMap::default(),
            cold_causes: ColdCauses::default(),
            had_sandbox: DenseMap::default(),
            queue: queue::build(&cfg.policy, &cfg.queue)?,
            slots: DeviceSlots::new(gpu_memory.len(), &cfg.slots),
            memory: DeviceMemory::new(gpu_memory, &cfg.memory),
            pool: WarmPool::new(&cfg.keepalive, crate::keepalive::PoolLimits::unlimited()),
            estimator: Estimator::new(&cfg.estimator),
            functions: Vec::new(),
            coupling: cfg.memory.flow_coupling,
            events: Vec::new(),
            orphans: IdMap::default(),
            placement,
            hints: Vec::new(),
            keepalive: cfg.keepalive.clone(),
            function_memory: (0, 0),
            lines: lines::Lines::default(),
            token_lines: token_lines::TokenLines::default(),
            creating: creating::Creating::default(),
            cold_start_holds_token: cfg.slots.cold_start_holds_token,
        };
        s.pool.set_limits(s.pool_limits());
        Ok(s)
    }

    /// Declares (or updates) a function.
    pub fn register(&mut self, func: FunctionId, info: FunctionInfo) {
        if self.functions.len() <= func.index() {
            self.functions
                .resize(func.index() + 1, FunctionInfo::default());
        }
        let old = std::mem::replace(&mut self.functions[func.index()], info);
        let (sum, count) = &mut self.function_memory;
        if old.gpu_mem_bytes > 0 {
            *sum -= u128::from(old.gpu_mem_bytes);
            *count -= 1;
        }
        if info.gpu_mem_bytes > 0 {
            *sum += u128::from(info.gpu_mem_bytes);
            *count += 1;
        }
        self.pool.set_limits(self.pool_limits());
        if let Some(d) = info.fixed_estimate {
            self.estimator.set_fixed(func, d);
        }
        self.queue.register(func, info.weight);
        self.queue.set_estimate(func, self.estimator.estimate(func));
        self.backlog.set_weight(func, info.weight);
    }

    fn info(&self, func: FunctionId) -> FunctionInfo {
        self.functions
            .get(func.index())
            .copied()
            .unwrap_or_default()
    }

    /// An invocation of `func` arrived. Ids must be unique among queued invocations.
    pub fn submit(&mut self, id: InvocationId, func: FunctionId, now: Time) {
        let inv = Invocation {
            id,
            func,
            arrival: now,
            est_service: self.estimator.estimate(func),
        };
        self.waiting.insert(id, (func, inv.est_service));
        self.backlog.enqueued(func, inv.est_service);
        self.queue.enqueue(inv, now);
    }

    /// Records a device utilisation sample for the slot gate.
    pub fn set_util(&mut self, gpu: GpuId, util: f64) {
        self.slots.set_util(gpu, util);
    }

    /// Runs timers due at `now`, dispatches what may start, and emits the resulting actions.
    /// Flow-state changes are applied before dispatching (so a flow that just turned Active has
    /// its memory on the way before it starts) and again after (dispatch changes states too).
    pub fn poll(&mut self, now: Time, out: &mut Vec<Action>) {
        self.emit_ready(out);
        self.queue.tick(now);
        // Spare keep-alive: past its TTL a sandbox lingers only while it holds resident device
        // memory; if room is needed it is destroyed rather than pushed out (`drop_lingering`).
        let memory = &self.memory;
        for sb in self.pool.expire(now, |sb| memory.holds_resident(sb)) {
            self.memory.remove(sb.id);
            out.push(Action::Destroy(sb.id));
        }
        self.apply_flow_events(out);
        self.dispatch(now, out);
        self.apply_flow_events(out);
    }

    fn dispatch(&mut self, now: Time, out: &mut Vec<Action>) {
        // Invocations whose function cannot be placed now, in the order the policy gave them;
        // they go back to the heads of their queues when the round ends.
        let mut aside: Vec<Invocation> = Vec::new();
        let mut blocked: Vec<FunctionId> = Vec::new();
        self.serve_ready_lines(now, out);
        self.serve_token_lines(now, out);
        while !self.queue.is_empty() && aside.len() < MAX_SET_ASIDE {
            // The queueing policy chooses for the least-loaded device with a free token (its
            // warm preference looks there); placement then chooses the device for the function.
            let Some(candidate) = self.slots.least_loaded() else {
                break;
            };
            let (pool, memory) = (&self.pool, &self.memory);
            let warm = |f: FunctionId| placing::warm_on(pool, memory, f, candidate);
            let ctx = DispatchCtx {
                gpu: candidate,
                warm: &warm,
            };
            let Some(inv) = self.queue.dispatch(now, &ctx) else {
                break;
            };
            if self.cancelled.remove(&inv.id) {
                // Leaves without a token, a start or a sample for the estimator.
                self.queue.complete(inv.func, now);
                continue;
            }
            if blocked.contains(&inv.func) {
                aside.push(inv);
                continue;
            }
            if self.join_line(inv, now, out) || self.join_token_line(inv, now) {
                continue;
            }
            let gpu = self.device_for(inv.func, candidate);
            let gpu = self.spread(inv.func, gpu, now, out);
            if !self.take_token(gpu) {
                aside.push(inv);
                blocked.push(inv.func);
                continue;
            }
            match self.place(inv, gpu, now, out) {
                Outcome::Started => self.started(&inv),
                Outcome::Later => {
                    aside.push(inv);
                    blocked.push(inv.func);
                    self.return_token(gpu);
                }
                Outcome::Never(reason) => self.reject(inv, gpu, reason, now, out),
            }
        }
        for inv in aside.into_iter().rev() {
            self.queue.requeue_front(inv, now);
        }
    }

    /// `inv`, dispatched with a token of `gpu`, can never be placed: the token goes back and it
    /// leaves with [`Action::Reject`].
    fn reject(
        &mut self,
        inv: Invocation,
        gpu: GpuId,
        reason: RejectReason,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        self.queue.complete(inv.func, now);
        self.return_token(gpu);
        self.waiting.remove(&inv.id);
        self.backlog.dequeued(inv.func, inv.est_service);
        out.push(Action::Reject(Reject { inv, reason }));
    }

    /// `inv` left the queue (or a line) and starts: admission counts its work as running.
    fn started(&mut self, inv: &Invocation) {
        self.waiting.remove(&inv.id);
        self.backlog.dequeued(inv.func, inv.est_service);
        self.backlog.started(inv.func, inv.est_service);
    }

    /// Finds a sandbox and memory for `inv` on `gpu`.
    fn place(&mut self, inv: Invocation, gpu: GpuId, now: Time, out: &mut Vec<Action>) -> Outcome {
        let memory = &self.memory;
        let resident = |sb| memory.location(sb) == Some(Location::Device);
        let capacity = self.info(inv.func).concurrency;
        let (sandbox, cause) = match self.pool.acquire(inv.func, gpu, capacity, now, resident) {
            Acquire::Warm(sb) | Acquire::Shared(sb) => (sb, None),
            Acquire::Cold(sb) => {
                // The new sandbox is neither idle nor in a line yet; counted only if it starts.
                let cause = self.cold_cause(inv.func);
                let bytes = self.info(inv.func).gpu_mem_bytes;
                let rank = self.rank_of(inv.func);
                self.memory.add(sb, gpu, bytes, rank, now);
                (sb, Some(cause))
            }
            Acquire::Blocked => return Outcome::Later,
        };
        let cold = cause.is_some();
        let err = match self.memory.admit(sandbox, now) {
            Ok(moves) => {
                let moves = self.drop_lingering(moves, out);
                out.push(Action::Start(Start {
                    inv,
                    gpu,
                    sandbox,
                    cold,
                    moves,
                }));
                self.line_started(inv.func, sandbox, cold, now);
                if let Some(cause) = cause {
                    self.count_paid(inv.func, cause);
                    self.creation_started(inv, sandbox, gpu);
                }
                for sb in self.pool.trim_device(gpu) {
                    self.memory.remove(sb.id);
                    out.push(Action::Destroy(sb.id));
                }
                return Outcome::Started;
            }
            Err(e) => e,
        };
        if cold {
            self.pool.remove(sandbox);
            self.memory.remove(sandbox);
        } else {
            self.pool.release(sandbox, now);
        }
        let largest = (0..self.slots.gpus())
            .map(|g| self.memory.limit(GpuId(g as u16)))
            .max()
            .unwrap_or(0);
        match err {
            AdmitError::TooLarge { need, .. } if need > largest => {
                Outcome::Never(RejectReason::TooLarge { need, largest })
            }
            _ => Outcome::Later,
        }
    }

    /// `moves` that make room on a device, less the pushes to host of lingering sandboxes
    /// (spare keep-alive): those are destroyed instead (in `out`), their memory freed with no
    /// copy.
    fn drop_lingering(&mut self, mut moves: Vec<MemMove>, out: &mut Vec<Action>) -> Vec<MemMove> {
        moves.retain(|&m| {
            let forgone = self.forgo_push(m);
            if forgone {
                out.push(Action::Destroy(m.sandbox));
            }
            !forgone
        });
        moves
    }

    /// Turns each push to host of a lingering sandbox among `actions` into its destruction
    /// (spare keep-alive, as [`Scheduler::drop_lingering`]).
    fn destroy_lingering_pushed(&mut self, actions: &mut [Action]) {
        for a in actions {
            if let Action::Move(m) = *a {
                if self.forgo_push(m) {
                    *a = Action::Destroy(m.sandbox);
                }
            }
        }
    }

    /// If `m` pushes a lingering sandbox to host, forgets that sandbox instead (pool and memory;
    /// the caller emits its destruction) and returns true.
    fn forgo_push(&mut self, m: MemMove) -> bool {
        let forgo = m.to == Location::Host && self.pool.is_lingering(m.sandbox);
        if forgo {
            self.pool.remove(m.sandbox);
            self.memory.remove(m.sandbox);
        }
        forgo
    }

    /// The eviction rank that `func`'s flow state gives its idle sandboxes.
    fn rank_of(&self, func: FunctionId) -> Rank {
        rank_in(self.queue.flow_state(func))
    }

    /// Turns flow-state changes into memory ranks and moves, per the configured coupling.
    fn apply_flow_events(&mut self, out: &mut Vec<Action>) {
        self.queue.drain_events(&mut self.events);
        if self.coupling == FlowCoupling::Off {
            self.events.clear();
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        for ev in events.drain(..) {
            let rank = rank_in(Some(ev.state));
            let to = match (ev.state, self.coupling) {
                (FlowState::Active, _) => Some(Location::Device),
                (_, FlowCoupling::Eager) => Some(Location::Host),
                _ => None,
            };
            let first = out.len();
            for sb in self.pool.idle_of(ev.func) {
                let mv = self.memory.follow_flow(sb, rank, to);
                out.extend(mv.map(Action::Move));
            }
            if to == Some(Location::Host) {
                self.destroy_lingering_pushed(&mut out[first..]);
            }
        }
        self.events = events;
    }

    /// The earliest instant at which [`Scheduler::poll`] has timer work.
    pub fn next_timer(&self) -> Option<Time> {
        [
            self.queue.next_timer(),
            self.pool.next_expiry(),
            self.token_lines.next_give_up(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Queued invocations, also those waiting in a sandbox's line (cancelled ones not counted).
    pub fn queued(&self) -> usize {
        self.waiting.len()
    }

    /// The queueing policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.queue.name()
    }

    /// `func`'s flow state, for flow-based policies.
    pub fn flow_state(&self, func: FunctionId) -> Option<FlowState> {
        self.queue.flow_state(func)
    }

    /// Tokens in use on `gpu`.
    pub fn tokens_in_use(&self, gpu: GpuId) -> u32 {
        self.slots.in_use(gpu)
    }

    /// Read access to memory residency and the pool, for metrics and tests.
    pub fn memory(&self) -> &DeviceMemory {
        &self.memory
    }

    /// Read access to the warm pool: every sandbox, its device and its state.
    pub fn pool(&self) -> &WarmPool {
        &self.pool
    }

    /// The current service-time estimate of `func`.
    pub fn estimate(&self, func: FunctionId) -> Dur {
        self.estimator.estimate(func)
    }
}

/// The eviction rank of the idle sandboxes of a function in flow `state` (`None`: the policy has
/// no flows): an Active flow's are kept longest, the rest share one LRU order.
fn rank_in(state: Option<FlowState>) -> Rank {
    match state {
        Some(FlowState::Active) => Rank::Hot,
        Some(FlowState::Throttled | FlowState::Inactive) | None => Rank::Normal,
    }
}

#[cfg(test)]
mod cold_causes_tests;
#[cfg(test)]
mod creating_tests;
#[cfg(test)]
mod placing_tests;
#[cfg(test)]
mod progress_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod spread_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_lines_tests;
