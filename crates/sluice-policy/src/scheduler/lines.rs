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
//!   rental, as for co-running in `spread`); the second sandbox is then bought ahead on an idle
//!   device while this call still waits in the line (`ahead`). With most devices busy only each
//!   wait counts: tokens, not sandboxes, are then what invocations wait for. Waits older than
//!   the keep-alive TTL are forgotten.
//! - Under a policy that batches (`batch`, see
//!   [`QueuePolicy::batches_in_one_sandbox`](crate::queue::QueuePolicy::batches_in_one_sandbox))
//!   a batch runs in one sandbox, as the MQFQ-Sticky authors' batching does: its invocations
//!   wait even before the function's first cold start is measured, and a batch spills to a
//!   second sandbox only once its line holds more than a cold start's worth of work (or its
//!   waits add up to one, as above), and only while some device runs nothing: with every
//!   device busy, a second sandbox would take a token from other queued work to pay a cold
//!   start for calls the first one runs anyway. (Without that condition the overloaded Azure
//!   day cold-started each batch on every device: 26,941 cold starts on 16 GPUs, 3,141 with it.)
//! - Otherwise only with `keepalive.wait_for_warm` on (the default), and nothing waits before
//!   the function's first cold start is measured and [`MIN_RUNS`] of its invocations finished
//!   (one execution is not an estimate to hold an invocation back on).
//!
//! Lines form only behind full sandboxes (a sandbox with spare capacity is shared, each
//! invocation with its own token) and only when the function has no idle sandbox on a device
//! with a free token. When a sandbox finishes an invocation, the next in its line starts there
//! at once with the same token: warm, nothing to move. If the sandbox fails, its line goes back
//! to the head of the queue, in order.

use super::{Action, Scheduler, Start};
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

impl Lines {
    /// Whether `func` has a sandbox starting or running.
    pub(super) fn has_busy(&self, func: FunctionId) -> bool {
        self.busy.get(&func).is_some_and(|v| !v.is_empty())
    }
}

