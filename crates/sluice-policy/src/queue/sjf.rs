//! Shortest job first on the estimated service time, and [`HeadOrdered`], the per-function FIFOs
//! ordered by a key of their head invocation that SJF, EEDF and batch share.
//!
//! Ordering rule: dispatch the head of the function whose *head* invocation has the smallest
//! `est_service`; ties go to the earlier arrival, then to the earlier enqueue. Keying functions by
//! their head (not every invocation by its own estimate) keeps each function FIFO even when its
//! estimate changed between enqueues: a short invocation queued behind a longer one of the same
//! function waits for it. Cost: O(log n) per operation in backlogged functions.

use super::{DispatchCtx, QueuePolicy};
use sluice_core::{Dur, FunctionId, Invocation, Time};
use std::collections::{BTreeSet, VecDeque};

/// Sequence numbers of queued invocations: enqueues count up from the middle of the range,
/// requeues count down from just below it, so a requeued invocation ranks before every invocation
/// queued so far (it was dispatched once already) and all numbers stay distinct.
#[derive(Debug)]
pub(super) struct Seq {
    back: u64,
    front: u64,
}

impl Seq {
    const MID: u64 = 1 << 63;

    pub(super) fn new() -> Self {
        Seq {
            back: Self::MID,
            front: Self::MID - 1,
        }
    }

    /// The number for an invocation enqueued at the tail.
    pub(super) fn next_back(&mut self) -> u64 {
        let s = self.back;
        self.back = self.back.saturating_add(1);
        s
    }

    /// The number for an invocation put back at the head.
    pub(super) fn next_front(&mut self) -> u64 {
        let s = self.front;
        self.front = self.front.saturating_sub(1);
        s
    }
}

/// Per-function FIFOs plus an ordered set of backlogged functions keyed by
/// `(key(head), head sequence number, function)`; the set's first entry is the next to serve.
#[derive(Debug)]
pub(super) struct HeadOrdered<K> {
    key: fn(&Invocation) -> K,
    queues: Vec<VecDeque<(Invocation, u64)>>,
    heads: BTreeSet<(K, u64, u32)>,
    seq: Seq,
    len: usize,
}

impl<K: Ord + Copy> HeadOrdered<K> {
    pub(super) fn new(key: fn(&Invocation) -> K) -> Self {
        HeadOrdered {
            key,
            queues: Vec::new(),
            heads: BTreeSet::new(),
            seq: Seq::new(),
            len: 0,
        }
    }

    fn queue_mut(&mut self, f: u32) -> &mut VecDeque<(Invocation, u64)> {
        let i = f as usize;
        if self.queues.len() <= i {
            self.queues.resize_with(i + 1, VecDeque::new);
        }
        &mut self.queues[i]
    }

    fn head_entry(&self, f: u32) -> Option<(K, u64, u32)> {
        self.queues
            .get(f as usize)
            .and_then(|q| q.front())
            .map(|(inv, seq)| ((self.key)(inv), *seq, f))
    }

    /// Adds `inv` at the tail of its function's queue.
    pub(super) fn push_back(&mut self, inv: Invocation) {
        let seq = self.seq.next_back();
        let f = inv.func.0;
        let q = self.queue_mut(f);
        q.push_back((inv, seq));
        if q.len() == 1 {
            let entry = ((self.key)(&inv), seq, f);
            self.heads.insert(entry);
        }
        self.len += 1;
    }

    /// Puts `inv` back at the head of its function's queue.
    pub(super) fn push_front(&mut self, inv: Invocation) {
        let seq = self.seq.next_front();
        let f = inv.func.0;
        if let Some(old) = self.head_entry(f) {
            self.heads.remove(&old);
        }
        self.queue_mut(f).push_front((inv, seq));
        self.heads.insert(((self.key)(&inv), seq, f));
        self.len += 1;
    }

    /// The function whose head ranks first.
    pub(super) fn first(&self) -> Option<FunctionId> {
        self.heads.first().map(|&(_, _, f)| FunctionId(f))
    }

    /// Removes and returns the head of `func`'s queue, re-keying the function on its new head.
    pub(super) fn pop_from(&mut self, func: FunctionId) -> Option<Invocation> {
        let f = func.0;
        let old = self.head_entry(f)?;
        self.heads.remove(&old);
        let (inv, _) = self.queues.get_mut(f as usize)?.pop_front()?;
        if let Some(new) = self.head_entry(f) {
            self.heads.insert(new);
        }
        self.len -= 1;
        Some(inv)
    }

