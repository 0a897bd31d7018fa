//! The simulated device model: how long work takes on a modelled GPU (or CPU) given what else
//! runs there and where memory is. Every parameter lives in the simulator's config file so it
//! can be calibrated on a real GPU; docs/simulator.md states the model and its assumptions.
//!
//! - Execution: an invocation brings `solo` microseconds of work (its warm time alone on the
//!   device). With `k` invocations executing on one device, each progresses at rate
//!   `1 / (1 + concurrency_slowdown·(k−1))` (processor sharing: rates change whenever k does).
//! - Per-invocation overhead: `exec_overhead_ms` more of it for every invocation (the runtime's
//!   dispatch and the function's I/O around its work: a live host measures it).
//! - Cold start: a new sandbox takes the function's `cold_start` before its first execution, or,
//!   with `cold_start_samples_ms`, one of those measured starts drawn per sandbox.
//! - Memory movement: bytes move over one copy channel per device at `host_device_gbps`, in
//!   order; an execution waits for its own sandbox's bytes.
//! - Oversubscription: when resident memory exceeds physical capacity (only if configured), work
//!   started then is stretched by `1 + oversubscription_penalty·excess/capacity` (page faults).

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, SandboxId};
use sluice_policy::placement::{RandomSource, SplitMix64};

/// Which kind of device the functions run on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A GPU: invocations take their GPU warm time and their sandboxes hold device memory.
    Gpu,
    /// A CPU: invocations take their CPU warm time; sandboxes hold no device memory, so nothing
    /// moves.
    Cpu,
}

/// Parameters of the device model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceModel {
    /// GPU: functions take their GPU warm time; CPU: their CPU warm time, memory never moves.
    pub kind: DeviceKind,
    /// Memory of one device, GiB.
    pub memory_gib: f64,
    /// Per extra co-running invocation, how much slower each one runs (0 = perfect sharing).
    pub concurrency_slowdown: f64,
    /// Host↔device copy bandwidth, GB/s (10^9 bytes per second).
    pub host_device_gbps: f64,
    /// Slowdown per unit of oversubscribed fraction (see module docs).
    pub oversubscription_penalty: f64,
    /// Sandbox start times measured on a host, ms. When given, every cold start takes one of
    /// them (chosen by its sandbox id and [`cold_start_seed`](Self::cold_start_seed)) instead of
    /// its function's catalogue cold start: for replaying a host whose starts vary from sandbox
    /// to sandbox (`scripts/compare-live-sim.sh`).
    pub cold_start_samples_ms: Vec<f64>,
    /// Which sample each sandbox draws; runs with different seeds draw differently.
    pub cold_start_seed: u64,
    /// Time every invocation keeps its sandbox and device busy beyond its function's own work,
    /// ms: the runtime's dispatch and the function's input and output. 0 by default (the
    /// catalogue times are the whole call); `scripts/compare-live-sim.sh` sets what its live run
    /// measured.
    pub exec_overhead_ms: f64,
}

impl Default for DeviceModel {
    fn default() -> Self {
        DeviceModel {
            kind: DeviceKind::Gpu,
            memory_gib: 24.0,
            concurrency_slowdown: 0.6,
            host_device_gbps: 12.0,
            oversubscription_penalty: 2.0,
            cold_start_samples_ms: Vec::new(),
            cold_start_seed: 0,
            exec_overhead_ms: 0.0,
        }
    }
}