impl Scheduler {
    /// Puts `inv` in the line of a busy sandbox of its function if the rule above says so;
    /// true if it did.
    pub(super) fn join_line(&mut self, inv: Invocation, now: Time, out: &mut Vec<Action>) -> bool {
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
        let cold = match (self.lines.cold_us.get(&f), batching) {
            (Some(&c), true) => c,
            (Some(&c), false) if settled => c,
            (None, true) => f64::INFINITY,
            _ => return false,
        };
        let est = self.estimator.estimate(f).as_micros() as f64;
        // The full sandbox with the shortest line (the first such on ties), or the one being
        // bought ahead (`ahead`) if the call would start there sooner. The wait in a line: the
        // rest of the sandbox's start if it is starting, then the invocation it was created for
        // (none for one bought ahead) or runs, and its line. (Choosing the soonest start among
        // all sends batches behind starting sandboxes that then wait for a token: batch on 3
        // Ilúvatar GPUs 0.81 → 1.29 s; the shortest line among all sends short calls to wait for
        // the bought sandbox's whole start.)
        let line_len = |sb: &SandboxId| self.lines.lines.get(sb).map_or(0, VecDeque::len);
        let wait_in = |sb: SandboxId, starting: bool| {
            let rest_of_start = match self.lines.born.get(&sb) {
                Some(&born) if starting && cold.is_finite() => {
                    (cold - now.since(born).as_micros() as f64).max(0.0)
                }
                _ => 0.0,
            };
            let ahead = usize::from(!self.in_flight(f, sb)) + line_len(&sb);
            rest_of_start + est * ahead as f64
        };
        let full = busy.iter().filter_map(|&sb| {
            let s = self.pool.get(sb)?;
            let starting = s.state == SandboxState::Starting;
            (starting || s.running >= s.capacity).then_some((sb, starting))
        });
        let shortest = full
            .clone()
            .filter(|&(sb, _)| !self.in_flight(f, sb))
            .min_by_key(|(sb, _)| line_len(sb))
            .map(|(sb, starting)| (wait_in(sb, starting), sb));
        let bought = full
            .filter(|&(sb, _)| self.in_flight(f, sb))
            .map(|(sb, starting)| (wait_in(sb, starting), sb))
            .next();
        let Some((wait, sb)) = (match (shortest, bought) {
            (Some(s), Some(b)) if b.0 < s.0 => Some(b),
            (None, b) => b,
            (s, _) => s,
        }) else {
            return false;
        };
        // A batch longer than a cold start spills only onto a device that would otherwise idle.
        if wait >= cold && (!batching || self.an_idle_device()) {
            return false;
        }
        // What the function's invocations already waited since its last cold start counts too:
        // once the waits add up to a cold start, that start buys a sandbox for all later ones.
        // Only while most devices idle: with most busy, tokens are what invocations wait for,
        // and another sandbox would mostly add memory and co-running.
        if self.mostly_idle() && !self.buying(f) {
            let ttl = self.keepalive.longest();
            let paid = self
                .lines
                .waited
                .get(&f)
                .filter(|&&(_, at)| now.since(at) <= ttl)
                .map_or(0.0, |&(us, _)| us);
            if paid + wait < cold {
                self.lines.waited.insert(f, (paid + wait, now));
            } else if self.buy_on_an_idle_device(f, now, out) {
                // Bought ahead (`ahead`); this call still waits here, less than a cold start.
                self.lines.waited.remove(&f);
            } else {
                return false;
            }
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

    /// `sandbox` was bought ahead for `func` at `now` (`ahead`): calls may wait in its line while
    /// it is created.
    pub(super) fn line_bought(&mut self, func: FunctionId, sandbox: SandboxId, now: Time) {
        self.lines.busy.entry(func).or_default().push(sandbox);
        self.lines.born.insert(sandbox, now);
    }

    /// `sandbox`, bought ahead, is ready at `now` (its cold start measured by
    /// [`Scheduler::creation_measured`]): the first call of its line that was not cancelled
    /// starts there, with a token of its device if one is free, else first in that device's
    /// ready line (`creating`). True if one did.
    pub(super) fn bought_ready(&mut self, sandbox: SandboxId, now: Time) -> bool {
        let Some(gpu) = self.pool.get(sandbox).map(|s| s.gpu) else {
            return false;
        };
        let Some(inv) = self.next_of_line(sandbox, now) else {
            return false;
        };
        if self.take_token(gpu) {
            self.start_in_line(inv, sandbox, gpu, now);
        } else {
            self.wait_for_token(sandbox, gpu, inv);
        }
        true
    }

    /// Takes the first invocation of `sandbox`'s line that was not cancelled (one that was
    /// leaves as from the queue: dispatched into the line, never started), counted as started.
    fn next_of_line(&mut self, sandbox: SandboxId, now: Time) -> Option<Invocation> {
        loop {
            let line = self.lines.lines.get_mut(&sandbox)?;
            let next = line.pop_front();
            if line.is_empty() {
                self.lines.lines.remove(&sandbox);
            }
            let inv = next?;
            if self.cancelled.remove(&inv.id) {
                self.queue.complete(inv.func, now);
                continue;
            }
            self.started(&inv);
            return Some(inv);
        }
    }

    /// Starts `inv`, taken from `sandbox`'s line, there with a token of `gpu` it holds (emitted
    /// at the next poll).
    fn start_in_line(&mut self, inv: Invocation, sandbox: SandboxId, gpu: GpuId, now: Time) {
        self.expect_end(inv.func, sandbox, false, now);
        self.lines.ready.push(Start {
            inv,
            gpu,
            sandbox,
            cold: false,
            moves: Vec::new(),
        });
    }

    /// A prewarmed `sandbox` is being created from `now` (a bought one: `line_bought`): its cold
    /// start is measured when it is
    /// ready (without it, a prewarmed function under a batching policy had no measured cold
    /// start and its batches never spilled to a second sandbox).
    pub(super) fn creation_begun(&mut self, sandbox: SandboxId, now: Time) {
        self.lines.born.insert(sandbox, now);
    }

    /// A prewarmed or bought `sandbox` of `func` is ready at `now`: its cold start, `took` or
    /// measured from its creation, joins the function's average.
    pub(super) fn creation_measured(
        &mut self,
        func: FunctionId,
        sandbox: SandboxId,
        now: Time,
        took: Option<Dur>,
    ) {
        let born = self.lines.born.remove(&sandbox);
        let sample = match (took, born) {
            (Some(took), _) => took.as_micros() as f64,
            (None, Some(born)) => now.since(born).as_micros() as f64,
            (None, None) => return,
        };
        self.measure_cold_start(func, sample);
    }

    /// A prewarmed `sandbox` that could not be created: nothing to measure.
    pub(super) fn creation_forgotten(&mut self, sandbox: SandboxId) {
        self.lines.born.remove(&sandbox);
    }

    /// Adds a cold-start measurement of `func` (µs) to its average.
    fn measure_cold_start(&mut self, func: FunctionId, sample: f64) {
        let avg = self.lines.cold_us.entry(func).or_insert(sample);
        *avg += COLD_ALPHA * (sample - *avg);
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
                self.measure_cold_start(func, sample);
            }
        }
        let Some(inv) = self.next_of_line(sandbox, now) else {
            return false;
        };
        self.start_in_line(inv, sandbox, gpu, now);
        true
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
