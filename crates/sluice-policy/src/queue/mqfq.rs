//! Multi-queue fair queueing (MQFQ, Hedayati et al., ATC'19) and its anticipatory, locality-aware
//! variant MQFQ-Sticky (Fuerst et al., 2025), over one flow per function.
//!
//! Tags are start-time fair queueing tags in virtual microseconds: an invocation with estimated
//! service `s` enqueued on a flow of weight `w` gets `S = max(VT, F_flow)` and `F = S + s/w`.
//! Virtual time `VT` is the smallest head start tag among backlogged flows and never decreases
//! (it keeps its value while nothing is backlogged). A backlogged flow whose head start tag exceeds
//! `VT + T` is Throttled and not eligible. Backlogged flows live in an ordered set keyed by head
//! start tag, so eligibility is a prefix of that set and no operation scans every flow:
//! enqueue, dispatch and completion cost O(log n), dispatch O(k·log n) with top-k selection.
//!
//! Both prefer, among the first `top_k` eligible flows, one with a warm sandbox (memory resident)
//! on the device the dispatch is for, as the authors' MQFQ does. MQFQ-Sticky adds (a)
//! anticipation: a flow whose queue empties stays Active for a TTL after its last completion, so
//! its sandbox and device memory stay hot; (b) cold-start avoidance: with no warm flow it takes
//! one with nothing in flight (whose cold start is unavoidable) over a running one; (c)
//! stickiness: it keeps serving the flow it last served on that GPU while that flow is
//! backlogged and eligible (the throttle threshold bounds how far this runs ahead).

use super::{DispatchCtx, FlowEvent, FlowState, QueuePolicy};
use crate::firstset::FirstSet;
use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, Invocation, Time};
use std::collections::{BTreeSet, VecDeque};

/// A new estimate re-costs a flow's queued items when it is this many times larger or smaller
/// than the one they were costed at (a bound on how often a long queue is walked).
const RETAG_RATIO: f64 = 2.0;

/// How long an emptied flow stays Active after its last completion.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ttl {
    /// A fixed number of seconds.
    AbsoluteS(f64),
    /// A multiple of the function's estimated mean execution time.
    Relative(f64),
}

/// Parameters of `mqfq` and `mqfq-sticky`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqfqParams {
    /// Throttle threshold T, in seconds of virtual (weighted service) time. Authors' run-script
    /// default: 5 s; their code default: 10 s.
    pub throttle_s: f64,
    /// Anticipation TTL of `mqfq-sticky` (plain `mqfq` uses none). Authors' run-script default:
    /// 1.5× the mean execution time.
    pub ttl: Ttl,
    /// `mqfq-sticky` looks at most this many eligible flows for one with a warm sandbox
    /// (authors: 20).
    pub top_k: usize,
    /// `mqfq-sticky` keeps serving the last flow served on a GPU while it is eligible.
    pub sticky: bool,
}

impl Default for MqfqParams {
    fn default() -> Self {
        MqfqParams {
            throttle_s: 5.0,
            ttl: Ttl::Relative(1.5),
            top_k: 20,
            sticky: true,
        }
    }
}

impl MqfqParams {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.throttle_s.is_finite() && self.throttle_s >= 0.0) {
            return Err("mqfq.throttle_s must be a non-negative number of seconds".into());
        }
        match self.ttl {
            Ttl::AbsoluteS(x) | Ttl::Relative(x) if !(x.is_finite() && x >= 0.0) => {
                return Err("mqfq.ttl must be non-negative".into())
            }
            _ => {}
        }
        if self.top_k == 0 {
            return Err("mqfq.top_k must be at least 1".into());
        }
        Ok(())
    }
}

/// A queued invocation with its start tag; its finish tag is start + cost, which the next item's
/// start tag (or the flow's `last_finish`) already accounts for.
#[derive(Copy, Clone, Debug)]
struct Item {
    inv: Invocation,
    start: u64,
}

#[derive(Debug)]
struct Flow {
    queue: VecDeque<Item>,
    weight: f64,
    /// Finish tag of the last invocation enqueued (F_flow).
    last_finish: u64,
    in_flight: u32,
    state: FlowState,
    estimate: Dur,
    /// The estimate the queued items' tags were last costed at (see [`Mqfq::retag`]).
    tagged: Dur,
    /// While idle inside its TTL: when the TTL runs out.
    ttl_deadline: Option<Time>,
}

