//! Shortest job first on the estimated service time.
//!
//! Ordering rule: dispatch the head of the function whose *head* invocation has the smallest
//! `est_service`; ties go to the earlier arrival, then to the earlier enqueue. Keying functions by
//! their head (not every invocation by its own estimate) keeps each function FIFO even when its
//! estimate changed between enqueues: a short invocation queued behind a longer one of the same
//! function waits for it. Cost: O(log n) per operation in backlogged functions.

use super::heads::HeadPolicy;
use sluice_core::{Dur, Time};

/// Shortest job first, FIFO within a function (see the module documentation).
pub type Sjf = HeadPolicy<(Dur, Time)>;

impl Sjf {
    /// An empty queue.
    pub fn new() -> Self {
        HeadPolicy::with_key("sjf", |inv| (inv.est_service, inv.arrival))
    }
}

impl Default for Sjf {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{DispatchCtx, QueuePolicy};
    use sluice_core::{FunctionId, GpuId, Invocation, InvocationId};

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
