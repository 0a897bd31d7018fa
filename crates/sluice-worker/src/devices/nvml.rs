//! Devices and samples from NVML, loaded at run time through `nvml-wrapper` (dlopen of
//! `libnvidia-ml.so`), so the worker builds and runs where no driver is installed.
//!
//! A GPU in MIG mode is not scheduled as one device: each of its MIG instances becomes a device
//! of its own (its own memory, processes and `CUDA_VISIBLE_DEVICES=MIG-…` UUID). Samples carry
//! SM utilisation (not reported per MIG instance: 0 there), memory, and the compute processes,
//! MPS clients included. What the backend reads goes through [`NvmlApi`], so the enumeration and
//! sampling logic is tested against a fake.

use super::{BackendKind, DeviceBackend, GpuInfo, GpuProcess, GpuSample};
use nvml_wrapper::enum_wrappers::device::ComputeMode;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

/// `NVML_DEVICE_MIG_ENABLE` (nvml.h).
const MIG_ENABLED: u32 = 1;

/// One NVML device: a physical GPU, or MIG instance `index` of physical GPU `gpu`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handle {
    /// A physical GPU, by NVML index.
    Gpu(u32),
    /// A MIG instance.
    Mig {
        /// NVML index of the physical GPU.
        gpu: u32,
        /// NVML MIG device index on that GPU.
        index: u32,
    },
}

/// What NVML says about a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    /// Product name (`GPU <n>` or `GPU <n> MIG <m>` where NVML cannot tell).
    pub name: String,
    /// UUID (`GPU-…` or `MIG-…`); empty where NVML cannot tell.
    pub uuid: String,
    /// Total memory, bytes; 0 where NVML cannot tell.
    pub memory_bytes: u64,
    /// Physical GPUs only: MIG mode is on.
    pub mig_enabled: bool,
}

/// A reading of one device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// SM utilisation in percent, where NVML reports it.
    pub util_percent: Option<u32>,
    /// Memory in use, bytes; 0 if unreadable.
    pub memory_used_bytes: u64,
    /// Total memory, bytes; 0 if unreadable.
    pub memory_total_bytes: u64,
    /// Compute processes as `(pid, device memory used in bytes where NVML can tell)`; empty if
    /// unreadable.
    pub compute: Vec<(u32, Option<u64>)>,
    /// MPS client processes, in the same form as `compute`.
    pub mps: Vec<(u32, Option<u64>)>,
}

/// The NVML calls the backend makes.
pub trait NvmlApi: Send + Sync {
    /// Physical GPUs (`nvmlDeviceGetCount`).
    fn device_count(&self) -> Result<u32, NvmlError>;
    /// Name, UUID, memory and MIG mode of a device; an error only if the device itself cannot
    /// be opened.
    fn describe(&self, h: Handle) -> Result<Described, NvmlError>;
    /// The MIG instances that exist on physical GPU `gpu`.
    fn mig_instances(&self, gpu: u32) -> Result<Vec<Handle>, NvmlError>;
    /// A fresh reading of a device; an error only if the device cannot be opened.
    fn read(&self, h: Handle) -> Result<Reading, NvmlError>;
    /// Sets a device's compute mode (needs root).
    fn set_compute_mode(&self, h: Handle, mode: ComputeMode) -> Result<(), NvmlError>;
}

/// The real NVML.
pub struct NvmlLib(Nvml);

impl NvmlLib {
    /// Loads `libnvidia-ml.so` and initialises NVML; fails where no driver is installed.
    pub fn init() -> Result<NvmlLib, NvmlError> {
        Nvml::init().map(NvmlLib)
    }

    fn device(&self, h: Handle) -> Result<Device<'_>, NvmlError> {
        match h {
            Handle::Gpu(i) => self.0.device_by_index(i),
            Handle::Mig { gpu, index } => self.0.device_by_index(gpu)?.mig_device_by_index(index),
        }
    }
}

fn processes(
    list: Result<Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>, NvmlError>,
) -> Vec<(u32, Option<u64>)> {
    list.unwrap_or_default()
        .into_iter()
        .map(|p| {
            let used = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            (p.pid, used)
        })
        .collect()
}

impl NvmlApi for NvmlLib {
    fn device_count(&self) -> Result<u32, NvmlError> {
        self.0.device_count()
    }

    fn describe(&self, h: Handle) -> Result<Described, NvmlError> {
        let d = self.device(h)?;
        let fallback = match h {
            Handle::Gpu(i) => format!("GPU {i}"),
            Handle::Mig { gpu, index } => format!("GPU {gpu} MIG {index}"),
        };
        Ok(Described {
            name: d.name().unwrap_or(fallback),
            uuid: d.uuid().unwrap_or_default(),
            memory_bytes: d.memory_info().map_or(0, |m| m.total),
            mig_enabled: matches!(h, Handle::Gpu(_))
                && d.mig_mode().is_ok_and(|m| m.current == MIG_ENABLED),
        })
    }

