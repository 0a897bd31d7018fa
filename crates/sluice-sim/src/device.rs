//! The simulated device model: how long work takes on a modelled GPU (or CPU) given what else
//! runs there and where memory is. Every parameter lives in the simulator's config file so it
//! can be calibrated on a real GPU; docs/simulator.md states the model and its assumptions.
//!
//! - Execution: an invocation brings `solo` microseconds of work (its warm time alone on the
//!   device). With `k` invocations executing on one device, each progresses at rate
//!   `1 / (1 + concurrency_slowdown·(k−1))` (processor sharing: rates change whenever k does).
//! - Cold start: a new sandbox takes the function's `cold_start` before its first execution.
//! - Memory movement: bytes move over one copy channel per device at `host_device_gbps`, in
//!   order; an execution waits for its own sandbox's bytes.
//! - Oversubscription: when resident memory exceeds physical capacity (only if configured), work
//!   started then is stretched by `1 + oversubscription_penalty·excess/capacity` (page faults).

use serde::{Deserialize, Serialize};
use sluice_core::Dur;

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
}

impl Default for DeviceModel {
    fn default() -> Self {
        DeviceModel {
            kind: DeviceKind::Gpu,
            memory_gib: 24.0,
            concurrency_slowdown: 0.6,
            host_device_gbps: 12.0,
            oversubscription_penalty: 2.0,
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
            (
                "device.oversubscription_penalty",
                self.oversubscription_penalty,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} must be a non-negative number, got {v}"));
            }
        }
        Ok(())
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
    }
}