impl Flow {
    fn new() -> Self {
        Flow {
            queue: VecDeque::new(),
            weight: 1.0,
            last_finish: 0,
            in_flight: 0,
            state: FlowState::Inactive,
            estimate: Dur::ZERO,
            tagged: Dur::ZERO,
            ttl_deadline: None,
        }
    }
}

/// MQFQ and MQFQ-Sticky. Build with [`Mqfq::plain`] or [`Mqfq::sticky`].
#[derive(Debug)]
pub struct Mqfq {
    name: &'static str,
    flows: Vec<Flow>,
    /// Backlogged flows by (head start tag, function).
    backlog: BTreeSet<(u64, u32)>,
    /// Pending TTL expiries by (deadline, function); entries are validated on expiry.
    timers: FirstSet<(Time, u32)>,
    vt: u64,
    throttle: u64,
    ttl: Option<Ttl>,
    /// Without a warm flow, take one with nothing in flight before a running one.
    avoid_second_cold: bool,
    sticky: bool,
    top_k: usize,
    /// Per GPU, the flow last dispatched there.
    last_served: Vec<Option<u32>>,
    events: Vec<FlowEvent>,
    len: usize,
}

impl Mqfq {
    /// Plain MQFQ: the warm preference only; no anticipation, no stickiness.
    pub fn plain(params: MqfqParams) -> Self {
        Self::with("mqfq", params.throttle_s, None, false, false, params.top_k)
    }

    /// MQFQ-Sticky with the given parameters.
    pub fn sticky(params: MqfqParams) -> Self {
        Self::with(
            "mqfq-sticky",
            params.throttle_s,
            Some(params.ttl),
            true,
            params.sticky,
            params.top_k,
        )
    }

    fn with(
        name: &'static str,
        throttle_s: f64,
        ttl: Option<Ttl>,
        avoid_second_cold: bool,
        sticky: bool,
        top_k: usize,
    ) -> Self {
        Mqfq {
            name,
            flows: Vec::new(),
            backlog: BTreeSet::new(),
            timers: FirstSet::new(),
            vt: 0,
            throttle: Dur::from_secs_f64(throttle_s).as_micros(),
            ttl,
            avoid_second_cold,
            sticky,
            top_k: top_k.max(1),
            last_served: Vec::new(),
            events: Vec::new(),
            len: 0,
        }
    }

    /// Current virtual time, in virtual microseconds.
    pub fn virtual_time(&self) -> u64 {
        self.vt
    }

    /// Head start tag of `func`'s flow, if backlogged.
    pub fn head_start_tag(&self, func: FunctionId) -> Option<u64> {
        self.flows
            .get(func.index())
            .and_then(|f| f.queue.front())
            .map(|i| i.start)
    }

    fn flow_mut(&mut self, func: FunctionId) -> &mut Flow {
        let i = func.index();
        if self.flows.len() <= i {
            self.flows.resize_with(i + 1, Flow::new);
        }
        &mut self.flows[i]
    }

    fn eligible(&self, start: u64) -> bool {
        start <= self.vt.saturating_add(self.throttle)
    }

    fn set_state(&mut self, f: u32, state: FlowState, now: Time) {
        let flow = &mut self.flows[f as usize];
        if flow.state != state {
            flow.state = state;
            self.events.push(FlowEvent {
                func: FunctionId(f),
                state,
                at: now,
            });
        }
    }

    /// The state a backlogged flow with head start tag `start` should have.
    fn backlogged_state(&self, start: u64) -> FlowState {
        if self.eligible(start) {
            FlowState::Active
        } else {
            FlowState::Throttled
        }
    }

    /// Inserts `f` into the backlog with its head's tag, cancelling any TTL timer.
    fn enter_backlog(&mut self, f: u32, now: Time) {
        let flow = &mut self.flows[f as usize];
        let start = flow.queue.front().map(|i| i.start).unwrap_or(0);
        if let Some(deadline) = flow.ttl_deadline.take() {
            self.timers.remove(&(deadline, f));
        }
        self.backlog.insert((start, f));
        let state = self.backlogged_state(start);
        self.set_state(f, state, now);
    }

