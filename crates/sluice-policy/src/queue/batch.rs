//! Batching: drain one function's queue back to back, so its sandbox and device memory stay hot.
//!
//! Ordering rule: when no batch is in progress, pick the function whose oldest queued invocation
//! is oldest (by arrival, ties by enqueue order; a requeued invocation ranks before every
//! invocation queued so far) and dispatch that function's invocations, one per `dispatch` call,
//! until `max` of them have been dispatched or its queue is empty; then pick again. Invocations of
//! the batch's function that arrive while it runs join the batch. A requeue of the batch's function
//! gives the batch back one dispatch. Functions live in the ordered set of [`HeadOrdered`]
//! (`heads.rs`) keyed by `(head arrival, head sequence number, function)`: O(log n) per operation.
//! The scheduler runs a batch in one sandbox (up to the function's `concurrency` at once), as the
//! MQFQ-Sticky authors' batching does: see `scheduler/lines.rs`.

use super::heads::HeadOrdered;
use super::{DispatchCtx, QueuePolicy};
use sluice_core::{FunctionId, Invocation, Time};

/// Per-function batches, oldest head first, optionally capped (see the module documentation).
#[derive(Debug)]
pub struct Batch {
    inner: HeadOrdered<Time>,
    /// The most invocations dispatched back to back from one function (`None`: no cap).
    max: Option<usize>,
    /// The batch in progress: its function and how many it has dispatched.
    current: Option<(FunctionId, usize)>,
}

impl Batch {
    /// A batching policy; `max` of `Some(0)` is treated as `Some(1)`.
    pub fn new(max: Option<usize>) -> Self {
        Batch {
            inner: HeadOrdered::new(|inv| inv.arrival),
            max: max.map(|m| m.max(1)),
            current: None,
        }
    }

    fn batch_full(&self, served: usize) -> bool {
        self.max.is_some_and(|m| served >= m)
    }
}

impl QueuePolicy for Batch {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn enqueue(&mut self, inv: Invocation, _now: Time) {
        self.inner.push_back(inv);
    }

    fn dispatch(&mut self, _now: Time, _ctx: &DispatchCtx<'_>) -> Option<Invocation> {
        let (func, served) = match self.current {
            Some((f, n)) if self.inner.queue_len(f) > 0 && !self.batch_full(n) => (f, n),
            _ => (self.inner.first()?, 0),
        };
        let inv = self.inner.pop_from(func)?;
        let served = served + 1;
        self.current = if self.batch_full(served) || self.inner.queue_len(func) == 0 {
            None
        } else {
            Some((func, served))
        };
        Some(inv)
    }

    fn requeue_front(&mut self, inv: Invocation, _now: Time) {
        if let Some((f, n)) = &mut self.current {
            if *f == inv.func {
                *n = n.saturating_sub(1);
            }
        }
        self.inner.push_front(inv);
    }

    fn complete(&mut self, _func: FunctionId, _now: Time) {}

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn batches_in_one_sandbox(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Dur, GpuId, InvocationId};

    fn inv(id: u64, func: u32, arrival_ms: u64) -> Invocation {
        Invocation {
            id: InvocationId(id),
            func: FunctionId(func),
            arrival: Time::from_micros(arrival_ms * 1_000),
            est_service: Dur::from_millis(10),
        }
    }

    fn one(p: &mut Batch) -> Option<u64> {
        let warm = |_: FunctionId| false;
        let ctx = DispatchCtx {
            gpu: GpuId(0),
            warm: &warm,
        };
        p.dispatch(Time::ZERO, &ctx).map(|i| i.id.0)
    }

    fn drain(p: &mut Batch) -> Vec<u64> {
        std::iter::from_fn(|| one(p)).collect()
    }

    #[test]
    fn drains_the_oldest_head_function_without_a_cap() {
        let mut p = Batch::new(None);
        p.enqueue(inv(1, 0, 0), Time::ZERO);
        p.enqueue(inv(2, 1, 1), Time::ZERO);
        p.enqueue(inv(3, 0, 2), Time::ZERO);
        p.enqueue(inv(4, 1, 3), Time::ZERO);
        p.enqueue(inv(5, 0, 4), Time::ZERO);
        assert_eq!(drain(&mut p), vec![1, 3, 5, 2, 4]);
    }

    #[test]
    fn caps_the_batch_then_switches_to_the_oldest_head() {
        let mut p = Batch::new(Some(2));
        for (id, func, at) in [(1, 0, 0), (2, 0, 1), (3, 0, 2), (4, 1, 3), (5, 2, 4)] {
            p.enqueue(inv(id, func, at), Time::ZERO);
        }
        // Function 0 for two, then function 0's head (arrival 2) is older than 1's and 2's.
        assert_eq!(one(&mut p), Some(1));
        assert_eq!(one(&mut p), Some(2));
        assert_eq!(one(&mut p), Some(3));
        // Function 0 emptied: oldest head is function 1, then function 2.
        assert_eq!(drain(&mut p), vec![4, 5]);
    }

    #[test]
    fn capped_batch_yields_to_an_older_head() {
        let mut p = Batch::new(Some(2));
        for (id, func, at) in [(1, 0, 0), (2, 1, 1), (3, 0, 2), (4, 0, 3), (5, 1, 4)] {
            p.enqueue(inv(id, func, at), Time::ZERO);
        }
        assert_eq!(drain(&mut p), vec![1, 3, 2, 5, 4]);
    }

    #[test]
    fn arrivals_join_the_running_batch() {
        let mut p = Batch::new(None);
        p.enqueue(inv(1, 0, 0), Time::ZERO);
        p.enqueue(inv(2, 0, 1), Time::ZERO);
        p.enqueue(inv(3, 1, 2), Time::ZERO);
        assert_eq!(one(&mut p), Some(1));
        p.enqueue(inv(4, 0, 5), Time::ZERO);
        assert_eq!(drain(&mut p), vec![2, 4, 3]);
    }

    #[test]
    fn requeue_gives_the_batch_a_dispatch_back() {
        let mut p = Batch::new(Some(2));
        for (id, func, at) in [(1, 0, 0), (2, 0, 1), (3, 0, 2), (4, 1, 3)] {
            p.enqueue(inv(id, func, at), Time::ZERO);
        }
        assert_eq!(one(&mut p), Some(1));
        p.requeue_front(inv(1, 0, 0), Time::ZERO);
        assert_eq!(one(&mut p), Some(1));
        assert_eq!(one(&mut p), Some(2));
        assert_eq!(one(&mut p), Some(3));
        assert_eq!(one(&mut p), Some(4));
        assert_eq!(one(&mut p), None);
    }
}
