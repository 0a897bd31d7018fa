//! Devices and samples from NVML, loaded at run time through `nvml-wrapper` (dlopen of
//! `libnvidia-ml.so`), so the worker builds and runs where no driver is installed.

use super::{BackendKind, DeviceBackend, GpuInfo, GpuSample};
use nvml_wrapper::Nvml;

pub(super) struct NvmlGpus {
    nvml: Nvml,
    gpus: Vec<GpuInfo>,
}

impl NvmlGpus {
    /// `Ok(None)` when NVML works but sees no device.
    pub(super) fn open() -> Result<Option<NvmlGpus>, nvml_wrapper::error::NvmlError> {
        let nvml = Nvml::init()?;
        let n = nvml.device_count()?;
        let mut gpus = Vec::new();
        for index in 0..n {
            let d = nvml.device_by_index(index)?;
            gpus.push(GpuInfo {
                index,
                name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
                uuid: d.uuid().unwrap_or_default(),
                memory_bytes: d.memory_info().map(|m| m.total).unwrap_or(0),
            });
        }
        Ok((!gpus.is_empty()).then_some(NvmlGpus { nvml, gpus }))
    }
}

impl DeviceBackend for NvmlGpus {
    fn kind(&self) -> BackendKind {
        BackendKind::Nvml
    }

    fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    fn sample(&self) -> Vec<GpuSample> {
        self.gpus
            .iter()
            .map(|g| {
                let Ok(d) = self.nvml.device_by_index(g.index) else {
                    return GpuSample::default();
                };
                let mem = d.memory_info().ok();
                GpuSample {
                    util: d
                        .utilization_rates()
                        .map(|u| f64::from(u.gpu) / 100.0)
                        .unwrap_or(0.0),
                    memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
                    memory_total_bytes: mem.as_ref().map_or(g.memory_bytes, |m| m.total),
                    processes: d
                        .running_compute_processes()
                        .map(|p| p.len() as u32)
                        .unwrap_or(0),
                }
            })
            .collect()
    }
}
