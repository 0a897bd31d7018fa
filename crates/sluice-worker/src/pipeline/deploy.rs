//! A deployed plan: the stage instances it asked for, started as long-running sandboxes with
//! their SM share (the MPS thread percentage on a GPU; on simulated GPUs a CPU quota of that
//! share of the host's cores stands in), the shared-memory groups of co-located stages, and the
//! per-stage measurements, and which instances hand their outputs over as CUDA IPC handles.
//! Starting is all-or-nothing: if one instance fails, the others are stopped and the error names
//! the stage.

use super::instance::{Instance, InstanceConfig};
use super::payload::Group;
use super::request::DeviceHandoff;
use super::stats::{PipelineMetrics, Quantiles, Window};
use crate::devices::BackendKind;
use crate::engine::{Engine, StageHost};
use crate::function::{FunctionSpec, Resources};
use serde::Serialize;
use sluice_handoff::shm::ShmArena;
use sluice_pipeline::spec::Handoff;
use sluice_pipeline::{PipelineSpec, Plan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One deployment of one plan.
pub(crate) struct Deployment {
    pub spec: PipelineSpec,
    pub plan: Plan,
    pub generation: u64,
    pub instances: Vec<Arc<Instance>>,
    /// Instance indices per stage.
    pub by_stage: Vec<Vec<usize>>,
    pub groups: BTreeMap<u32, Group>,
    pub stage_latency: Vec<Window>,
    pub stage_batch: Vec<Window>,
    pub e2e: Window,
    pub started: Instant,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
}

/// Whether stages `a` and `b` can hand over in place on one host/GPU.
fn shares_memory(spec: &PipelineSpec, a: usize, b: usize) -> bool {
    let ok = |i: usize| {
        let s = &spec.stages[i];
        s.accepts(Handoff::Shm) || s.accepts(Handoff::CudaIpc)
    };
    ok(a) && ok(b)
}

/// GPUs on which some producer and one of its consumers are co-located.
fn colocated_gpus(spec: &PipelineSpec, plan: &Plan) -> Vec<u32> {
    let mut gpus: Vec<u32> = spec
        .edges()
        .into_iter()
        .filter(|&(a, b)| shares_memory(spec, a, b))
        .flat_map(|(a, b)| {
            plan.of_stage(a)
                .filter(move |x| plan.of_stage(b).any(|y| y.gpu == x.gpu))
                .map(|x| x.gpu)
                .collect::<Vec<_>>()
        })
        .collect();
    gpus.sort_unstable();
    gpus.dedup();
    gpus
}

/// Whether instance `k` of `plan` answers its outputs as CUDA IPC handles: its stage accepts
/// them, one of its consumer stages that accepts them has an instance on the same GPU, and the
/// GPU is real (the NVML backend) or the stage's [`DeviceHandoff`] switch forces it.
fn device_output(spec: &PipelineSpec, plan: &Plan, k: usize, backend: BackendKind) -> bool {
    let x = &plan.instances[k];
    let stage = &spec.stages[x.stage];
    let on = match DeviceHandoff::of(stage).unwrap_or_default() {
        DeviceHandoff::Auto => backend == BackendKind::Nvml,
        DeviceHandoff::CudaIpc => true,
        DeviceHandoff::Off => false,
    };
    on && stage.accepts(Handoff::CudaIpc)
        && spec.edges().into_iter().any(|(a, b)| {
            a == x.stage
                && spec.stages[b].accepts(Handoff::CudaIpc)
                && plan.of_stage(b).any(|y| y.gpu == x.gpu)
        })
}

/// Cores of this host (the device a CPU quota divides without a GPU).
pub(super) fn host_cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// The sandbox spec of an instance of `stage` with `share` % of the device: without a GPU, a CPU
/// quota of that share of the host's cores stands in for the SM share.
pub(super) fn stage_function(
    spec: &PipelineSpec,
    stage: usize,
    share: u32,
    base_dir: &Path,
    host: &StageHost,
) -> FunctionSpec {
    let s = &spec.stages[stage];
    let cores = host_cores();
    let cpus = match host.backend {
        BackendKind::Simulated => (share as f64 / 100.0 * cores).max(0.05),
        BackendKind::Nvml => cores.min(2.0),
    };
    FunctionSpec {
        name: format!("{}-{}", spec.name, s.name),
        command: s.command.clone(),
        env: s.env.clone(),
        workdir: Some(base_dir.to_path_buf()),
        resources: Resources {
            cpus,
            memory_mb: (2 * s.memory_mb).max(1024),
            pids: 256,
            gpu: host.backend == BackendKind::Nvml,
            gpu_memory_mb: s.memory_mb,
            network: false,
        },
        timeout_ms: 0,
        max_queue_ms: None,
        concurrency: 1,
        weight: 1.0,
    }
}

/// Device environment of an instance on `gpu` with `share` % of its SMs.
pub(super) fn device_env(
    host: &StageHost,
    gpu: u32,
    share: u32,
    memory_mb: u64,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("SLUICE_GPU_INDEX".to_string(), gpu.to_string()),
        ("SLUICE_SM_SHARE".to_string(), share.to_string()),
    ];
    match host.backend {
        BackendKind::Simulated => {
            env.push(("CUDA_VISIBLE_DEVICES".into(), String::new()));
            env.push(("SLUICE_SIMULATED_GPU".into(), "1".into()));
        }
        BackendKind::Nvml => {
            env.push(("CUDA_VISIBLE_DEVICES".into(), gpu.to_string()));
            if host.mps {
                env.push((
                    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE".into(),
                    share.to_string(),
                ));
                if memory_mb > 0 {
                    env.push((
                        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT".into(),
                        format!("0={memory_mb}M"),
                    ));
                }
            }
        }
    }
    env
}

