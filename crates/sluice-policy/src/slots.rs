//! Device concurrency tokens: each GPU (or MIG instance) runs at most D invocations at once.
//!
//! A token is taken from a device that has one free and, when a utilisation gate is configured,
//! whose last utilisation sample is at or below the gate: the device placement chose
//! ([`DeviceSlots::take`]), or the least-loaded one ([`DeviceSlots::acquire`]; ties go to the
//! lowest device id, so the choice is deterministic). Devices are few (≤ dozens), so a linear
//! pass over them is the fastest structure.

use serde::{Deserialize, Serialize};
use sluice_core::GpuId;

/// Slot parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlotParams {
    /// D: concurrent invocations per device (MQFQ-Sticky authors' default: 2).
    pub tokens_per_gpu: u32,
    /// Grant a token only while the device's sampled utilisation (0..1) is at or below this
    /// (authors: 0.95). `None` disables the gate.
    pub util_gate: Option<f64>,
    /// Whether a cold start holds its invocation's token while the sandbox is created. Off by
    /// default: creating a sandbox (process, runtime, model load) does not run kernels, so the
    /// token goes to other work meanwhile and the invocation takes one when its sandbox is ready
    /// (the creation cap per device bounds how many start at once). The worker turns it on for
    /// its CPU queue, where starting a process is the work a slot stands for.
    pub cold_start_holds_token: bool,
}

impl Default for SlotParams {
    fn default() -> Self {
        SlotParams {
            tokens_per_gpu: 2,
            util_gate: None,
            cold_start_holds_token: false,
        }
    }
}

impl SlotParams {
    /// Checks that `tokens_per_gpu` ≥ 1 and that `util_gate`, when set, is in (0, 1]; the message
    /// names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens_per_gpu == 0 {
            return Err("slots.tokens_per_gpu must be at least 1".into());
        }
        if let Some(g) = self.util_gate {
            if !(g.is_finite() && g > 0.0 && g <= 1.0) {
                return Err("slots.util_gate must be in (0, 1]".into());
            }
        }
        Ok(())
    }
}

/// Tokens of every device.
#[derive(Clone, Debug)]
pub struct DeviceSlots {
    tokens: u32,
    gate: Option<f64>,
    in_use: Vec<u32>,
    util: Vec<f64>,
}

impl DeviceSlots {
    /// `gpus` devices, all tokens free and every utilisation sample 0.
    pub fn new(gpus: usize, params: &SlotParams) -> Self {
        DeviceSlots {
            tokens: params.tokens_per_gpu.max(1),
            gate: params.util_gate,
            in_use: vec![0; gpus],
            util: vec![0.0; gpus],
        }
    }

    /// Number of devices.
    pub fn gpus(&self) -> usize {
        self.in_use.len()
    }

    /// Tokens per device (D).
    pub fn tokens_per_gpu(&self) -> u32 {
        self.tokens
    }

    /// Whether `gpu` has a free token and passes the utilisation gate.
    pub fn has_free(&self, gpu: GpuId) -> bool {
        let i = gpu.index();
        self.in_use
            .get(i)
            .is_some_and(|&used| used < self.tokens && self.gate.is_none_or(|g| self.util[i] <= g))
    }

    /// The least-loaded eligible device (ties: lowest id), without taking its token.
    pub fn least_loaded(&self) -> Option<GpuId> {
        let mut best: Option<usize> = None;
        for (i, &used) in self.in_use.iter().enumerate() {
            if used >= self.tokens || self.gate.is_some_and(|g| self.util[i] > g) {
                continue;
            }
            if best.is_none_or(|b| used < self.in_use[b]) {
                best = Some(i);
            }
        }
        best.map(|i| GpuId(i as u16))
    }

    /// How many devices have a free token and pass the gate.
    pub fn free_devices(&self) -> usize {
        (0..self.in_use.len())
            .filter(|&i| self.has_free(GpuId(i as u16)))
            .count()
    }

