//! Per-function FIFOs ordered by a key of their head invocation ([`HeadOrdered`]), and the
//! queueing policy built directly on it ([`HeadPolicy`]: `sjf` and `eedf` differ only in the key).
//! Batch uses [`HeadOrdered`] too, and paella uses [`Seq`].
//!
//! Keying functions by their head (not every invocation by its own key) keeps each function FIFO
//! even when its estimate changed between enqueues. Cost: O(log n) per operation in backlogged
//! functions.

use super::{DispatchCtx, QueuePolicy};
use sluice_core::{FunctionId, Invocation, Time};
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

/// A queueing policy that always serves the function whose head has the smallest key.
#[derive(Debug)]
pub struct HeadPolicy<K> {
    name: &'static str,
    inner: HeadOrdered<K>,
}

impl<K: Ord + Copy> HeadPolicy<K> {
    pub(super) fn with_key(name: &'static str, key: fn(&Invocation) -> K) -> Self {
        HeadPolicy {
            name,
            inner: HeadOrdered::new(key),
        }
    }
}

impl<K: Ord + Copy + Send> QueuePolicy for HeadPolicy<K> {
    fn name(&self) -> &'static str {
        self.name
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