impl DeviceModel {
    /// Checks every parameter's range; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("device.memory_gib", self.memory_gib, 1e-3),
            ("device.host_device_gbps", self.host_device_gbps, 1e-6),
        ];
        for (key, v, min) in checks {
            if !(v.is_finite() && v >= min) {
                return Err(format!("{key} must be a positive number, got {v}"));
            }
        }
        for (key, v) in [
            ("device.concurrency_slowdown", self.concurrency_slowdown),
            ("device.exec_overhead_ms", self.exec_overhead_ms),
            (
                "device.oversubscription_penalty",
                self.oversubscription_penalty,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} must be a non-negative number, got {v}"));
            }
        }
        if let Some(v) =
            (self.cold_start_samples_ms.iter()).find(|v| !(v.is_finite() && **v >= 0.0))
        {
            return Err(format!(
                "device.cold_start_samples_ms must hold non-negative numbers, got {v}"
            ));
        }
        Ok(())
    }

    /// How long the cold start of `sandbox` takes, given its function's catalogue cold start:
    /// that, or one of the measured samples.
    pub fn cold_start(&self, catalogue: Dur, sandbox: SandboxId) -> Dur {
        let samples = &self.cold_start_samples_ms;
        if samples.is_empty() {
            return catalogue;
        }
        let word = SplitMix64::new(sandbox.0 ^ self.cold_start_seed.rotate_left(32)).next_u64();
        Dur::from_millis_f64(samples[(word % samples.len() as u64) as usize])
    }

    /// An invocation's work: its function's own time plus the per-invocation overhead.
    pub fn work(&self, own: Dur) -> Dur {
        own + Dur::from_millis_f64(self.exec_overhead_ms)
    }

    /// Device memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        (self.memory_gib * (1u64 << 30) as f64) as u64
    }

    /// Progress rate of each of `k` co-running invocations (work-µs per µs).
    pub fn rate(&self, k: usize) -> f64 {
        1.0 / (1.0 + self.concurrency_slowdown * k.saturating_sub(1) as f64)
    }

    /// Time to move `bytes` between host and device.
    pub fn transfer(&self, bytes: u64) -> Dur {
        Dur::from_secs_f64(bytes as f64 / (self.host_device_gbps * 1e9))
    }

    /// Work stretch for an execution that starts while `resident` bytes are on a device of
    /// `capacity` bytes.
    pub fn oversubscription_factor(&self, resident: u64, capacity: u64) -> f64 {
        if resident <= capacity || capacity == 0 {
            1.0
        } else {
            1.0 + self.oversubscription_penalty * (resident - capacity) as f64 / capacity as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_formulas() {
        let m = DeviceModel::default();
        assert_eq!(m.rate(1), 1.0);
        assert!((m.rate(2) - 1.0 / 1.6).abs() < 1e-12);
        assert_eq!(m.transfer(12_000_000_000), Dur::from_secs(1));
        assert_eq!(m.oversubscription_factor(10, 20), 1.0);
        assert!((m.oversubscription_factor(30, 20) - 2.0).abs() < 1e-12);
        assert_eq!(m.memory_bytes(), 24 << 30);
    }

    #[test]
    fn validation_names_the_key() {
        let m = DeviceModel {
            host_device_gbps: 0.0,
            ..DeviceModel::default()
        };
        assert!(m.validate().unwrap_err().contains("host_device_gbps"));
        let m = DeviceModel {
            concurrency_slowdown: -1.0,
            ..DeviceModel::default()
        };
        assert!(m.validate().unwrap_err().contains("concurrency_slowdown"));
        let m = DeviceModel {
            cold_start_samples_ms: vec![10.0, f64::NAN],
            ..DeviceModel::default()
        };
        assert!(m.validate().unwrap_err().contains("cold_start_samples_ms"));
        let m = DeviceModel {
            exec_overhead_ms: f64::INFINITY,
            ..DeviceModel::default()
        };
        assert!(m.validate().unwrap_err().contains("exec_overhead_ms"));
    }

    #[test]
    fn the_overhead_adds_to_every_invocations_work() {
        let own = Dur::from_millis(5);
        assert_eq!(DeviceModel::default().work(own), own);
        let m = DeviceModel {
            exec_overhead_ms: 1.6,
            ..DeviceModel::default()
        };
        assert_eq!(m.work(own), Dur::from_micros(6_600));
    }

    #[test]
    fn cold_starts_come_from_the_samples_when_given() {
        let catalogue = Dur::from_millis(500);
        let plain = DeviceModel::default();
        assert_eq!(plain.cold_start(catalogue, SandboxId(7)), catalogue);
        let samples = vec![90.0, 100.0, 110.0, 120.0];
        let m = DeviceModel {
            cold_start_samples_ms: samples.clone(),
            ..DeviceModel::default()
        };
        let draws: Vec<Dur> = (0..64)
            .map(|i| m.cold_start(catalogue, SandboxId(i)))
            .collect();
        for d in &draws {
            assert!(samples.contains(&(d.as_micros() as f64 / 1e3)), "{d:?}");
        }
        for x in &samples {
            let d = Dur::from_millis_f64(*x);
            assert!(draws.contains(&d), "sample {x} never drawn in 64 sandboxes");
        }
        assert_eq!(
            draws,
            (0..64)
                .map(|i| m.cold_start(catalogue, SandboxId(i)))
                .collect::<Vec<_>>(),
            "the same sandbox draws the same sample"
        );
        let reseeded = DeviceModel {
            cold_start_seed: 1,
            ..m.clone()
        };
        let other: Vec<Dur> = (0..64)
            .map(|i| reseeded.cold_start(catalogue, SandboxId(i)))
            .collect();
        assert_ne!(draws, other, "another seed draws differently");
    }
}
