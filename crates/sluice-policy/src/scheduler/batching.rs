//! A batch runs in one sandbox. Under a policy that batches (`batch`, see
//! [`QueuePolicy::batches_in_one_sandbox`](crate::queue::QueuePolicy::batches_in_one_sandbox)),
//! an invocation of a function whose batch is running in a sandbox with no spare capacity joins
//! that sandbox's line instead of creating a second sandbox (a cold start and a second copy of
//! the function's memory). When the sandbox finishes an invocation, the next one in its line
//! starts there at once with the same device token: warm, nothing to move. A function with
//! `concurrency` > 1 first fills its sandbox (each invocation with its own token, as always);
//! only then does the line grow. If the sandbox fails, its line goes back to the queue.

use super::{Scheduler, Start};
use crate::idmap::IdMap;
use sluice_core::{FunctionId, GpuId, Invocation, SandboxId, Time};
use std::collections::VecDeque;

/// Lines of dispatched invocations waiting for their batch's sandbox.
#[derive(Debug, Default)]
pub(super) struct Batches {
    /// Per function, the sandbox running its batch.
    running: IdMap<FunctionId, SandboxId>,
    /// Per sandbox, the invocations waiting for it, in dispatch order.
    lines: IdMap<SandboxId, VecDeque<Invocation>>,
    /// Starts decided when a sandbox finished, emitted at the next poll.
    ready: Vec<Start>,
}

impl Scheduler {
    /// Puts `inv` in the line of its function's batch sandbox if the policy batches and that
    /// sandbox is full; true if it did.
    pub(super) fn join_batch(&mut self, inv: Invocation) -> bool {
        if !self.queue.batches_in_one_sandbox() {
            return false;
        }
        let Some(&sb) = self.batches.running.get(&inv.func) else {
            return false;
        };
        match self.pool.get(sb) {
            Some(s) if s.running >= s.capacity => {
                self.batches.lines.entry(sb).or_default().push_back(inv);
                true
            }
            Some(_) => false,
            None => {
                self.batches.running.remove(&inv.func);
                false
            }
        }
    }

    /// A start of `func` in `sandbox`: under a batching policy it becomes the function's batch
    /// sandbox unless another one is running the batch.
    pub(super) fn batch_started(&mut self, func: FunctionId, sandbox: SandboxId) {
        if !self.queue.batches_in_one_sandbox() {
            return;
        }
        let current = self.batches.running.get(&func).copied();
        if current.is_none_or(|sb| self.pool.get(sb).is_none()) {
            self.batches.running.insert(func, sandbox);
        }
    }

    /// `sandbox` on `gpu` finished an invocation: if its line is not empty, its next invocation
    /// starts there with the token the finished one held. True if it did.
    pub(super) fn next_in_line(&mut self, sandbox: SandboxId, gpu: GpuId) -> bool {
        let Some(line) = self.batches.lines.get_mut(&sandbox) else {
            return false;
        };
        let Some(inv) = line.pop_front() else {
            return false;
        };
        if line.is_empty() {
            self.batches.lines.remove(&sandbox);
        }
        self.batches.ready.push(Start {
            inv,
            gpu,
            sandbox,
            cold: false,
            moves: Vec::new(),
        });
        true
    }

    /// `sandbox` of `func` went idle or away: it no longer runs the function's batch; a failed
    /// sandbox's line goes back to the head of the queue, in order.
    pub(super) fn batch_ended(&mut self, func: FunctionId, sandbox: SandboxId, now: Time) {
        if self.batches.running.get(&func) == Some(&sandbox) {
            self.batches.running.remove(&func);
        }
        if let Some(line) = self.batches.lines.remove(&sandbox) {
            for inv in line.into_iter().rev() {
                self.queue.requeue_front(inv, now);
            }
        }
    }

    /// Moves the starts decided since the last poll into `out`.
    pub(super) fn emit_ready(&mut self, out: &mut Vec<super::Action>) {
        out.extend(self.batches.ready.drain(..).map(super::Action::Start));
    }

    /// Invocations waiting in sandboxes' lines (dispatched, not started).
    pub fn in_lines(&self) -> usize {
        self.batches.lines.values().map(VecDeque::len).sum()
    }
}
