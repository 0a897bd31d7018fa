//! The queue side of admission: a new invocation's predicted wait (the pure model is
//! [`crate::admission`]), cancelling queued invocations, and putting back an invocation whose
//! warm sandbox turned out to be dead before it was sent there.

use super::Scheduler;
use crate::admission::Backlog;
use sluice_core::{Dur, FunctionId, Invocation, InvocationId, SandboxId, Time};

impl Scheduler {
    /// Device tokens in all (devices × D): how many invocations run at once.
    pub fn tokens(&self) -> u32 {
        (self.slots.gpus() as u32).saturating_mul(self.slots.tokens_per_gpu())
    }

    /// How long a new invocation of `func` is predicted to wait before it starts, from the work
    /// queued ahead of it and running now (see [`crate::admission`]).
    pub fn predict_wait(&self, func: FunctionId) -> Dur {
        self.backlog.predict(func, self.tokens(), self.sharing)
    }

    /// The queued and running work the prediction is made from.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Counts one more invocation of `func` as queued before it is submitted (an engine that
    /// admits it, then stores it durably, then submits it): admissions in between see it.
    /// Returns the estimate it was counted with, for [`Scheduler::release`].
    pub fn reserve(&mut self, func: FunctionId) -> Dur {
        let est = self.estimator.estimate(func);
        self.backlog.enqueued(func, est);
        est
    }

    /// Takes back a [`Scheduler::reserve`] (the invocation was submitted, or never will be).
    pub fn release(&mut self, func: FunctionId, est: Dur) {
        self.backlog.dequeued(func, est);
    }

    /// Cancels a queued invocation (its caller went away, its function was deleted, the engine
    /// is stopping): it never starts, and when the policy next hands it out (or its place in a
    /// sandbox's line comes) it is dropped without taking a token or giving the estimator a
    /// sample. False if it is not queued: never submitted, already started, or already
    /// cancelled.
    pub fn cancel(&mut self, id: InvocationId) -> bool {
        let Some((func, est)) = self.waiting.remove(&id) else {
            return false;
        };
        self.backlog.dequeued(func, est);
        self.cancelled.insert(id);
        true
    }

    /// The warm sandbox that `inv` was just started in was found dead before `inv` was sent to
    /// it (its process exited while idle). The sandbox is forgotten — any other invocation
    /// running in it frees its own token when reported, as with
    /// [`Scheduler::sandbox_failed`] — and `inv` goes back to the head of its function's queue
    /// as if it had never been dispatched: it keeps its place and is charged nothing.
    pub fn sandbox_gone(&mut self, sandbox: SandboxId, inv: Invocation, now: Time) {
        self.line_ended(inv.func, sandbox, now);
        if let Some(sb) = self.pool.remove(sandbox) {
            if sb.running > 0 {
                self.return_token(sb.gpu);
            }
            if sb.running > 1 {
                self.orphans.insert(sandbox, (sb.gpu, sb.running - 1));
            }
        } else {
            self.orphan_done(sandbox);
        }
        self.memory.remove(sandbox);
        self.backlog.ended(inv.func);
        self.backlog.enqueued(inv.func, inv.est_service);
        self.waiting.insert(inv.id, (inv.func, inv.est_service));
        self.queue.requeue_front(inv, now);
    }
}
