//! The worker's view of its accelerators: which GPUs exist, how much memory each has, and
//! periodic utilisation samples. NVML is loaded at run time ([`nvml`]), so one binary runs with
//! or without an NVIDIA driver; where no GPU is found, a simulated backend ([`SimulatedGpus`]) with
//! the configured count and memory stands in: the GPU queue, tokens and memory policy then run
//! unchanged while functions execute on the CPU, and the worker says so. [`MpsDaemon`] controls the
//! MPS daemon, [`sandbox_env`] computes the environment that places a sandbox on its device,
//! and [`shim`] talks to the managed-memory shim inside a sandbox.

mod mps;
pub mod nvml;
pub mod sandbox_env;
pub mod shim;
mod simulated;

pub use mps::MpsDaemon;
pub use simulated::SimulatedGpus;

use serde::{Deserialize, Serialize};

/// One schedulable device: a whole GPU, or one MIG instance of a GPU in MIG mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Position among the worker's schedulable devices (0, 1, …): the scheduler's device id
    /// and `SLUICE_GPU_INDEX`. Not NVML's index when MIG instances are present (see [`mig`]).
    ///
    /// [`mig`]: GpuInfo::mig
    pub index: u32,
    /// NVML's product name (`GPU <n>` or `GPU <n> MIG <m>` if it cannot tell), or
    /// `simulated GPU`.
    pub name: String,
    /// NVML's UUID (`GPU-…` or `MIG-…`), what sandboxes are given in `CUDA_VISIBLE_DEVICES`;
    /// empty if NVML could not read it; `SIM-<index>` for a simulated GPU.
    pub uuid: String,
    /// Total device memory, bytes (0 if NVML could not tell); the scheduler's memory capacity.
    pub memory_bytes: u64,
    /// Set when the device is a MIG instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig: Option<MigInstance>,
}

/// Where a MIG instance lives: NVML's physical GPU index and its MIG device index there.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigInstance {
    /// NVML index of the physical GPU.
    pub gpu: u32,
    /// NVML MIG device index on that GPU.
    pub instance: u32,
}

/// A compute process on a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Process id, as NVML reports it (the host's pid namespace).
    pub pid: u32,
    /// Device memory it uses, where NVML can tell.
    pub used_bytes: Option<u64>,
    /// It is an MPS client.
    pub mps: bool,
}

/// One utilisation sample of a device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// SM utilisation over the driver's last sampling period, 0..1.
    pub util: f64,
    /// Device memory in use, bytes, as NVML counts it (0 when unreadable, and on simulated
    /// GPUs).
    pub memory_used_bytes: u64,
    /// Total device memory, bytes: NVML's figure, else the capacity found at start. A device
    /// that could not be read at all gives an all-zero sample.
    pub memory_total_bytes: u64,
    /// Compute processes on the device (MPS clients included).
    pub processes: u32,
    /// Those processes.
    pub process_list: Vec<GpuProcess>,
}

/// Where the devices come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Real NVIDIA GPUs found through NVML.
    Nvml,
    /// No GPU found (or `force_simulated`): simulated devices, functions run on the CPU.
    Simulated,
}

/// A source of devices and samples.
pub trait DeviceBackend: Send + Sync {
    /// Whether the devices are real or simulated.
    fn kind(&self) -> BackendKind;
    /// The schedulable devices, fixed at start, in index order.
    fn gpus(&self) -> &[GpuInfo];
    /// A fresh sample per device, in `gpus()` order.
    fn sample(&self) -> Vec<GpuSample>;
    /// Puts every device in exclusive-process compute mode (one CUDA context per device: with
    /// MPS, the MPS server's), as the MPS documentation recommends. Needs root; a backend
    /// without compute modes says so.
    fn set_exclusive_process(&self) -> Result<(), String> {
        Err("this backend has no compute modes".into())
    }
}

/// Simulated devices to use when no GPU is found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedConfig {
    /// How many GPUs to simulate (at least one is).
    pub count: u32,
    /// Memory of each, GiB.
    pub memory_gib: f64,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            count: 1,
            memory_gib: 24.0,
        }
    }
}

/// NVML's devices if the library loads and reports at least one GPU, else simulated ones.
/// `force_simulated` skips NVML (tests, or a GPU host that should not be used).
pub fn detect(sim: &SimulatedConfig, force_simulated: bool) -> Box<dyn DeviceBackend> {
    if !force_simulated {
        match nvml::NvmlLib::init().and_then(nvml::NvmlGpus::open) {
            Ok(Some(g)) => return Box::new(g),
            Ok(None) => tracing::info!("NVML loaded but reports no GPU"),
            Err(e) => tracing::info!("no NVML ({e}); using simulated GPUs"),
        }
    }
    Box::new(SimulatedGpus::new(sim))
}
