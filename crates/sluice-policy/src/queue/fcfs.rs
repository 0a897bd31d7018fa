//! First come, first served: one global FIFO in arrival order.

use super::{DispatchCtx, QueuePolicy};
use sluice_core::{FunctionId, Invocation, Time};
use std::collections::VecDeque;

/// Dispatches invocations strictly in enqueue order, whatever their function.
#[derive(Debug, Default)]
pub struct Fcfs {
    queue: VecDeque<Invocation>,
}

impl Fcfs {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }
}

impl QueuePolicy for Fcfs {
    fn name(&self) -> &'static str {
        "fcfs"
    }

    fn enqueue(&mut self, inv: Invocation, _now: Time) {
        self.queue.push_back(inv);
    }

    fn dispatch(&mut self, _now: Time, _ctx: &DispatchCtx<'_>) -> Option<Invocation> {
        self.queue.pop_front()
    }

    fn requeue_front(&mut self, inv: Invocation, _now: Time) {
        self.queue.push_front(inv);
    }

    fn complete(&mut self, _func: FunctionId, _now: Time) {}

    fn len(&self) -> usize {
        self.queue.len()
    }
}