    /// Recomputes virtual time after the backlog changed; un-throttles flows VT caught up with.
    fn advance_vt(&mut self, now: Time) {
        let Some(&(min_start, _)) = self.backlog.first() else {
            return;
        };
        if min_start <= self.vt {
            return;
        }
        let old_limit = self.vt.saturating_add(self.throttle);
        self.vt = min_start;
        let new_limit = self.vt.saturating_add(self.throttle);
        if new_limit <= old_limit {
            return;
        }
        let caught_up: Vec<u32> = self
            .backlog
            .range((old_limit + 1, 0)..=(new_limit, u32::MAX))
            .map(|&(_, f)| f)
            .collect();
        for f in caught_up {
            self.set_state(f, FlowState::Active, now);
        }
    }

    /// Re-costs the queued items of `f` at `est` when it differs from the estimate they were
    /// costed at by [`RETAG_RATIO`] or more: the head keeps its start tag (so the backlog order
    /// and virtual time are unchanged), every later item starts where the one before it now
    /// finishes, and the flow's last finish tag follows. Without this, a burst that arrives
    /// before a function's first run is costed at the estimator's prior (500 ms by default),
    /// and a 6 ms function is throttled for seconds behind tags it never consumes.
    fn retag(&mut self, f: u32, est: Dur) {
        let flow = &mut self.flows[f as usize];
        let old = flow.tagged.as_micros().max(1) as f64;
        let new = est.as_micros().max(1) as f64;
        if flow.queue.is_empty() || (new / old < RETAG_RATIO && old / new < RETAG_RATIO) {
            return;
        }
        flow.tagged = est;
        let cost = ((est.as_micros() as f64 / flow.weight).round() as u64).max(1);
        let mut next = None;
        for item in flow.queue.iter_mut() {
            if let Some(start) = next {
                item.start = start;
            }
            next = Some(item.start.saturating_add(cost));
        }
        if let Some(finish) = next {
            flow.last_finish = finish;
        }
    }

    /// A flow with an empty queue and nothing in flight starts its TTL (or goes Inactive).
    fn start_ttl(&mut self, f: u32, now: Time) {
        let flow = &self.flows[f as usize];
        let ttl = match self.ttl {
            None => Dur::ZERO,
            Some(Ttl::AbsoluteS(s)) => Dur::from_secs_f64(s),
            Some(Ttl::Relative(k)) => flow.estimate.mul_f64(k),
        };
        if ttl == Dur::ZERO {
            self.set_state(f, FlowState::Inactive, now);
            return;
        }
        let deadline = now + ttl;
        let flow = &mut self.flows[f as usize];
        if let Some(old) = flow.ttl_deadline.replace(deadline) {
            self.timers.remove(&(old, f));
        }
        self.timers.insert((deadline, f));
        self.set_state(f, FlowState::Active, now);
    }

    /// Chooses the flow to serve on `ctx.gpu`.
    ///
    /// Among the first `top_k` eligible flows both take the first with a warm sandbox here,
    /// else plain MQFQ takes the eligible flow with the smallest start tag. MQFQ-Sticky first
    /// keeps serving the flow it last served on this GPU if that flow has a warm sandbox here;
    /// with no warm flow it takes the first with nothing in flight (its cold start is
    /// unavoidable), else the first eligible flow (which will start a second sandbox).
    fn choose(&self, ctx: &DispatchCtx<'_>) -> Option<u32> {
        let gpu = ctx.gpu.index();
        if self.sticky {
            if let Some(f) = self.last_served.get(gpu).copied().flatten() {
                let head = self.flows[f as usize].queue.front();
                if head.is_some_and(|i| self.eligible(i.start)) && (ctx.warm)(FunctionId(f)) {
                    return Some(f);
                }
            }
        }
        let mut first = None;
        let mut idle_flow = None;
        for &(start, f) in self.backlog.iter().take(self.top_k) {
            if !self.eligible(start) {
                break;
            }
            if (ctx.warm)(FunctionId(f)) {
                return Some(f);
            }
            first.get_or_insert(f);
            if self.avoid_second_cold && self.flows[f as usize].in_flight == 0 {
                idle_flow.get_or_insert(f);
            }
        }
        idle_flow.or(first)
    }
}

