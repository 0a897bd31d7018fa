//! Simulated GPUs: a configured count and memory size, no hardware. The worker keeps the same
//! GPU queue, tokens and memory accounting and reports utilisation from its own bookkeeping.

use super::{BackendKind, DeviceBackend, GpuInfo, GpuSample, SimulatedConfig};

/// A [`DeviceBackend`] of simulated GPUs: index, a `SIM-<index>` UUID and the configured
/// memory each; samples report only the total memory (utilisation 0, no processes).
pub struct SimulatedGpus {
    gpus: Vec<GpuInfo>,
}

impl SimulatedGpus {
    /// `cfg.count` GPUs (at least one) of `cfg.memory_gib` GiB each (a negative size counts as
    /// 0).
    pub fn new(cfg: &SimulatedConfig) -> Self {
        let bytes = (cfg.memory_gib.max(0.0) * (1u64 << 30) as f64) as u64;
        SimulatedGpus {
            gpus: (0..cfg.count.max(1))
                .map(|index| GpuInfo {
                    index,
                    name: "simulated GPU".into(),
                    uuid: format!("SIM-{index}"),
                    memory_bytes: bytes,
                    mig: None,
                })
                .collect(),
        }
    }
}

impl DeviceBackend for SimulatedGpus {
    fn kind(&self) -> BackendKind {
        BackendKind::Simulated
    }

    fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    fn sample(&self) -> Vec<GpuSample> {
        self.gpus
            .iter()
            .map(|g| GpuSample {
                memory_total_bytes: g.memory_bytes,
                ..GpuSample::default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::detect;

    #[test]
    fn simulated_devices_follow_the_config() {
        let s = SimulatedGpus::new(&SimulatedConfig {
            count: 2,
            memory_gib: 1.0,
        });
        assert_eq!(s.gpus().len(), 2);
        assert_eq!(s.gpus()[1].memory_bytes, 1 << 30);
        assert_eq!(s.sample()[0].memory_total_bytes, 1 << 30);
    }

    #[test]
    fn detection_without_a_driver_falls_back_to_simulated() {
        // This host has no NVIDIA driver; a GPU host would report Nvml here.
        let b = detect(&SimulatedConfig::default(), false);
        if std::path::Path::new("/dev/nvidiactl").exists() {
            return;
        }
        assert_eq!(b.kind(), BackendKind::Simulated);
        assert_eq!(
            detect(&SimulatedConfig::default(), true).kind(),
            BackendKind::Simulated
        );
    }
}
