//! Why each sandbox was created: every cold start counted under one cause, decided when the
//! scheduler creates the sandbox, from the state it chose in.
//!
//! A cold start an invocation pays (it found no sandbox of its function to run in on the
//! device it was given) is one of, in this order:
//! - `elsewhere`: the function had an idle sandbox, but on another device, which was not used:
//!   that device had no free token (and waiting for one was judged longer than a cold start,
//!   [`token_lines`](super::token_lines)), or placement kept the call off it;
//! - `concurrent`: every sandbox of the function was starting or running (at its concurrency);
//! - `gone`: the function had sandboxes before, all destroyed since (keep-alive expired, or
//!   evicted for room);
//! - `first`: the function's first sandbox on these devices.
//!
//! A sandbox created with no invocation waiting is `ahead` (bought ahead,
//! [`ahead`](super::ahead)) or `prewarm` (an operator's prewarm). The counts sum to the
//! scheduler's sandbox creations, so a run's cold starts can be read by cause: more devices
//! with more `elsewhere` means the calls went where their sandboxes were not; more
//! `concurrent` means more of a function ran at once.

use super::Scheduler;
use serde::{Deserialize, Serialize};
use sluice_core::FunctionId;

/// Sandbox creations (cold starts) by cause; see the module documentation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdCauses {
    /// The function's first sandbox.
    pub first: u64,
    /// Every earlier sandbox of the function was destroyed.
    pub gone: u64,
    /// Every sandbox of the function was starting or running.
    pub concurrent: u64,
    /// The function had an idle sandbox on another device.
    pub elsewhere: u64,
    /// Bought ahead, with no invocation waiting.
    pub ahead: u64,
    /// Created by a prewarm, before traffic.
    pub prewarm: u64,
}

impl ColdCauses {
    /// Each cause's name (as in the JSON and the worker's metric label) and count.
    pub fn by_name(&self) -> [(&'static str, u64); 6] {
        [
            ("first", self.first),
            ("gone", self.gone),
            ("concurrent", self.concurrent),
            ("elsewhere", self.elsewhere),
            ("ahead", self.ahead),
            ("prewarm", self.prewarm),
        ]
    }

    /// All creations, every cause together.
    pub fn total(&self) -> u64 {
        self.by_name().iter().map(|&(_, n)| n).sum()
    }

    /// Adds `other`'s counts to these (e.g. the workers of a cluster).
    pub fn add(&mut self, other: &ColdCauses) {
        self.first += other.first;
        self.gone += other.gone;
        self.concurrent += other.concurrent;
        self.elsewhere += other.elsewhere;
        self.ahead += other.ahead;
        self.prewarm += other.prewarm;
    }
}

/// The cause of a cold start an invocation pays, decided before its sandbox is counted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Paid {
    First,
    Gone,
    Concurrent,
    Elsewhere,
}

impl Scheduler {
    /// Why an invocation of `func` needs a new sandbox now (call before the new sandbox is
    /// counted as busy).
    pub(super) fn cold_cause(&self, func: FunctionId) -> Paid {
        if self.pool.has_idle_of(func) {
            Paid::Elsewhere
        } else if self.lines.has_busy(func) {
            Paid::Concurrent
        } else if self.had_sandbox.contains_key(&func) {
            Paid::Gone
        } else {
            Paid::First
        }
    }

    /// Counts a cold start an invocation of `func` pays, for `cause`.
    pub(super) fn count_paid(&mut self, func: FunctionId, cause: Paid) {
        let c = &mut self.cold_causes;
        match cause {
            Paid::First => c.first += 1,
            Paid::Gone => c.gone += 1,
            Paid::Concurrent => c.concurrent += 1,
            Paid::Elsewhere => c.elsewhere += 1,
        }
        self.had_sandbox.insert(func, ());
    }

    /// Counts a sandbox of `func` created with no invocation waiting: bought `ahead`, or else
    /// prewarmed.
    pub(super) fn count_unpaid(&mut self, func: FunctionId, ahead: bool) {
        if ahead {
            self.cold_causes.ahead += 1;
        } else {
            self.cold_causes.prewarm += 1;
        }
        self.had_sandbox.insert(func, ());
    }

    /// Sandbox creations so far, by cause.
    pub fn cold_causes(&self) -> ColdCauses {
        self.cold_causes
    }
}
