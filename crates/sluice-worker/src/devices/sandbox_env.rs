//! The environment that places a GPU sandbox on its device — the one place for functions and
//! pipeline stage instances alike: which device it sees (by UUID, the only name of a MIG
//! instance), its MPS pipe directory, SM share and pinned memory limit, and the managed-memory
//! shim (preload, control socket, budget). On simulated GPUs the sandbox sees no device at all
//! and is told so. The MPS pipe directory must also be bound into the sandbox (the worker's
//! sandbox adapter binds `CUDA_MPS_PIPE_DIRECTORY` read-write).

use super::shim::SOCKET_NAME;
use super::{BackendKind, GpuInfo};
use std::path::Path;

/// Everything the environment depends on.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// Real or simulated devices; on simulated ones the sandbox sees no device at all.
    pub backend: BackendKind,
    /// The device the sandbox runs on, named to it by UUID (by index if it has none).
    pub gpu: &'a GpuInfo,
    /// The sandbox's share of the device's SMs, percent (a function: 100/D for D concurrent
    /// invocations per device; a pipeline stage: its plan's share).
    pub sm_share: u32,
    /// The function's declared device memory, 0 if none.
    pub gpu_memory_mb: u64,
    /// MPS is on: the daemon's pipe directory.
    pub mps_pipe_dir: Option<&'a Path>,
    /// The shim is on: its library and the sandbox's socket directory as the sandbox sees it.
    pub shim: Option<(&'a Path, &'a Path)>,
}

/// The variables, in a stable order.
pub fn gpu_env(p: &Placement<'_>) -> Vec<(String, String)> {
    let mut env = vec![("SLUICE_GPU_INDEX".to_string(), p.gpu.index.to_string())];
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    if p.backend == BackendKind::Simulated {
        set("CUDA_VISIBLE_DEVICES", String::new());
        set("SLUICE_SIMULATED_GPU", "1".into());
        return env;
    }
    // The UUID names the device whatever CUDA_DEVICE_ORDER is, and is the only name of a MIG
    // instance.
    let visible = if p.gpu.uuid.is_empty() {
        p.gpu.index.to_string()
    } else {
        p.gpu.uuid.clone()
    };
    set("CUDA_VISIBLE_DEVICES", visible);
    if let Some(pipe) = p.mps_pipe_dir {
        set("CUDA_MPS_PIPE_DIRECTORY", pipe.display().to_string());
        set(
            "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
            p.sm_share.clamp(1, 100).to_string(),
        );
        if p.gpu_memory_mb > 0 {
            set(
                "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
                format!("0={}M", p.gpu_memory_mb),
            );
        }
    }
    if let Some((library, dir)) = p.shim {
        set("LD_PRELOAD", library.display().to_string());
        set(
            "SLUICE_SHIM_SOCKET",
            dir.join(SOCKET_NAME).display().to_string(),
        );
        if p.gpu_memory_mb > 0 {
            set(
                "SLUICE_SHIM_BUDGET_BYTES",
                p.gpu_memory_mb.saturating_mul(1 << 20).to_string(),
            );
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn gpu(uuid: &str) -> GpuInfo {
        GpuInfo {
            index: 1,
            name: "g".into(),
            uuid: uuid.into(),
            memory_bytes: 1 << 30,
            mig: None,
        }
    }

    fn env(p: &Placement<'_>) -> HashMap<String, String> {
        gpu_env(p).into_iter().collect()
    }

    fn placement(g: &GpuInfo) -> Placement<'_> {
        Placement {
            backend: BackendKind::Nvml,
            gpu: g,
            sm_share: 50,
            gpu_memory_mb: 512,
            mps_pipe_dir: None,
            shim: None,
        }
    }

    #[test]
    fn simulated_sandboxes_see_no_device_and_no_shim() {
        let g = gpu("SIM-1");
        let lib = Path::new("/lib/libsluice_shim.so");
        let p = Placement {
            backend: BackendKind::Simulated,
            shim: Some((lib, Path::new("/sb"))),
            mps_pipe_dir: Some(Path::new("/mps")),
            ..placement(&g)
        };
        let e = env(&p);
        assert_eq!(e["CUDA_VISIBLE_DEVICES"], "");
        assert_eq!(e["SLUICE_SIMULATED_GPU"], "1");
        assert!(!e.contains_key("LD_PRELOAD") && !e.contains_key("CUDA_MPS_PIPE_DIRECTORY"));
    }

    #[test]
    fn real_devices_are_named_by_uuid() {
        let g = gpu("MIG-abc");
        assert_eq!(env(&placement(&g))["CUDA_VISIBLE_DEVICES"], "MIG-abc");
        let g = gpu("");
        assert_eq!(env(&placement(&g))["CUDA_VISIBLE_DEVICES"], "1");
    }

    #[test]
    fn mps_shares_are_passed_on() {
        let g = gpu("GPU-1");
        for (d, share) in [(100, "100"), (50, "50"), (25, "25")] {
            let p = Placement {
                sm_share: d,
                mps_pipe_dir: Some(Path::new("/data/mps/pipe")),
                ..placement(&g)
            };
            let e = env(&p);
            assert_eq!(e["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], share);
            assert_eq!(e["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], "0=512M");
            assert_eq!(e["CUDA_MPS_PIPE_DIRECTORY"], "/data/mps/pipe");
        }
        assert!(!env(&placement(&g)).contains_key("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"));
    }

    #[test]
    fn the_shim_gets_its_socket_and_budget() {
        let g = gpu("GPU-1");
        let lib = Path::new("/opt/sluice/libsluice_shim.so");
        let p = Placement {
            shim: Some((lib, Path::new("/run/sluice"))),
            ..placement(&g)
        };
        let e = env(&p);
        assert_eq!(e["LD_PRELOAD"], "/opt/sluice/libsluice_shim.so");
        assert_eq!(e["SLUICE_SHIM_SOCKET"], "/run/sluice/shim.sock");
        assert_eq!(e["SLUICE_SHIM_BUDGET_BYTES"], (512u64 << 20).to_string());
        let p = Placement {
            gpu_memory_mb: 0,
            ..p
        };
        assert!(!env(&p).contains_key("SLUICE_SHIM_BUDGET_BYTES"));
    }
}