    /// Removes and returns the head of the function that ranks first.
    pub(super) fn pop_first(&mut self) -> Option<Invocation> {
        let f = self.first()?;
        self.pop_from(f)
    }

    /// Number of queued invocations of `func`.
    pub(super) fn queue_len(&self, func: FunctionId) -> usize {
        self.queues.get(func.index()).map_or(0, VecDeque::len)
    }

    /// Number of queued invocations.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// Shortest job first, FIFO within a function (see the module documentation).
#[derive(Debug)]
pub struct Sjf {
    inner: HeadOrdered<(Dur, Time)>,
}

impl Default for Sjf {
    fn default() -> Self {
        Self::new()
    }
}

impl Sjf {
    pub fn new() -> Self {
        Sjf {
            inner: HeadOrdered::new(|inv| (inv.est_service, inv.arrival)),
        }
    }
}

impl QueuePolicy for Sjf {
    fn name(&self) -> &'static str {
        "sjf"
    }

    fn enqueue(&mut self, inv: Invocation, _now: Time) {
        self.inner.push_back(inv);
    }

    fn dispatch(&mut self, _now: Time, _ctx: &DispatchCtx<'_>) -> Option<Invocation> {
        self.inner.pop_first()
    }

    fn requeue_front(&mut self, inv: Invocation, _now: Time) {
        self.inner.push_front(inv);
    }

    fn complete(&mut self, _func: FunctionId, _now: Time) {}

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{GpuId, InvocationId};

    fn inv(id: u64, func: u32, arrival_ms: u64, est_ms: u64) -> Invocation {
        Invocation {
            id: InvocationId(id),
            func: FunctionId(func),
            arrival: Time::from_micros(arrival_ms * 1_000),
            est_service: Dur::from_millis(est_ms),
        }
    }

    fn drain(p: &mut Sjf) -> Vec<u64> {
        let warm = |_: FunctionId| false;
        let ctx = DispatchCtx {
            gpu: GpuId(0),
            warm: &warm,
        };
        std::iter::from_fn(|| p.dispatch(Time::ZERO, &ctx))
            .map(|i| i.id.0)
            .collect()
    }

    #[test]
    fn picks_the_shortest_head() {
        let mut p = Sjf::new();
        p.enqueue(inv(1, 0, 0, 300), Time::ZERO);
        p.enqueue(inv(2, 1, 1, 100), Time::ZERO);
        p.enqueue(inv(3, 2, 2, 200), Time::ZERO);
        assert_eq!(drain(&mut p), vec![2, 3, 1]);
    }

    #[test]
    fn ties_go_to_the_earlier_arrival_then_enqueue() {
        let mut p = Sjf::new();
        p.enqueue(inv(1, 0, 5, 100), Time::ZERO);
        p.enqueue(inv(2, 1, 3, 100), Time::ZERO);
        p.enqueue(inv(3, 2, 3, 100), Time::ZERO);
        assert_eq!(drain(&mut p), vec![2, 3, 1]);
    }

    #[test]
    fn stays_fifo_within_a_function_when_its_estimate_changed() {
        let mut p = Sjf::new();
        p.enqueue(inv(1, 0, 0, 500), Time::ZERO);
        p.enqueue(inv(2, 0, 1, 10), Time::ZERO);
        p.enqueue(inv(3, 1, 2, 100), Time::ZERO);
        // Function 0's head (500 ms) ranks after function 1 (100 ms); then 1 and 2 in order.
        assert_eq!(drain(&mut p), vec![3, 1, 2]);
    }

    #[test]
    fn requeued_invocation_ranks_by_its_own_estimate() {
        let mut p = Sjf::new();
        p.enqueue(inv(1, 0, 0, 100), Time::ZERO);
        p.enqueue(inv(2, 1, 1, 200), Time::ZERO);
        let warm = |_: FunctionId| false;
        let ctx = DispatchCtx {
            gpu: GpuId(0),
            warm: &warm,
        };
        let first = p.dispatch(Time::ZERO, &ctx);
        assert_eq!(first.map(|i| i.id.0), Some(1));
        if let Some(first) = first {
            p.requeue_front(first, Time::ZERO);
        }
        assert_eq!(drain(&mut p), vec![1, 2]);
    }
}