impl QueuePolicy for Mqfq {
    fn name(&self) -> &'static str {
        self.name
    }

    fn register(&mut self, func: FunctionId, weight: f64) {
        let w = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.flow_mut(func).weight = w;
    }

    fn enqueue(&mut self, inv: Invocation, now: Time) {
        let vt = self.vt;
        let flow = self.flow_mut(inv.func);
        let start = vt.max(flow.last_finish);
        let cost = (inv.est_service.as_micros() as f64 / flow.weight).round() as u64;
        let finish = start.saturating_add(cost.max(1));
        flow.last_finish = finish;
        let was_empty = flow.queue.is_empty();
        if was_empty {
            flow.tagged = inv.est_service;
        }
        flow.queue.push_back(Item { inv, start });
        self.len += 1;
        if was_empty {
            self.enter_backlog(inv.func.0, now);
            self.advance_vt(now);
        }
    }

    fn dispatch(&mut self, now: Time, ctx: &DispatchCtx<'_>) -> Option<Invocation> {
        let f = self.choose(ctx)?;
        let flow = &mut self.flows[f as usize];
        let item = flow.queue.pop_front()?;
        flow.in_flight += 1;
        let next_start = flow.queue.front().map(|i| i.start);
        self.len -= 1;
        self.backlog.remove(&(item.start, f));
        if let Some(start) = next_start {
            self.backlog.insert((start, f));
            let state = self.backlogged_state(start);
            self.set_state(f, state, now);
        } else {
            self.set_state(f, FlowState::Active, now);
        }
        let gpu = ctx.gpu.index();
        if self.last_served.len() <= gpu {
            self.last_served.resize(gpu + 1, None);
        }
        self.last_served[gpu] = Some(f);
        self.advance_vt(now);
        Some(item.inv)
    }

    fn requeue_front(&mut self, inv: Invocation, now: Time) {
        let f = inv.func.0;
        let flow = self.flow_mut(inv.func);
        flow.in_flight = flow.in_flight.saturating_sub(1);
        // Roll the tags back: the invocation gets its cost back below the next item's start tag
        // (or the flow's last finish tag when nothing else is queued).
        let old_head = flow.queue.front().map(|i| i.start);
        let finish = old_head.unwrap_or(flow.last_finish);
        // Costed like the items it rejoins (they may have been re-costed since it left).
        if old_head.is_none() {
            flow.tagged = inv.est_service;
        }
        let cost = (flow.tagged.as_micros() as f64 / flow.weight).round() as u64;
        let start = finish.saturating_sub(cost.max(1));
        flow.queue.push_front(Item { inv, start });
        self.len += 1;
        if let Some(old) = old_head {
            self.backlog.remove(&(old, f));
        }
        self.enter_backlog(f, now);
        self.advance_vt(now);
    }

    fn complete(&mut self, func: FunctionId, now: Time) {
        let flow = self.flow_mut(func);
        flow.in_flight = flow.in_flight.saturating_sub(1);
        if flow.in_flight == 0 && flow.queue.is_empty() {
            self.start_ttl(func.0, now);
        }
    }

    fn set_estimate(&mut self, func: FunctionId, est: Dur) {
        self.flow_mut(func).estimate = est;
        self.retag(func.0, est);
    }

    fn tick(&mut self, now: Time) {
        while let Some(&(deadline, f)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            let flow = &mut self.flows[f as usize];
            if flow.ttl_deadline == Some(deadline) {
                flow.ttl_deadline = None;
                if flow.queue.is_empty() && flow.in_flight == 0 {
                    self.set_state(f, FlowState::Inactive, now);
                }
            }
        }
    }

    fn next_timer(&self) -> Option<Time> {
        self.timers.first().map(|&(t, _)| t)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn drain_events(&mut self, out: &mut Vec<FlowEvent>) {
        out.append(&mut self.events);
    }

    fn flow_state(&self, func: FunctionId) -> Option<FlowState> {
        Some(
            self.flows
                .get(func.index())
                .map_or(FlowState::Inactive, |f| f.state),
        )
    }
}

#[cfg(test)]
#[path = "mqfq_tests.rs"]
mod tests;
