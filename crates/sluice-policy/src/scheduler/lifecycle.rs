//! Sandbox lifecycle events the engine reports to the [`Scheduler`] (a sandbox ready is in
//! `creating`): an invocation finished, a sandbox failed, prewarming. Each running invocation holds one device
//! token; when a sandbox that ran several invocations at once fails, it leaves the pool at
//! once and each of its invocations frees its own token as the engine reports it.

use super::{Action, Scheduler};
use sluice_core::{Dur, FunctionId, GpuId, SandboxId, Time};

impl Scheduler {
    /// An invocation that ran in `sandbox` finished after executing for `exec`. If the sandbox
    /// has a line, the next invocation in it starts there with the same token.
    pub fn finished(&mut self, sandbox: SandboxId, func: FunctionId, exec: Dur, now: Time) {
        self.end_run(sandbox, func, Some(exec), now);
        self.estimator.observe(func, exec);
        self.queue.set_estimate(func, self.estimator.estimate(func));
        self.queue.complete(func, now);
    }

    /// An invocation started in `sandbox` was withdrawn before it was sent there (the engine
    /// learned it must not run after all): its token and the sandbox are freed as by
    /// [`Scheduler::finished`] (the next in the sandbox's line starts there), but neither the
    /// estimator nor the cold-start measurement gets a sample.
    pub fn withdrawn(&mut self, sandbox: SandboxId, func: FunctionId, now: Time) {
        self.end_run(sandbox, func, None, now);
        self.queue.complete(func, now);
    }

    /// One invocation that ran in `sandbox` for `exec` (`None`: it never ran) ended: the next in
    /// the sandbox's line takes its token, else the token is freed and, after the sandbox's last
    /// running invocation, the sandbox returns to the warm pool. Extra reports are no-ops.
    fn end_run(&mut self, sandbox: SandboxId, func: FunctionId, exec: Option<Dur>, now: Time) {
        match self.pool.get(sandbox) {
            Some(sb) if sb.running > 0 => {
                let gpu = sb.gpu;
                self.backlog.ended(func);
                if !self.next_in_line(func, sandbox, gpu, exec, now) {
                    self.return_token(gpu);
                    self.pool.release(sandbox, now);
                    self.memory.release(sandbox, now);
                    if self.pool.get(sandbox).is_some_and(|sb| sb.running == 0) {
                        self.line_ended(func, sandbox, now);
                    }
                }
            }
            Some(_) => {}
            None => {
                if self.orphan_done(sandbox) {
                    self.backlog.ended(func);
                }
            }
        }
    }

    /// A sandbox failed while running an invocation of `func` (crashed, timed out, or could
    /// not be created): forget it and free that invocation's token (a sandbox that failed to be
    /// created held none, see `creating`). Reporting the invocation
    /// is the engine's job. Call it once per invocation that was running in the sandbox: the
    /// others (with `concurrency` > 1) each free their own token when reported, as failed or
    /// as finished.
    pub fn sandbox_failed(&mut self, sandbox: SandboxId, func: FunctionId, now: Time) {
        self.line_ended(func, sandbox, now);
        let tokenless = self.forget_tokenless(sandbox);
        if let Some(sb) = self.pool.remove(sandbox) {
            if sb.running > 0 {
                if !tokenless {
                    self.return_token(sb.gpu);
                }
                self.queue.complete(func, now);
                self.backlog.ended(func);
            }
            if sb.running > 1 {
                self.orphans.insert(sandbox, (sb.gpu, sb.running - 1));
            }
        } else if self.orphan_done(sandbox) {
            self.queue.complete(func, now);
            self.backlog.ended(func);
        }
        self.memory.remove(sandbox);
    }

    /// One invocation of a failed sandbox was reported: frees its token. False if none was due.
    pub(super) fn orphan_done(&mut self, sandbox: SandboxId) -> bool {
        let Some((gpu, left)) = self.orphans.get_mut(&sandbox) else {
            return false;
        };
        let gpu = *gpu;
        *left -= 1;
        if *left == 0 {
            self.orphans.remove(&sandbox);
        }
        self.return_token(gpu);
        true
    }

    /// Creates a sandbox for `func` ahead of demand on the device placement chooses for it
    /// (its home unless that is over its load bound; any device, tokens or not), if the creation
    /// cap and memory allow; the engine carries out the moves that make room for it, put in
    /// `out` (idle sandboxes pushed to host, lingering ones destroyed), starts it and then calls
    /// [`Scheduler::prewarm_done`]. Returns the sandbox and its device.
    pub fn prewarm(
        &mut self,
        func: FunctionId,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<(SandboxId, GpuId)> {
        let gpu = self.home_of(func)?;
        let sb = self.create_admitted(func, gpu, now, out)?;
        self.count_unpaid(func, false);
        self.creation_begun(sb, now);
        Some((sb, gpu))
    }

    /// A sandbox of `func` created before `now` in `took` (an operator's prewarm before traffic,
    /// as the simulator models it): [`Scheduler::prewarm`] and [`Scheduler::prewarm_done`] at
    /// `now`, with `took` as its cold start's measurement; the moves that made room are in `out`.
    pub fn prewarmed(
        &mut self,
        func: FunctionId,
        took: Dur,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<(SandboxId, GpuId)> {
        let (sb, gpu) = self.prewarm(func, now, out)?;
        self.prewarm_ready(sb, now, Some(took));
        Some((sb, gpu))
    }

    /// A prewarmed sandbox, or one bought ahead, finished starting: the first call of the line
    /// that formed behind a bought one starts there (`ahead`); otherwise it joins the warm pool
    /// as idle.
    pub fn prewarm_done(&mut self, sandbox: SandboxId, now: Time) {
        self.prewarm_ready(sandbox, now, None);
    }

    /// [`Scheduler::prewarm_done`]; the cold start measured as `took`, or from its creation.
    fn prewarm_ready(&mut self, sandbox: SandboxId, now: Time, took: Option<Dur>) {
        let bought = self.bought(sandbox);
        if let Some(func) = self.pool.get(sandbox).map(|s| s.func) {
            self.creation_measured(func, sandbox, now, took);
        }
        self.pool.started(sandbox);
        if bought.is_some() && self.bought_ready(sandbox, now) {
            return;
        }
        self.pool.release(sandbox, now);
        self.memory.release(sandbox, now);
        if let Some(func) = bought {
            self.line_ended(func, sandbox, now);
        }
    }

    /// A sandbox that was never running an invocation (a failed prewarm or purchase) is
    /// forgotten; a line that formed behind a bought one goes back to the head of the queue.
    pub fn forget_sandbox(&mut self, sandbox: SandboxId, now: Time) {
        match self.bought(sandbox) {
            Some(func) => self.line_ended(func, sandbox, now),
            None => self.creation_forgotten(sandbox),
        }
        self.pool.remove(sandbox);
        self.memory.remove(sandbox);
    }
}