    fn mig_instances(&self, gpu: u32) -> Result<Vec<Handle>, NvmlError> {
        let d = self.0.device_by_index(gpu)?;
        let mut out = Vec::new();
        for index in 0..d.mig_device_count()? {
            match d.mig_device_by_index(index) {
                Ok(_) => out.push(Handle::Mig { gpu, index }),
                Err(NvmlError::NotFound | NvmlError::InvalidArg) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn read(&self, h: Handle) -> Result<Reading, NvmlError> {
        let d = self.device(h)?;
        let mem = d.memory_info().ok();
        Ok(Reading {
            util_percent: d.utilization_rates().ok().map(|u| u.gpu),
            memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
            memory_total_bytes: mem.as_ref().map_or(0, |m| m.total),
            compute: processes(d.running_compute_processes()),
            mps: processes(d.mps_running_compute_processes()),
        })
    }

    fn set_compute_mode(&self, h: Handle, mode: ComputeMode) -> Result<(), NvmlError> {
        self.device(h)?.set_compute_mode(mode)
    }
}

/// The schedulable devices NVML reports.
pub struct NvmlGpus<A: NvmlApi = NvmlLib> {
    api: A,
    gpus: Vec<GpuInfo>,
    handles: Vec<Handle>,
}

impl<A: NvmlApi> NvmlGpus<A> {
    /// Enumerates the devices (MIG instances in place of a GPU in MIG mode); `Ok(None)` when
    /// there is none.
    pub fn open(api: A) -> Result<Option<NvmlGpus<A>>, NvmlError> {
        let mut handles = Vec::new();
        for gpu in 0..api.device_count()? {
            let d = api.describe(Handle::Gpu(gpu))?;
            if d.mig_enabled {
                handles.extend(api.mig_instances(gpu)?);
            } else {
                handles.push(Handle::Gpu(gpu));
            }
        }
        let mut gpus = Vec::with_capacity(handles.len());
        for (index, &h) in handles.iter().enumerate() {
            let d = api.describe(h)?;
            gpus.push(GpuInfo {
                index: index as u32,
                name: d.name,
                uuid: d.uuid,
                memory_bytes: d.memory_bytes,
                mig: match h {
                    Handle::Gpu(_) => None,
                    Handle::Mig { gpu, index } => Some(super::MigInstance {
                        gpu,
                        instance: index,
                    }),
                },
            });
        }
        Ok((!gpus.is_empty()).then_some(NvmlGpus { api, gpus, handles }))
    }
}

/// A sample from a reading; processes seen both as compute and as MPS clients count once.
fn to_sample(r: Reading, capacity: u64) -> GpuSample {
    let mut list: Vec<GpuProcess> = Vec::new();
    for (pid, used, mps) in r
        .compute
        .iter()
        .map(|&(p, u)| (p, u, false))
        .chain(r.mps.iter().map(|&(p, u)| (p, u, true)))
    {
        match list.iter_mut().find(|p| p.pid == pid) {
            Some(p) => p.mps |= mps,
            None => list.push(GpuProcess {
                pid,
                used_bytes: used,
                mps,
            }),
        }
    }
    GpuSample {
        util: f64::from(r.util_percent.unwrap_or(0)) / 100.0,
        memory_used_bytes: r.memory_used_bytes,
        memory_total_bytes: if r.memory_total_bytes > 0 {
            r.memory_total_bytes
        } else {
            capacity
        },
        processes: list.len() as u32,
        process_list: list,
    }
}

impl<A: NvmlApi> DeviceBackend for NvmlGpus<A> {
    fn kind(&self) -> BackendKind {
        BackendKind::Nvml
    }

    fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    fn sample(&self) -> Vec<GpuSample> {
        self.handles
            .iter()
            .zip(&self.gpus)
            .map(|(&h, g)| {
                self.api
                    .read(h)
                    .map_or_else(|_| GpuSample::default(), |r| to_sample(r, g.memory_bytes))
            })
            .collect()
    }

    fn set_exclusive_process(&self) -> Result<(), String> {
        for (&h, g) in self.handles.iter().zip(&self.gpus) {
            self.api
                .set_compute_mode(h, ComputeMode::ExclusiveProcess)
                .map_err(|e| format!("GPU {} ({}): {e}", g.index, g.uuid))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// GPU 0 whole, GPU 1 in MIG mode with instances 0 and 2; records compute-mode changes.
    struct FakeNvml {
        modes: Mutex<Vec<(Handle, ComputeMode)>>,
    }

    impl FakeNvml {
        fn new() -> Self {
            FakeNvml {
                modes: Mutex::new(Vec::new()),
            }
        }
    }

    impl NvmlApi for FakeNvml {
        fn device_count(&self) -> Result<u32, NvmlError> {
            Ok(2)
        }

        fn describe(&self, h: Handle) -> Result<Described, NvmlError> {
            let (name, uuid, memory_bytes, mig_enabled) = match h {
                Handle::Gpu(0) => ("A100", "GPU-0".to_string(), 40 << 30, false),
                Handle::Gpu(1) => ("A100", "GPU-1".to_string(), 40 << 30, true),
                Handle::Mig { gpu: 1, index } => (
                    "A100 MIG 3g.20gb",
                    format!("MIG-1-{index}"),
                    20 << 30,
                    false,
                ),
                _ => return Err(NvmlError::NotFound),
            };
            Ok(Described {
                name: name.into(),
                uuid,
                memory_bytes,
                mig_enabled,
            })
        }

        fn mig_instances(&self, gpu: u32) -> Result<Vec<Handle>, NvmlError> {
            Ok(vec![
                Handle::Mig { gpu, index: 0 },
                Handle::Mig { gpu, index: 2 },
            ])
        }

        fn read(&self, h: Handle) -> Result<Reading, NvmlError> {
            match h {
                Handle::Gpu(0) => Ok(Reading {
                    util_percent: Some(75),
                    memory_used_bytes: 3 << 30,
                    memory_total_bytes: 40 << 30,
                    // The MPS server as a compute process; two clients, one also listed there.
                    compute: vec![(100, Some(1 << 30)), (201, Some(512 << 20))],
                    mps: vec![(201, Some(512 << 20)), (202, None)],
                }),
                Handle::Mig { index: 0, .. } => Ok(Reading {
                    util_percent: None,
                    memory_used_bytes: 1 << 30,
                    memory_total_bytes: 0,
                    compute: vec![(300, Some(1 << 30))],
                    mps: vec![],
                }),
                _ => Err(NvmlError::Unknown),
            }
        }

        fn set_compute_mode(&self, h: Handle, mode: ComputeMode) -> Result<(), NvmlError> {
            if h == (Handle::Mig { gpu: 1, index: 2 }) {
                return Err(NvmlError::NoPermission);
            }
            self.modes.lock().unwrap().push((h, mode));
            Ok(())
        }
    }

    #[test]
    fn mig_instances_are_separate_devices() {
        let g = NvmlGpus::open(FakeNvml::new()).unwrap().unwrap();
        let uuids: Vec<&str> = g.gpus().iter().map(|d| d.uuid.as_str()).collect();
        assert_eq!(uuids, ["GPU-0", "MIG-1-0", "MIG-1-2"]);
        let idx: Vec<u32> = g.gpus().iter().map(|d| d.index).collect();
        assert_eq!(idx, [0, 1, 2]);
        assert_eq!(g.gpus()[0].mig, None);
        assert_eq!(
            g.gpus()[2].mig,
            Some(crate::devices::MigInstance {
                gpu: 1,
                instance: 2
            })
        );
        assert_eq!(g.gpus()[1].memory_bytes, 20 << 30);
    }

    #[test]
    fn samples_count_mps_clients_once_and_survive_errors() {
        let g = NvmlGpus::open(FakeNvml::new()).unwrap().unwrap();
        let s = g.sample();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].util, 0.75);
        assert_eq!(s[0].memory_used_bytes, 3 << 30);
        assert_eq!(s[0].processes, 3);
        let pids: Vec<(u32, bool)> = s[0].process_list.iter().map(|p| (p.pid, p.mps)).collect();
        assert_eq!(pids, [(100, false), (201, true), (202, true)]);
        assert_eq!(s[0].process_list[2].used_bytes, None);
        // MIG: no utilisation from NVML, capacity from the device when the reading has none.
        assert_eq!(s[1].util, 0.0);
        assert_eq!(s[1].memory_total_bytes, 20 << 30);
        assert_eq!(s[1].processes, 1);
        // A device whose reading fails gives an empty sample, not an error.
        assert_eq!(s[2], GpuSample::default());
    }

    #[test]
    fn exclusive_process_mode_reaches_every_device_and_reports_refusals() {
        let g = NvmlGpus::open(FakeNvml::new()).unwrap().unwrap();
        let e = g.set_exclusive_process().unwrap_err();
        assert!(e.contains("MIG-1-2"), "{e}");
        let modes = g.api.modes.lock().unwrap().clone();
        assert_eq!(
            modes,
            [
                (Handle::Gpu(0), ComputeMode::ExclusiveProcess),
                (
                    Handle::Mig { gpu: 1, index: 0 },
                    ComputeMode::ExclusiveProcess
                )
            ]
        );
    }
}
