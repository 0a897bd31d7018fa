//! Helpers the scheduler's test modules share: megabytes, milliseconds, and the starts and
//! creations of a poll.

use super::{Action, Create, Scheduler, Start};
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

/// Polls `s` at `now` and keeps the starts and the sandboxes bought ahead it decided.
pub(super) fn poll_all(s: &mut Scheduler, now: Time) -> (Vec<Start>, Vec<Create>) {
    let mut out = Vec::new();
    s.poll(now, &mut out);
    let (mut starts, mut creates) = (Vec::new(), Vec::new());
    for a in out {
        match a {
            Action::Start(st) => starts.push(st),
            Action::Create(c) => creates.push(c),
            Action::Move(_) | Action::Destroy(_) | Action::Reject(_) => {}
        }
    }
    (starts, creates)
}
