//! Earliest expected deadline first, as in the Ilúvatar worker: an invocation's expected deadline
//! is `arrival + est_service`.
//!
//! Ordering rule: dispatch the head of the function whose *head* invocation has the earliest
//! expected deadline; ties go to the earlier enqueue (a requeued invocation ranks before every
//! invocation queued so far). Functions are keyed by their head, as in SJF (the shared
//! structure of `heads.rs`), so each function stays FIFO even when its estimate
//! changed between enqueues. Cost: O(log n) per operation in backlogged functions.

use super::heads::HeadPolicy;
use sluice_core::Time;

/// Earliest expected deadline first, FIFO within a function (see the module documentation).
pub type Eedf = HeadPolicy<Time>;

impl Eedf {
    /// An empty queue.
    pub fn new() -> Self {
        HeadPolicy::with_key("eedf", |inv| inv.arrival + inv.est_service)
    }
}

impl Default for Eedf {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{DispatchCtx, QueuePolicy};
    use sluice_core::{Dur, FunctionId, GpuId, Invocation, InvocationId};

    fn inv(id: u64, func: u32, arrival_ms: u64, est_ms: u64) -> Invocation {
        Invocation {
            id: InvocationId(id),
            func: FunctionId(func),
            arrival: Time::from_micros(arrival_ms * 1_000),
            est_service: Dur::from_millis(est_ms),
        }
    }

    fn drain(p: &mut Eedf) -> Vec<u64> {
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
    fn picks_the_earliest_expected_deadline() {
        let mut p = Eedf::new();
        // Deadlines: 0 + 500 = 500, 100 + 300 = 400, 200 + 50 = 250.
        p.enqueue(inv(1, 0, 0, 500), Time::ZERO);
        p.enqueue(inv(2, 1, 100, 300), Time::ZERO);
        p.enqueue(inv(3, 2, 200, 50), Time::ZERO);
        assert_eq!(drain(&mut p), vec![3, 2, 1]);
    }

    #[test]
    fn ties_go_to_enqueue_order() {
        let mut p = Eedf::new();
        p.enqueue(inv(1, 2, 100, 100), Time::ZERO);
        p.enqueue(inv(2, 0, 0, 200), Time::ZERO);
        p.enqueue(inv(3, 1, 150, 50), Time::ZERO);
        assert_eq!(drain(&mut p), vec![1, 2, 3]);
    }

    #[test]
    fn stays_fifo_within_a_function() {
        let mut p = Eedf::new();
        // Function 0: deadlines 1000 then 20; function 1: deadline 500.
        p.enqueue(inv(1, 0, 0, 1000), Time::ZERO);
        p.enqueue(inv(2, 0, 10, 10), Time::ZERO);
        p.enqueue(inv(3, 1, 0, 500), Time::ZERO);
        assert_eq!(drain(&mut p), vec![3, 1, 2]);
    }
}
