//! Sandbox lines: an invocation whose function has no sandbox free may wait in the line of a
//! busy one instead of creating another (a cold start and a second copy of its memory):
//!
//! - when the expected wait is shorter than the function's cold start as measured so far:
//!   wait = the rest of the sandbox's own cold start if it is still starting, plus the
//!   function's estimated service time for the invocation running and for each one already in
//!   the line. A function's cold start is measured on each new sandbox, from its creation to the
//!   end of its first invocation less that invocation's execution (EWMA).
//! - and, while at least half the devices run nothing, when the waits its invocations were
//!   expected to spend in lines since its last cold start, this one's included, stay under a
//!   cold start: a line that keeps forming costs its calls more than a second sandbox would (ski
//!   rental, as for co-running in `spread`). With most devices busy only each wait counts:
//!   tokens, not sandboxes, are then what invocations wait for. Waits older than the keep-alive
//!   TTL are forgotten.
//! - Under a policy that batches (`batch`, see
//!   [`QueuePolicy::batches_in_one_sandbox`](crate::queue::QueuePolicy::batches_in_one_sandbox))
//!   a batch runs in one sandbox, as the MQFQ-Sticky authors' batching does: its invocations
//!   wait even before the function's first cold start is measured, and a batch spills to a
//!   second sandbox only once its line holds more than a cold start's worth of work (or its
//!   waits add up to one, as above).
//! - Otherwise only with `keepalive.wait_for_warm` on (the default), and nothing waits before
//!   the function's first cold start is measured and [`MIN_RUNS`] of its invocations finished
//!   (one execution is not an estimate to hold an invocation back on).
//!
//! Lines form only behind full sandboxes (a sandbox with spare capacity is shared, each
//! invocation with its own token) and only when the function has no idle sandbox on a device
//! with a free token. When a sandbox finishes an invocation, the next in its line starts there
//! at once with the same token: warm, nothing to move. If the sandbox fails, its line goes back
//! to the head of the queue, in order.

use super::{Scheduler, Start};
use crate::idmap::{DenseMap, IdMap};
use crate::keepalive::SandboxState;
use sluice_core::{Dur, FunctionId, GpuId, Invocation, SandboxId, Time};
use std::collections::VecDeque;

/// Weight of a new cold-start measurement in its function's average.
const COLD_ALPHA: f64 = 0.3;

/// Finished invocations of a function before its estimate may hold another back in a line
/// (batching policies excepted).
pub const MIN_RUNS: u32 = 2;

/// Busy sandboxes per function, their lines, and measured cold starts.
#[derive(Debug, Default)]
pub(super) struct Lines {
    /// Per function, its sandboxes that are starting or running, in start order.
    busy: DenseMap<FunctionId, Vec<SandboxId>>,
    /// Per sandbox, the invocations waiting for it, in dispatch order.
    lines: IdMap<SandboxId, VecDeque<Invocation>>,
    /// Starts decided when a sandbox finished, emitted at the next poll.
    ready: Vec<Start>,
    /// Creation time of each new sandbox until its first invocation finishes.
    born: IdMap<SandboxId, Time>,
    /// Per function, the average measured cold start, µs.
    cold_us: DenseMap<FunctionId, f64>,
    /// Per function, the waits (µs) its invocations were expected to spend in lines since its
    /// last cold start, and when the latest joined.
    waited: DenseMap<FunctionId, (f64, Time)>,
    /// Per function, finished invocations (saturating).
    runs: DenseMap<FunctionId, u32>,
}