impl Deployment {
    /// Starts every instance of `plan`; on failure stops what started.
    pub(crate) async fn start(
        spec: PipelineSpec,
        plan: Plan,
        base_dir: PathBuf,
        engine: &Engine,
        shm_root: &Path,
        generation: u64,
        metrics: Arc<PipelineMetrics>,
    ) -> Result<Deployment, String> {
        let host = engine.stage_host();
        if plan.gpus > host.gpus.max(1) {
            return Err(format!(
                "the plan needs {} GPUs; this worker has {}",
                plan.gpus, host.gpus
            ));
        }
        let mut groups = BTreeMap::new();
        for g in colocated_gpus(&spec, &plan) {
            let name = format!("{}-g{g}-v{generation}", spec.name);
            let arena = ShmArena::create(shm_root, &name)
                .map_err(|e| format!("shared memory for GPU {g}: {e}"))?;
            groups.insert(g, Arc::new(arena));
        }
        let mut set = tokio::task::JoinSet::new();
        for (k, x) in plan.instances.iter().enumerate() {
            let s = &spec.stages[x.stage];
            let cfg = InstanceConfig {
                pipeline: spec.name.clone(),
                stage: s.name.clone(),
                gpu: x.gpu,
                batch: x.batch,
                max_wait: Duration::from_secs_f64(s.max_wait_ms / 1e3),
                spec: stage_function(&spec, x.stage, x.sm_share, &base_dir, &host),
                extra_env: device_env(&host, x.gpu, x.sm_share, x.memory_mb),
                device_output: device_output(&spec, &plan, k, host.backend),
                accepts_ipc: s.accepts(Handoff::CudaIpc),
            };
            let group = groups.get(&x.gpu).cloned();
            let e = engine.clone();
            let (h, m) = (host.clone(), metrics.clone());
            set.spawn(async move {
                let r = Instance::start(cfg, group, h, move || e.next_serial(), m).await;
                (k, r)
            });
        }
        let mut started: Vec<Option<Arc<Instance>>> = vec![None; plan.instances.len()];
        let mut first_err = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((k, Ok(inst))) => started[k] = Some(inst),
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(e) = first_err {
            for inst in started.into_iter().flatten() {
                inst.stop().await;
            }
            return Err(e);
        }
        let instances: Vec<Arc<Instance>> = started.into_iter().flatten().collect();
        let by_stage = (0..spec.stages.len())
            .map(|s| {
                (0..instances.len())
                    .filter(|&k| plan.instances[k].stage == s)
                    .collect()
            })
            .collect();
        let n = spec.stages.len();
        Ok(Deployment {
            spec,
            plan,
            generation,
            instances,
            by_stage,
            groups,
            stage_latency: (0..n).map(|_| Window::default()).collect(),
            stage_batch: (0..n).map(|_| Window::default()).collect(),
            e2e: Window::default(),
            started: Instant::now(),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Stops every instance.
    pub(crate) async fn stop(&self) {
        for inst in &self.instances {
            inst.stop().await;
        }
    }

    /// What `GET /v1/pipelines/{name}` shows.
    pub(crate) fn status(&self) -> DeploymentStatus {
        let stages = self
            .spec
            .stages
            .iter()
            .enumerate()
            .map(|(s, st)| StageStatus {
                name: st.name.clone(),
                instances: self.by_stage[s].len(),
                queued: self.by_stage[s]
                    .iter()
                    .map(|&k| self.instances[k].load())
                    .sum(),
                mean_batch: self.stage_batch[s].summary().mean_ms,
                latency: self.stage_latency[s].summary(),
            })
            .collect();
        let shm_bytes = self.groups.values().map(|g| g.usage().bytes).sum();
        DeploymentStatus {
            generation: self.generation,
            uptime_s: self.started.elapsed().as_secs_f64(),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            latency: self.e2e.summary(),
            stages,
            shm_bytes,
            plan: self.plan.clone(),
        }
    }
}

/// A stage in the status view.
#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub name: String,
    pub instances: usize,
    pub queued: usize,
    pub mean_batch: f64,
    pub latency: Quantiles,
}

/// A deployment in the status view.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentStatus {
    pub generation: u64,
    pub uptime_s: f64,
    pub completed: u64,
    pub failed: u64,
    pub latency: Quantiles,
    pub stages: Vec<StageStatus>,
    pub shm_bytes: u64,
    pub plan: Plan,
}
