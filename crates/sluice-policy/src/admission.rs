//! Admission by predicted queueing delay: how long a new invocation of a function would wait
//! before it starts, from the work queued ahead of it and running on the devices, and whether
//! that is within the function's bound.
//!
//! [`Backlog`] is the bookkeeping: per function, the invocations queued and running and the sum
//! of their service estimates (each invocation's own `est_service`, taken when it arrived, so
//! leaving the queue subtracts exactly what joining added). It is fed by events, in O(1) each,
//! and never scans functions. [`Backlog::predict`] turns it into a predicted delay:
//!
//! - `T` device tokens serve the work, so work `w` drains in `w / T`;
//! - running work counts half (the expected residual of an invocation caught mid-way);
//! - the work *ahead* depends on the policy's [`Sharing`]: with one order over all invocations
//!   (fcfs, sjf, eedf, batch, paella) it is everything queued; with fair queueing over
//!   per-function flows (mqfq, mqfq-sticky) it is the function's own queue `q_f` plus the share
//!   the other backlogged flows get while that queue drains, `min(Q - q_f, W_other / w_f × q_f)`
//!   (`W_other`: their weights, `w_f`: its weight) — a heavy flow's backlog does not count
//!   against a light one.
//!
//! [`decide`] compares the prediction with a bound and, when it refuses, says when to retry: the
//! queue ahead drains at one second of predicted delay per second, so the excess over the bound
//! is how long until the same invocation would be admitted (rounded up to whole seconds, at
//! least one), absent new arrivals.
//!
//! Using it from another engine (the simulator): keep one [`Backlog`] beside each scheduler and
//! call [`Backlog::enqueued`] on arrival, [`Backlog::dequeued`] when an invocation leaves the
//! queue without running (cancelled, rejected), [`Backlog::started`] when it starts and
//! [`Backlog::ended`] when it finishes; or use the one inside
//! [`Scheduler`](crate::scheduler::Scheduler), which does all of that and answers
//! [`Scheduler::predict_wait`](crate::scheduler::Scheduler::predict_wait). Pure: no clock, no I/O.

use sluice_core::{Dur, FunctionId};

/// How a queueing policy shares the devices between functions, which decides the work ahead.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// One order over every invocation (fcfs, sjf, eedf, batch, paella): all queued work is ahead.
    OneOrder,
    /// Weighted fair queueing over per-function flows (mqfq, mqfq-sticky).
    FairFlows,
}

impl Sharing {
    /// The sharing of the policy called `name` (see [`crate::queue::POLICY_NAMES`]).
    pub fn of_policy(name: &str) -> Sharing {
        match name {
            "mqfq" | "mqfq-sticky" => Sharing::FairFlows,
            _ => Sharing::OneOrder,
        }
    }
}

/// One function's share of the backlog.
#[derive(Copy, Clone, Debug)]
struct Flow {
    weight: f64,
    queued: u64,
    queued_us: u64,
    running: u64,
    running_us: u64,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            weight: 1.0,
            queued: 0,
            queued_us: 0,
            running: 0,
            running_us: 0,
        }
    }
}

/// The work queued and running on one scheduler's devices, per function and in all.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    flows: Vec<Flow>,
    queued_us: u64,
    running_us: u64,
    /// Sum of the weights of functions with at least one queued invocation.
    backlogged_weight: f64,
    backlogged: usize,
}

impl Backlog {
    /// An empty backlog.
    pub fn new() -> Self {
        Self::default()
    }

    fn flow(&mut self, func: FunctionId) -> &mut Flow {
        if self.flows.len() <= func.index() {
            self.flows.resize(func.index() + 1, Flow::default());
        }
        &mut self.flows[func.index()]
    }

    /// Sets `func`'s fair-share weight (> 0; anything else counts as 1).
    pub fn set_weight(&mut self, func: FunctionId, weight: f64) {
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        let f = self.flow(func);
        let (old, backlogged) = (f.weight, f.queued > 0);
        f.weight = weight;
        if backlogged {
            self.backlogged_weight += weight - old;
        }
    }