impl Scheduler {
    /// Puts `inv` in the line of a busy sandbox of its function if the rule above says so;
    /// true if it did.
    pub(super) fn join_line(&mut self, inv: Invocation, now: Time) -> bool {
        let batching = self.queue.batches_in_one_sandbox();
        if !batching && !self.keepalive.wait_for_warm {
            return false;
        }
        let f = inv.func;
        let Some(busy) = self.lines.busy.get(&f) else {
            return false;
        };
        if self.free_sandbox_on_a_free_device(f) {
            return false;
        }
        let settled = self.lines.runs.get(&f).is_some_and(|&n| n >= MIN_RUNS);
        let measured = settled && self.lines.cold_us.contains_key(&f);
        if !(batching || measured) {
            return self.join_starting_line(inv, now);
        }
        // The full sandbox with the shortest line (the first such on ties).
        let line_len = |sb: &SandboxId| self.lines.lines.get(sb).map_or(0, VecDeque::len);
        let Some((sb, starting)) = busy
            .iter()
            .filter_map(|&sb| {
                let s = self.pool.get(sb)?;
                let full = s.state == SandboxState::Starting || s.running >= s.capacity;
                full.then_some((sb, s.state == SandboxState::Starting))
            })
            .min_by_key(|(sb, _)| line_len(sb))
        else {
            return false;
        };
        let cold = match (self.lines.cold_us.get(&f), batching) {
            (Some(&c), true) => c,
            (Some(&c), false) if settled => c,
            (None, true) => f64::INFINITY,
            _ => return false,
        };
        let est = self.estimator.estimate(f).as_micros() as f64;
        let rest_of_start = match (starting, self.lines.born.get(&sb)) {
            (true, Some(&born)) if cold.is_finite() => {
                (cold - now.since(born).as_micros() as f64).max(0.0)
            }
            _ => 0.0,
        };
        let wait = rest_of_start + est * (1 + line_len(&sb)) as f64;
        if wait >= cold {
            return false;
        }
        // What the function's invocations already waited since its last cold start counts too:
        // once the waits add up to a cold start, that start buys a sandbox for all later ones.
        // Only while most devices idle: with most busy, tokens are what invocations wait for,
        // and another sandbox would mostly add memory and co-running.
        if self.mostly_idle() {
            let ttl = Dur::from_secs_f64(self.keepalive.ttl_s);
            let paid = self
                .lines
                .waited
                .get(&f)
                .filter(|&&(_, at)| now.since(at) <= ttl)
                .map_or(0.0, |&(us, _)| us);
            if paid + wait >= cold {
                return false;
            }
            self.lines.waited.insert(f, (paid + wait, now));
        }
        self.lines.lines.entry(sb).or_default().push_back(inv);
        true
    }

    /// Before its cold start and service time are settled, `inv` waits for a sandbox of its
    /// function that is still starting only if it would start there sooner than in a new
    /// sandbox, whatever the cold start is: a new one would be ready at `now + c`, the one born
    /// at `born` runs `n` invocations (its first and its line) before this one at
    /// `born + c + n·est`, so it waits if `born + n·est < now`. With `est` the estimator's
    /// prior (500 ms by default) this bounds how many sandboxes a burst of a new function
    /// starts on many devices, without holding anything back on a guess of the cold start.
    fn join_starting_line(&mut self, inv: Invocation, now: Time) -> bool {
        let f = inv.func;
        let est = self.estimator.estimate(f).as_micros();
        let Some(busy) = self.lines.busy.get(&f) else {
            return false;
        };
        let best = busy
            .iter()
            .filter(|&&sb| {
                self.pool
                    .get(sb)
                    .is_some_and(|s| s.state == SandboxState::Starting)
            })
            .filter_map(|&sb| {
                let born = self.lines.born.get(&sb)?.as_micros();
                let ahead = 1 + self.lines.lines.get(&sb).map_or(0, VecDeque::len) as u64;
                Some((born.saturating_add(est.saturating_mul(ahead)), sb))
            })
            .min();
        match best {
            Some((starts_at, sb)) if starts_at < now.as_micros() => {
                self.lines.lines.entry(sb).or_default().push_back(inv);
                true
            }
            _ => false,
        }
    }

    /// Whether `func` has a sandbox with room (idle, or busy with spare capacity) on a device
    /// with a free token.
    fn free_sandbox_on_a_free_device(&self, func: FunctionId) -> bool {
        self.pool
            .spare_devices(func)
            .chain(self.pool.idle_places(func).map(|(g, _)| g))
            .any(|g| self.slots.has_free(g))
    }

