//! The re-planning loop's load meter: requests finished per second over a sliding window of
//! cumulative counts. Rates come from the span between the oldest sample kept and the newest,
//! never from two readings taken a moment apart, so a late or bursting timer (several ticks in
//! a millisecond after a slow re-plan) cannot read a steady load as zero.

use std::collections::VecDeque;

/// The shortest span, seconds, over which a rate is reported.
const MIN_SPAN_S: f64 = 0.5;

/// Cumulative counts sampled over time.
#[derive(Debug, Clone)]
pub(super) struct RateMeter {
    window_s: f64,
    /// (time in seconds, cumulative count), oldest first; the first may lie before the window.
    samples: VecDeque<(f64, u64)>,
}

impl RateMeter {
    /// A meter that averages over the last `window_s` seconds (at least [`MIN_SPAN_S`]).
    pub(super) fn new(window_s: f64) -> RateMeter {
        RateMeter {
            window_s: window_s.max(MIN_SPAN_S),
            samples: VecDeque::new(),
        }
    }

    /// Records the cumulative count `total` at `now_s` (non-decreasing) and returns the rate,
    /// per second, over the window; `None` until the samples span [`MIN_SPAN_S`]. A count that
    /// went backwards (a new deployment's counters) restarts the meter.
    pub(super) fn observe(&mut self, now_s: f64, total: u64) -> Option<f64> {
        if self
            .samples
            .back()
            .is_some_and(|&(t, c)| total < c || now_s < t)
        {
            self.samples.clear();
        }
        self.samples.push_back((now_s, total));
        // Keep one sample at or before the window's start, so the span covers the window.
        while self
            .samples
            .get(1)
            .is_some_and(|&(t, _)| t <= now_s - self.window_s)
        {
            self.samples.pop_front();
        }
        let &(t0, c0) = self.samples.front()?;
        let span = now_s - t0;
        (span >= MIN_SPAN_S).then(|| (total - c0) as f64 / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Completions of a steady `rate` per second up to `t`.
    fn count(rate: f64, t: f64) -> u64 {
        (rate * t).floor() as u64
    }

    #[test]
    fn steady_load_reads_steady_under_bursting_ticks() {
        let mut m = RateMeter::new(10.0);
        let mut readings = Vec::new();
        let mut t = 0.0;
        while t < 60.0 {
            // A tick a second, except that every 7th is late by 3 s and then three fire at once
            // (tokio's burst catch-up after a slow re-plan).
            let ticks: Vec<f64> = if (t as u64) % 7 == 6 {
                vec![t + 3.0, t + 3.0005, t + 3.001]
            } else {
                vec![t]
            };
            for at in ticks {
                if let Some(r) = m.observe(at, count(4.0, at)) {
                    readings.push((at, r));
                }
            }
            t += if (t as u64) % 7 == 6 { 4.0 } else { 1.0 };
        }
        for (at, r) in readings.iter().filter(|(at, _)| *at > 2.0) {
            assert!(
                (3.4..=4.6).contains(r),
                "rate {r} at {at}s for a steady 4/s"
            );
        }
    }

    #[test]
    fn needs_a_span_and_follows_a_change() {
        let mut m = RateMeter::new(5.0);
        assert_eq!(m.observe(0.0, 0), None);
        assert_eq!(m.observe(0.2, 1), None, "0.2 s is too short a span");
        let mut last = 0.0;
        for s in 1..=20 {
            let t = f64::from(s);
            let total = if t <= 10.0 {
                10 * s
            } else {
                100 + 2 * (s - 10)
            };
            last = m.observe(t, total as u64).unwrap_or(-1.0);
            if t == 10.0 {
                assert!((last - 10.0).abs() < 1e-9, "10/s, got {last}");
            }
        }
        assert!(
            (last - 2.0).abs() < 1e-9,
            "after the window, 2/s, got {last}"
        );
    }

    #[test]
    fn counters_going_back_restart_the_meter() {
        let mut m = RateMeter::new(5.0);
        m.observe(0.0, 50);
        assert_eq!(m.observe(1.0, 60), Some(10.0));
        assert_eq!(m.observe(2.0, 3), None, "a new deployment's counters");
        assert_eq!(m.observe(3.0, 8), Some(5.0));
    }
}