    /// Takes a token of `gpu`; false (and nothing taken) if it has none free.
    pub fn take(&mut self, gpu: GpuId) -> bool {
        if !self.has_free(gpu) {
            return false;
        }
        self.in_use[gpu.index()] += 1;
        true
    }

    /// Takes a token from the least-loaded eligible device.
    pub fn acquire(&mut self) -> Option<GpuId> {
        let gpu = self.least_loaded()?;
        self.take(gpu).then_some(gpu)
    }

    /// Returns a token taken from `gpu`. Returning a token never taken is ignored.
    pub fn release(&mut self, gpu: GpuId) {
        if let Some(used) = self.in_use.get_mut(gpu.index()) {
            *used = used.saturating_sub(1);
        }
    }

    /// Records a utilisation sample (0..1) for the gate.
    pub fn set_util(&mut self, gpu: GpuId, util: f64) {
        if let Some(u) = self.util.get_mut(gpu.index()) {
            *u = if util.is_finite() { util } else { 0.0 };
        }
    }

    /// Tokens in use on `gpu`.
    pub fn in_use(&self, gpu: GpuId) -> u32 {
        self.in_use.get(gpu.index()).copied().unwrap_or(0)
    }

    /// Tokens in use on all devices.
    pub fn total_in_use(&self) -> u32 {
        self.in_use.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn least_loaded_first_and_limit_d() {
        let mut s = DeviceSlots::new(2, &SlotParams::default());
        assert_eq!(s.acquire(), Some(GpuId(0)));
        assert_eq!(s.acquire(), Some(GpuId(1)));
        assert_eq!(s.acquire(), Some(GpuId(0)));
        assert_eq!(s.acquire(), Some(GpuId(1)));
        assert_eq!(s.acquire(), None);
        assert_eq!(s.free_devices(), 0);
        s.release(GpuId(1));
        assert_eq!(s.free_devices(), 1);
        assert!(s.has_free(GpuId(1)) && !s.has_free(GpuId(0)));
        assert!(!s.take(GpuId(0)), "no free token there");
        assert_eq!(s.acquire(), Some(GpuId(1)));
    }

    #[test]
    fn util_gate_blocks_busy_devices() {
        let mut s = DeviceSlots::new(
            2,
            &SlotParams {
                tokens_per_gpu: 4,
                util_gate: Some(0.95),
                ..SlotParams::default()
            },
        );
        s.set_util(GpuId(0), 0.99);
        assert_eq!(s.acquire(), Some(GpuId(1)));
        s.set_util(GpuId(1), 0.97);
        assert_eq!(s.acquire(), None);
        s.set_util(GpuId(0), 0.5);
        assert_eq!(s.acquire(), Some(GpuId(0)));
    }

    #[test]
    fn bad_params_are_rejected() {
        let p = SlotParams {
            tokens_per_gpu: 0,
            util_gate: None,
            ..SlotParams::default()
        };
        assert!(p.validate().is_err());
        let p = SlotParams {
            tokens_per_gpu: 1,
            util_gate: Some(1.5),
            ..SlotParams::default()
        };
        assert!(p.validate().is_err());
    }

    proptest! {
        #[test]
        fn never_exceeds_d(ops in proptest::collection::vec(any::<bool>(), 1..200), d in 1u32..4, gpus in 1usize..4) {
            let mut s = DeviceSlots::new(gpus, &SlotParams { tokens_per_gpu: d, ..SlotParams::default() });
            let mut held = Vec::new();
            for take in ops {
                if take {
                    match s.acquire() {
                        Some(g) => held.push(g),
                        None => prop_assert_eq!(held.len(), d as usize * gpus),
                    }
                } else if let Some(g) = held.pop() {
                    s.release(g);
                }
                for g in 0..gpus {
                    prop_assert!(s.in_use(GpuId(g as u16)) <= d);
                }
                prop_assert_eq!(s.total_in_use() as usize, held.len());
            }
        }
    }
}