    /// A start of `func` in `sandbox` (new if `cold`) at `now`.
    pub(super) fn line_started(
        &mut self,
        func: FunctionId,
        sandbox: SandboxId,
        cold: bool,
        now: Time,
    ) {
        let busy = self.lines.busy.entry(func).or_default();
        if !busy.contains(&sandbox) {
            busy.push(sandbox);
        }
        if cold {
            self.lines.born.insert(sandbox, now);
            self.lines.waited.remove(&func);
        }
        self.expect_end(func, sandbox, cold, now);
    }

    /// `sandbox` on `gpu` finished an invocation of `func` that executed for `exec` (`None`: it
    /// was withdrawn before it ran): measures a new sandbox's cold start; if the line holds an
    /// invocation that was not cancelled, the first such starts there with the token the
    /// finished one held. True if one did.
    pub(super) fn next_in_line(
        &mut self,
        func: FunctionId,
        sandbox: SandboxId,
        gpu: GpuId,
        exec: Option<Dur>,
        now: Time,
    ) -> bool {
        if let Some(exec) = exec {
            let runs = self.lines.runs.entry(func).or_default();
            *runs = runs.saturating_add(1);
            if let Some(born) = self.lines.born.remove(&sandbox) {
                let sample = now.since(born).as_micros().saturating_sub(exec.as_micros()) as f64;
                let avg = self.lines.cold_us.entry(func).or_insert(sample);
                *avg += COLD_ALPHA * (sample - *avg);
            }
        }
        loop {
            let Some(line) = self.lines.lines.get_mut(&sandbox) else {
                return false;
            };
            let next = line.pop_front();
            if line.is_empty() {
                self.lines.lines.remove(&sandbox);
            }
            let Some(inv) = next else {
                return false;
            };
            if self.cancelled.remove(&inv.id) {
                // Dispatched into the line, never started: leaves as from the queue.
                self.queue.complete(inv.func, now);
                continue;
            }
            self.started(&inv);
            self.expect_end(func, sandbox, false, now);
            self.lines.ready.push(Start {
                inv,
                gpu,
                sandbox,
                cold: false,
                moves: Vec::new(),
            });
            return true;
        }
    }

    /// `sandbox` of `func` went idle or away: it is no longer busy; a failed sandbox's line goes
    /// back to the head of the queue, in order.
    pub(super) fn line_ended(&mut self, func: FunctionId, sandbox: SandboxId, now: Time) {
        if let Some(busy) = self.lines.busy.get_mut(&func) {
            busy.retain(|&sb| sb != sandbox);
            if busy.is_empty() {
                self.lines.busy.remove(&func);
            }
        }
        self.lines.born.remove(&sandbox);
        self.forget_end(sandbox);
        if let Some(line) = self.lines.lines.remove(&sandbox) {
            for inv in line.into_iter().rev() {
                self.queue.requeue_front(inv, now);
            }
        }
    }

    /// Moves the starts decided since the last poll into `out`.
    pub(super) fn emit_ready(&mut self, out: &mut Vec<super::Action>) {
        out.extend(self.lines.ready.drain(..).map(super::Action::Start));
    }

    /// Invocations waiting in sandboxes' lines or for a token on a device (dispatched, not
    /// started).
    pub fn in_lines(&self) -> usize {
        self.lines.lines.values().map(VecDeque::len).sum::<usize>() + self.token_lines.len()
    }

    /// `func`'s measured cold start once it may hold invocations back (see the rule above).
    pub(super) fn settled_cold_start(&self, func: FunctionId) -> Option<Dur> {
        let settled = self.lines.runs.get(&func).is_some_and(|&n| n >= MIN_RUNS);
        let cold = self.lines.cold_us.get(&func)?;
        settled.then(|| Dur::from_micros(*cold as u64))
    }

    /// `func`'s cold start as measured so far (average), if any was.
    pub fn cold_start_estimate(&self, func: FunctionId) -> Option<Dur> {
        self.lines
            .cold_us
            .get(&func)
            .map(|&us| Dur::from_micros(us as u64))
    }
}
