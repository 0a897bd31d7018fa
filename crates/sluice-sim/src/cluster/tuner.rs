//! Whether the parallel phases are worth sharing, measured while the run goes on. Helpers pay
//! only where the machine really runs them beside the caller: on a host that gives the whole
//! machine about one core's time when both are busy (seen on this 2-core VM after minutes of
//! load: two threads then took 1.9 times as long as one), a helper's waiting spends the time the
//! caller needs. The tuner shares at first; every 8 s it probes both modes for 0.8 s (ABBA) and
//! keeps sharing unless the caller alone was clearly faster, so a run is never much slower than
//! on one thread. The mode changes how fast the run goes, never what it computes.

use std::time::Duration;

/// How long each step of a probe lasts.
const STEP: Duration = Duration::from_millis(200);
/// A probe's steps, shared or not: ABBA, so a load that drifts during the probe (the trace's
/// own rhythm) weighs on both modes alike.
const PROBE: [bool; 4] = [true, false, false, true];
/// How long the chosen mode is kept before the next probe.
const KEEP: Duration = Duration::from_secs(8);
/// The caller alone must be this much faster to be chosen: sharing, when the host runs both
/// threads, is clearly faster, and when it does not, clearly slower.
const MARGIN: f64 = 1.2;

/// The choice between sharing phases with the helpers and running them on the caller alone.
#[derive(Debug)]
pub(super) struct Tuner {
    /// The step of the probe under way, or `None` while keeping `keep`.
    step: Option<usize>,
    keep: bool,
    /// When the current step (or keep) ends.
    until: Duration,
    /// Work (any unit proportional to the simulation's) in this step.
    units: u64,
    /// Work done and time spent in the probe under way, shared and alone.
    shared_work: (u64, Duration),
    alone_work: (u64, Duration),
    began: Duration,
}

impl Tuner {
    /// A tuner whose clock starts at `now` (elapsed time of the run); it shares until its first
    /// probe, one keep period in.
    pub(super) fn new(now: Duration) -> Self {
        Tuner {
            step: None,
            keep: true,
            until: now + KEEP,
            units: 0,
            shared_work: (0, Duration::ZERO),
            alone_work: (0, Duration::ZERO),
            began: now,
        }
    }

    /// Whether the next phases are shared.
    pub(super) fn shared(&self) -> bool {
        self.step.map_or(self.keep, |i| PROBE[i])
    }

    /// `units` of work were done; `now` is the run's elapsed time.
    pub(super) fn record(&mut self, units: u64, now: Duration) {
        self.units += units;
        if now < self.until {
            return;
        }
        let spent = now - self.began;
        if let Some(i) = self.step {
            let acc = if PROBE[i] {
                &mut self.shared_work
            } else {
                &mut self.alone_work
            };
            acc.0 += self.units;
            acc.1 += spent;
        }
        let next = self.step.map_or(0, |i| i + 1);
        if next < PROBE.len() {
            self.step = Some(next);
            self.until = now + STEP;
        } else {
            let rate = |(u, t): (u64, Duration)| u as f64 / t.as_secs_f64().max(1e-9);
            self.keep = rate(self.alone_work) <= MARGIN * rate(self.shared_work);
            self.step = None;
            self.until = now + KEEP;
            self.shared_work = (0, Duration::ZERO);
            self.alone_work = (0, Duration::ZERO);
        }
        self.units = 0;
        self.began = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a tuner for `secs` of run time in 1 ms steps, with `shared` and `alone` units of
    /// work per step in each mode; returns the share of the time spent shared.
    fn drive(shared: u64, alone: u64, secs: u64) -> f64 {
        let mut t = Tuner::new(Duration::ZERO);
        let mut on = 0;
        let steps = secs * 1000;
        for ms in 1..=steps {
            let s = t.shared();
            on += u64::from(s);
            t.record(if s { shared } else { alone }, Duration::from_millis(ms));
        }
        on as f64 / steps as f64
    }

    #[test]
    fn keeps_the_faster_mode_most_of_the_time() {
        assert!(drive(18, 10, 60) > 0.9, "sharing is faster");
        assert!(drive(11, 10, 60) > 0.9, "about the same: sharing");
        // The first 8 s share before the first probe.
        assert!(drive(5, 10, 60) < 0.2, "the caller alone is faster");
    }

    #[test]
    fn follows_a_change_of_the_machine() {
        let mut t = Tuner::new(Duration::ZERO);
        let mut ms = 0;
        let mut run = |t: &mut Tuner, shared: u64, alone: u64, secs: u64| {
            let mut last = true;
            for _ in 0..secs * 1000 {
                ms += 1;
                last = t.shared();
                t.record(if last { shared } else { alone }, Duration::from_millis(ms));
            }
            last
        };
        assert!(run(&mut t, 18, 10, 10), "two cores: shared");
        assert!(!run(&mut t, 5, 10, 10), "one core's time: alone");
        assert!(run(&mut t, 18, 10, 10), "two cores again: shared");
    }
}
