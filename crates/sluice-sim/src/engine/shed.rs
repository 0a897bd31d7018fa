//! Load shedding at arrival: an invocation is dropped (counted as rejected) when the queueing
//! delay predicted for it exceeds a bound. It mirrors the worker's `max_queue_ms` admission and
//! will share its code once the policy layer's admission rule lands; until then the prediction
//! is the queued work (estimated service of every invocation submitted and not yet started)
//! divided by what all devices serve per unit of time with every token busy.

use crate::device::DeviceModel;
use sluice_core::Dur;

/// The admission state of one run.
#[derive(Clone, Debug)]
pub(super) struct Shed {
    bound_us: f64,
    /// Work-µs the devices serve per µs with every token busy.
    rate: f64,
    /// Estimated work queued (submitted, not started), µs.
    queued_us: f64,
}

impl Shed {
    /// A shedder for `gpus` devices of `tokens` each that rejects above `bound`.
    pub(super) fn new(bound: Dur, model: &DeviceModel, gpus: usize, tokens: u32) -> Shed {
        let k = tokens.max(1) as usize;
        Shed {
            bound_us: bound.as_micros() as f64,
            rate: (gpus.max(1) * k) as f64 * model.rate(k),
            queued_us: 0.0,
        }
    }

    /// The queueing delay predicted for an arrival now.
    pub(super) fn predicted_delay_us(&self) -> f64 {
        self.queued_us / self.rate
    }

    /// Whether an arrival with estimated service `est` is admitted; if so it joins the queue.
    pub(super) fn admit(&mut self, est: Dur) -> bool {
        if self.predicted_delay_us() > self.bound_us {
            return false;
        }
        self.queued_us += est.as_micros() as f64;
        true
    }

    /// An admitted invocation with estimate `est` started: it leaves the queue.
    pub(super) fn started(&mut self, est: Dur) {
        self.queued_us = (self.queued_us - est.as_micros() as f64).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_once_the_predicted_delay_passes_the_bound() {
        // 2 devices × 2 tokens at rate 1/1.6 each: 2.5 work-µs per µs.
        let mut s = Shed::new(Dur::from_millis(100), &DeviceModel::default(), 2, 2);
        let est = Dur::from_millis(100);
        assert!(s.admit(est) && s.admit(est) && s.admit(est));
        assert!((s.predicted_delay_us() - 120_000.0).abs() < 1e-6);
        assert!(!s.admit(est), "120 ms predicted > 100 ms");
        s.started(est);
        assert!(s.admit(est));
        s.started(Dur::from_secs(100));
        assert_eq!(s.predicted_delay_us(), 0.0);
    }
}