    /// An invocation of `func` with service estimate `est` joined the queue.
    pub fn enqueued(&mut self, func: FunctionId, est: Dur) {
        let f = self.flow(func);
        f.queued += 1;
        f.queued_us = f.queued_us.saturating_add(est.as_micros());
        let (first, weight) = (f.queued == 1, f.weight);
        self.queued_us = self.queued_us.saturating_add(est.as_micros());
        if first {
            self.backlogged += 1;
            self.backlogged_weight += weight;
        }
    }

    /// An invocation of `func` that joined with estimate `est` left the queue (to start, or
    /// because it was cancelled or rejected).
    pub fn dequeued(&mut self, func: FunctionId, est: Dur) {
        let f = self.flow(func);
        if f.queued == 0 {
            return;
        }
        f.queued -= 1;
        f.queued_us = f.queued_us.saturating_sub(est.as_micros());
        let (emptied, weight) = (f.queued == 0, f.weight);
        if emptied {
            f.queued_us = 0;
        }
        self.queued_us = self.queued_us.saturating_sub(est.as_micros());
        if emptied {
            self.backlogged -= 1;
            self.backlogged_weight -= weight;
            if self.backlogged == 0 {
                // No drift from float sums survives an empty queue.
                self.backlogged_weight = 0.0;
                self.queued_us = 0;
            }
        }
    }

    /// An invocation of `func` with estimate `est` started running.
    pub fn started(&mut self, func: FunctionId, est: Dur) {
        let f = self.flow(func);
        f.running += 1;
        f.running_us = f.running_us.saturating_add(est.as_micros());
        self.running_us = self.running_us.saturating_add(est.as_micros());
    }

    /// A running invocation of `func` ended; its share of the function's running work (their
    /// mean estimate) is taken off.
    pub fn ended(&mut self, func: FunctionId) {
        let f = self.flow(func);
        if f.running == 0 {
            return;
        }
        let share = f.running_us / f.running;
        f.running -= 1;
        f.running_us -= share;
        self.running_us = self.running_us.saturating_sub(share);
    }

    /// Queued invocations of `func`.
    pub fn queued_of(&self, func: FunctionId) -> u64 {
        self.flows.get(func.index()).map_or(0, |f| f.queued)
    }

    /// Estimated work of every queued invocation.
    pub fn queued_work(&self) -> Dur {
        Dur::from_micros(self.queued_us)
    }

    /// Estimated work of every running invocation (whole estimates).
    pub fn running_work(&self) -> Dur {
        Dur::from_micros(self.running_us)
    }

    /// The predicted queueing delay of a new invocation of `func` on `tokens` device tokens (see
    /// the module doc for the model).
    pub fn predict(&self, func: FunctionId, tokens: u32, sharing: Sharing) -> Dur {
        let f = self.flows.get(func.index()).copied().unwrap_or_default();
        let ahead = match sharing {
            Sharing::OneOrder => self.queued_us,
            Sharing::FairFlows => {
                let others = self.queued_us.saturating_sub(f.queued_us);
                let own_weight = if f.queued > 0 { f.weight } else { 0.0 };
                let other_weight = (self.backlogged_weight - own_weight).max(0.0);
                let share = other_weight / f.weight.max(f64::MIN_POSITIVE) * f.queued_us as f64;
                let interleaved = if share >= others as f64 {
                    others
                } else {
                    share as u64
                };
                f.queued_us.saturating_add(interleaved)
            }
        };
        let work = ahead.saturating_add(self.running_us / 2);
        Dur::from_micros(work / u64::from(tokens.max(1)))
    }
}

/// Whether an invocation is admitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Its predicted delay is within the bound.
    Admit,
    /// Its predicted delay exceeds the bound; the same invocation would fit after `retry_after`.
    Refuse {
        /// The predicted queueing delay.
        predicted: Dur,
        /// How much `predicted` exceeds the bound, rounded up to whole seconds (at least 1).
        retry_after: Dur,
    },
}

/// Admits an invocation whose `predicted` queueing delay is at most `bound`.
pub fn decide(predicted: Dur, bound: Dur) -> Admission {
    if predicted <= bound {
        return Admission::Admit;
    }
    let excess = predicted - bound;
    let secs = excess.as_micros().div_ceil(1_000_000).max(1);
    Admission::Refuse {
        predicted,
        retry_after: Dur::from_secs(secs),
    }
}

#[cfg(test)]
mod tests;
