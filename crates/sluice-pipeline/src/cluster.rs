//! The hardware a plan is made for: a GPU model (SMs, memory, DRAM bandwidth) repeated `count`
//! times, and the cost of handing data between stages that are not co-located. Plain data with
//! defaults for the RTX 2080 Ti the Gpu-let profiles were measured on.

use serde::{Deserialize, Serialize};

/// One kind of GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuModel {
    /// Model name, for plans and reports (e.g. `rtx-2080-ti`).
    pub name: String,
    /// Streaming multiprocessors on one GPU; an SM share of 100% is all of them.
    pub sms: u32,
    /// Device memory of one GPU, MiB; a plan's instances on one GPU must fit in it.
    pub memory_mb: u64,
    /// Peak DRAM bandwidth of one GPU, GB/s (descriptive: the contention model works from
    /// utilisation fractions, not from this figure).
    pub dram_gbps: f64,
}

impl GpuModel {
    /// NVIDIA RTX 2080 Ti: 68 SMs, 11 GB, 616 GB/s (data/README.md).
    pub fn rtx_2080_ti() -> Self {
        GpuModel {
            name: "rtx-2080-ti".into(),
            sms: 68,
            memory_mb: 11 * 1024,
            dram_gbps: 616.0,
        }
    }
}

/// Cost of moving one item's payload from a producer instance to a consumer instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkModel {
    /// Fixed cost of a hand-off in place (same GPU or host: pass a handle), ms.
    pub inplace_ms: f64,
    /// Fixed cost of a copy (device→host→socket→host→device), ms.
    pub copy_fixed_ms: f64,
    /// Bandwidth of that copy path, GB/s.
    pub copy_gbps: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            inplace_ms: 0.05,
            copy_fixed_ms: 0.3,
            copy_gbps: 6.0,
        }
    }
}

impl LinkModel {
    /// Milliseconds to hand over `kb` kilobytes, in place or by copy.
    pub fn cost_ms(&self, kb: f64, in_place: bool) -> f64 {
        if in_place {
            self.inplace_ms
        } else {
            self.copy_fixed_ms + kb / 1024.0 / 1024.0 / self.copy_gbps * 1000.0
        }
    }
}

/// `count` identical GPUs plus the link model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The GPU model every one of the `count` GPUs is.
    pub gpu: GpuModel,
    /// Number of GPUs; plans index them `0..count`.
    pub count: u32,
    /// Cost of hand-offs between stages; [`LinkModel::default`] when absent from the file.
    #[serde(default)]
    pub link: LinkModel,
}

impl Cluster {
    /// `count` GPUs of model `gpu`, with the default link model.
    pub fn new(gpu: GpuModel, count: u32) -> Self {
        Cluster {
            gpu,
            count,
            link: LinkModel::default(),
        }
    }
}
