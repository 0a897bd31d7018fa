//! Helpers the scheduler's test modules share: megabytes, milliseconds, and the starts of a poll.

use super::{Action, Scheduler, Start};
use sluice_core::Time;

/// One mebibyte.
pub(super) const MB: u64 = 1 << 20;

/// `x` milliseconds after time zero.
pub(super) fn ms(x: u64) -> Time {
    Time::from_micros(x * 1_000)
}

/// Polls `s` at `now` and keeps the starts it decided.
pub(super) fn poll(s: &mut Scheduler, now: Time) -> Vec<Start> {
    let mut out = Vec::new();
    s.poll(now, &mut out);
    out.into_iter()
        .filter_map(|a| match a {
            Action::Start(st) => Some(st),
            _ => None,
        })
        .collect()
}
