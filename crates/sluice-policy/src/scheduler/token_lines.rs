//! Token lines: an invocation whose function has an idle sandbox only on devices with every
//! token busy may wait for a token *there* instead of cold-starting a second sandbox (and
//! copying its memory) on a device that has one free.
//!
//! - It waits when the expected wait is shorter than the function's cold start as measured so
//!   far (the same settled measurement that sandbox lines use, [`lines`](super::lines)). The
//!   wait on a device is when the (k+1)-th of its running sandboxes is expected to finish, k
//!   being the invocations already waiting there: each running sandbox's end is its start (a
//!   new sandbox: plus the cold start) plus its function's estimated service time.
//! - It gives up after its function's cold start: if the device's tokens are held longer than
//!   the estimates said (a hung function, a wrong estimate), it goes back to the head of its
//!   function's queue and is placed as if it had never waited. A sandbox past its expected end
//!   is not waited on.
//! - A token line is served before the queueing policy at every dispatch: its invocations were
//!   dispatched by the policy earlier, and a token that frees on its device goes to the first.
//!
//! Without this, in the warm-up of a busy trace every token that frees on a device a function
//! has no sandbox on starts one there: on the Ilúvatar trace with 4 GPUs each of 21 functions
//! ended with about four sandboxes, one per GPU, and each of those cold starts held a token
//! for seconds.

use super::{Action, Outcome, Scheduler};
use crate::idmap::IdMap;
use sluice_core::{Dur, FunctionId, GpuId, Invocation, SandboxId, Time};
use std::collections::VecDeque;

/// Per device, the invocations waiting for a token there; per running sandbox, its expected end.
#[derive(Debug, Default)]
pub(super) struct TokenLines {
    /// Per device index: (invocation, when it gives up), in dispatch order.
    lines: Vec<VecDeque<(Invocation, Time)>>,
    /// Per sandbox that runs an invocation: when its latest one is expected to end.
    ends: IdMap<SandboxId, Time>,
}

impl TokenLines {
    /// Invocations waiting in token lines.
    pub(super) fn len(&self) -> usize {
        self.lines.iter().map(VecDeque::len).sum()
    }

    /// The earliest instant an invocation gives up waiting.
    pub(super) fn next_give_up(&self) -> Option<Time> {
        self.lines
            .iter()
            .filter_map(|l| l.iter().map(|&(_, t)| t).min())
            .min()
    }
}

impl Scheduler {
    /// `sandbox` started an invocation of `func` at `now` (`cold`: a new sandbox): records when
    /// it is expected to end.
    pub(super) fn expect_end(
        &mut self,
        func: FunctionId,
        sandbox: SandboxId,
        cold: bool,
        now: Time,
    ) {
        // A function's first sandbox ends at an unknown time: nothing waits on it.
        let start = match (cold, self.cold_start_estimate(func)) {
            (false, _) => Dur::ZERO,
            (true, Some(c)) => c,
            (true, None) => {
                self.token_lines.ends.remove(&sandbox);
                return;
            }
        };
        let est = self.estimator.estimate(func);
        self.token_lines.ends.insert(sandbox, now + start + est);
    }

    /// How long the longest of the invocations running on `gpu` is expected to go on from
    /// `now`; `None` when none there has an expected end, or one has outrun it (how much longer
    /// it runs is then unknown).
    pub(super) fn longest_rest_on(&self, gpu: GpuId, now: Time) -> Option<Dur> {
        let mut longest: Option<Dur> = None;
        for (&sb, &end) in self.token_lines.ends.iter() {
            if self.pool.get(sb).is_none_or(|s| s.gpu != gpu) {
                continue;
            }
            if end <= now {
                return None;
            }
            longest = longest.max(Some(end.since(now)));
        }
        longest
    }

    /// `sandbox` runs nothing any more (idle, failed or gone).
    pub(super) fn forget_end(&mut self, sandbox: SandboxId) {
        self.token_lines.ends.remove(&sandbox);
    }

    /// Puts `inv` in the token line of a device where its function has an idle sandbox, if the
    /// rule above says so; true if it did.
    pub(super) fn join_token_line(&mut self, inv: Invocation, now: Time) -> bool {
        if !self.keepalive.wait_for_warm {
            return false;
        }
        let f = inv.func;
        let Some(cold) = self.settled_cold_start(f) else {
            return false;
        };
        let mut best: Option<(GpuId, Dur)> = None;
        for (gpu, _) in self.pool.idle_places(f) {
            if self.slots.has_free(gpu) {
                // Placement will start it warm there.
                return false;
            }
            let ahead = self
                .token_lines
                .lines
                .get(gpu.index())
                .map_or(0, VecDeque::len);
            if let Some(wait) = self.token_wait(gpu, ahead, now) {
                if best.is_none_or(|(_, w)| wait < w) {
                    best = Some((gpu, wait));
                }
            }
        }
        let Some((gpu, wait)) = best else {
            return false;
        };
        if wait >= cold {
            return false;
        }
        let lines = &mut self.token_lines.lines;
        if lines.len() <= gpu.index() {
            lines.resize_with(gpu.index() + 1, VecDeque::new);
        }
        lines[gpu.index()].push_back((inv, now + cold));
        true
    }

    /// When the (`ahead` + 1)-th running sandbox on `gpu` is expected to end, from `now`; `None`
    /// if fewer than that many run there with a known end still ahead (one past its expected
    /// end has outrun its estimate: nothing waits on it, so an invocation that gave up does
    /// not join again).
    fn token_wait(&self, gpu: GpuId, ahead: usize, now: Time) -> Option<Dur> {
        let mut ends: Vec<Time> = self
            .token_lines
            .ends
            .iter()
            .filter(|&(&sb, &end)| end > now && self.pool.get(sb).is_some_and(|s| s.gpu == gpu))
            .map(|(_, &t)| t)
            .collect();
        if ends.len() <= ahead {
            return None;
        }
        ends.select_nth_unstable(ahead);
        Some(ends[ahead].since(now))
    }

    /// Starts what the token lines hold on devices with a free token, and sends invocations that
    /// waited past their give-up time back to the head of their queues.
    pub(super) fn serve_token_lines(&mut self, now: Time, out: &mut Vec<Action>) {
        for g in 0..self.token_lines.lines.len() {
            let gpu = GpuId(g as u16);
            let mut expired = Vec::new();
            self.token_lines.lines[g].retain(|&(inv, give_up)| {
                let keep = give_up > now;
                if !keep {
                    expired.push(inv);
                }
                keep
            });
            for inv in expired.into_iter().rev() {
                self.queue.requeue_front(inv, now);
            }
            while self.slots.has_free(gpu) {
                let Some((inv, _)) = self.token_lines.lines[g].pop_front() else {
                    break;
                };
                if self.cancelled.remove(&inv.id) {
                    self.queue.complete(inv.func, now);
                    continue;
                }
                if !self.take_token(gpu) {
                    self.queue.requeue_front(inv, now);
                    break;
                }
                match self.place(inv, gpu, now, out) {
                    Outcome::Started => self.started(&inv),
                    Outcome::Later => {
                        self.return_token(gpu);
                        self.queue.requeue_front(inv, now);
                    }
                    Outcome::Never(reason) => self.reject(inv, gpu, reason, now, out),
                }
            }
        }
    }
}
