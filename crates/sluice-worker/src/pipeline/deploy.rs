//! A deployed plan: the stage instances it asked for, started as long-running sandboxes with
//! their SM share (the MPS thread percentage on a GPU; on simulated GPUs a CPU quota of that
//! share of the host's cores stands in), the shared-memory groups of co-located stages, and the
//! per-stage measurements, and which instances hand their outputs over as CUDA IPC handles.
//! Starting is all-or-nothing: if one instance fails, the others are stopped and the error names
//! the stage.

use super::error::DeployError;
use super::instance::{Instance, InstanceConfig};
use super::payload::Group;
use super::request::DeviceHandoff;
use super::stats::{PipelineMetrics, Quantiles, Window};
use crate::devices::sandbox_env::{gpu_env, Placement};
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

/// Relative entries of a stage's `PYTHONPATH` resolved against the pipeline's base directory
/// (as `sluice fn register` does for functions), so that the sandbox binds what they name.
fn resolve_python_path(
    env: &BTreeMap<String, String>,
    base_dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = env.clone();
    if let Some(v) = env.get_mut("PYTHONPATH") {
        let parts: Vec<String> = v
            .split(':')
            .map(|p| match Path::new(p) {
                rel if rel.is_relative() && !p.is_empty() => {
                    base_dir.join(rel).display().to_string()
                }
                _ => p.to_string(),
            })
            .collect();
        *v = parts.join(":");
    }
    env
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
    let image = s.image.clone().map(crate::images::ImageRef::from);
    // An image stage's workdir and env name paths inside its image.
    let (env, workdir) = match image {
        Some(_) => (s.env.clone(), None),
        None => (
            resolve_python_path(&s.env, base_dir),
            Some(base_dir.to_path_buf()),
        ),
    };
    FunctionSpec {
        name: format!("{}-{}", spec.name, s.name),
        command: s.command.clone(),
        image,
        resolved: None,
        env,
        workdir,
        files: Vec::new(),
        resources: Resources {
            cpus,
            memory_mb: (2 * s.memory_mb).max(1024),
            pids: 256,
            gpu: host.backend == BackendKind::Nvml,
            gpu_memory_mb: s.memory_mb,
            network: false,
            tmp_mb: 64,
        },
        timeout_ms: 0,
        max_queue_ms: None,
        concurrency: 1,
        weight: 1.0,
    }
}

/// The holder name a pipeline's stages hold their images under.
pub(crate) fn image_holder(pipeline: &str) -> String {
    format!("pipeline:{pipeline}")
}

/// Resolves the image of every stage that runs from one (on a blocking thread: it may import
/// and unpack), held by the pipeline.
async fn resolve_images(
    spec: &PipelineSpec,
    base_dir: &Path,
    host: &StageHost,
) -> Result<BTreeMap<usize, Arc<crate::images::ResolvedImage>>, String> {
    let mut out = BTreeMap::new();
    for (i, s) in spec.stages.iter().enumerate() {
        let f = stage_function(spec, i, 100, base_dir, host);
        let Some(image) = f.image.clone() else {
            continue;
        };
        let images = host
            .images
            .clone()
            .ok_or("this worker has no image store")?;
        let holder = image_holder(&spec.name);
        let r = tokio::task::spawn_blocking(move || {
            images.resolve(&image, &f.command, f.workdir.as_deref(), &f.env, &holder)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("stage {:?}: {e}", s.name))?;
        out.insert(i, r.image);
    }
    Ok(out)
}

/// Device environment of an instance on `gpu` with `share` % of its SMs: the same placement a
/// function gets (`devices::sandbox_env`: the device's UUID, the MPS pipe directory, SM share
/// and memory limit), plus `SLUICE_SM_SHARE`.
pub(super) fn device_env(
    host: &StageHost,
    gpu: u32,
    share: u32,
    memory_mb: u64,
) -> Vec<(String, String)> {
    let mut env = match host.gpu_info.get(gpu as usize) {
        Some(info) => gpu_env(&Placement {
            backend: host.backend,
            gpu: info,
            sm_share: share,
            gpu_memory_mb: memory_mb,
            mps_pipe_dir: host.mps_pipe.as_deref(),
            shim: None,
        }),
        None => vec![
            ("SLUICE_GPU_INDEX".to_string(), gpu.to_string()),
            ("CUDA_VISIBLE_DEVICES".to_string(), String::new()),
        ],
    };
    env.push(("SLUICE_SM_SHARE".to_string(), share.to_string()));
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
    ) -> Result<Deployment, DeployError> {
        let host = engine.stage_host();
        if plan.gpus > host.gpus.max(1) {
            return Err(DeployError::TooManyGpus {
                needs: plan.gpus,
                has: host.gpus,
            });
        }
        let mut groups = BTreeMap::new();
        // The stages of a group share its directory, so they share a user: the MPS clients'
        // one when MPS is on (it serves one user at a time), else one of the group's own.
        let mut users = BTreeMap::new();
        for g in colocated_gpus(&spec, &plan) {
            let name = format!("{}-g{g}-v{generation}", spec.name);
            let shm = |e: &dyn std::fmt::Display| DeployError::SharedMemory {
                gpu: g,
                reason: e.to_string(),
            };
            let arena = ShmArena::create(shm_root, &name).map_err(|e| shm(&e))?;
            let user = match &host.mps_user {
                Some(u) => u.clone(),
                None => host.launcher.lease_user().ok_or(DeployError::NoUser)?,
            };
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(arena.dir(), std::fs::Permissions::from_mode(0o700))
                .and_then(|()| user.chown(arena.dir()))
                .map_err(|e| shm(&e))?;
            users.insert(g, user);
            groups.insert(g, Arc::new(arena));
        }
        let images = resolve_images(&spec, &base_dir, &host)
            .await
            .map_err(DeployError::Image)?;
        let mut set = tokio::task::JoinSet::new();
        for (k, x) in plan.instances.iter().enumerate() {
            let s = &spec.stages[x.stage];
            let mut fspec = stage_function(&spec, x.stage, x.sm_share, &base_dir, &host);
            fspec.resolved = images.get(&x.stage).cloned();
            let cfg = InstanceConfig {
                pipeline: spec.name.clone(),
                stage: s.name.clone(),
                gpu: x.gpu,
                batch: x.batch,
                max_wait: Duration::from_secs_f64(s.max_wait_ms / 1e3),
                spec: fspec,
                extra_env: device_env(&host, x.gpu, x.sm_share, x.memory_mb),
                device_output: device_output(&spec, &plan, k, host.backend),
                accepts_ipc: s.accepts(Handoff::CudaIpc),
                user: users.get(&x.gpu).or(host.mps_user.as_ref()).cloned(),
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
                    first_err.get_or_insert(DeployError::Stage(e));
                }
                Err(e) => {
                    first_err.get_or_insert(DeployError::Task(e.to_string()));
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
    /// The stage's name in the spec.
    pub name: String,
    /// Running copies of the stage in the plan.
    pub instances: usize,
    /// Items queued or being run at its instances now.
    pub queued: usize,
    /// Mean batch size over the stage's last 4096 items (each item counts its batch's size).
    pub mean_batch: f64,
    /// Per-item stage latency over its last 4096 items (from queued at an instance to its
    /// batch's answer), ms.
    pub latency: Quantiles,
}

/// A deployment in the status view.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentStatus {
    /// This deployment's number, from a counter the worker's pipelines share (from 1 at each
    /// worker start): every create, update and re-plan takes the next.
    pub generation: u64,
    /// Seconds since this deployment's instances started.
    pub uptime_s: f64,
    /// Requests this deployment answered successfully.
    pub completed: u64,
    /// Requests of this deployment that failed or timed out.
    pub failed: u64,
    /// End-to-end latency over the last 4096 successful requests, ms.
    pub latency: Quantiles,
    /// Per stage, in spec order.
    pub stages: Vec<StageStatus>,
    /// Bytes of shared-memory segments currently handed over to consumers, over all
    /// co-location groups.
    pub shm_bytes: u64,
    /// The placement plan deployed.
    pub plan: Plan,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{GpuInfo, MigInstance};
    use crate::sandbox::SandboxRequest;
    use crate::sandbox::{sandbox_spec, Isolation, IsolationChoice, Launcher, LauncherConfig};

    fn host(dir: &Path, mps_pipe: Option<PathBuf>) -> StageHost {
        let mut cfg = LauncherConfig::new(dir.join("sandboxes"));
        cfg.isolation = IsolationChoice::Only(Isolation::Plain);
        cfg.allow_unisolated = true;
        let mig = GpuInfo {
            index: 0,
            name: "A100 MIG 3g.20gb".into(),
            uuid: "MIG-4f6a1c2e-0000-5000-8000-000000000001".into(),
            memory_bytes: 20 << 30,
            mig: Some(MigInstance {
                gpu: 0,
                instance: 1,
            }),
        };
        StageHost {
            launcher: Launcher::new(cfg).expect("launcher"),
            backend: BackendKind::Nvml,
            gpus: 1,
            gpu_info: vec![mig],
            mps_pipe,
            mps_user: None,
            start_timeout: Duration::from_secs(1),
            max_response_bytes: 1 << 20,
            images: None,
        }
    }

    /// A stage on a MIG instance is named by its UUID (not the index) and reaches the MPS
    /// daemon: the pipe directory is in its environment and bound into its sandbox.
    #[test]
    fn a_stage_on_a_mig_gpu_gets_its_uuid_and_the_mps_pipe_bound() {
        let t = tempfile::tempdir().expect("tempdir");
        let pipe = t.path().join("mps/pipe");
        std::fs::create_dir_all(&pipe).expect("pipe dir");
        let h = host(t.path(), Some(pipe.clone()));
        let env = device_env(&h, 0, 40, 2048);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("CUDA_VISIBLE_DEVICES"),
            Some("MIG-4f6a1c2e-0000-5000-8000-000000000001")
        );
        assert_eq!(
            get("CUDA_MPS_PIPE_DIRECTORY"),
            Some(pipe.to_str().expect("utf-8"))
        );
        assert_eq!(get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), Some("40"));
        assert_eq!(get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"), Some("0=2048M"));
        assert_eq!(get("SLUICE_SM_SHARE"), Some("40"));
        let spec: FunctionSpec =
            serde_json::from_str(r#"{"name":"s","command":["python3","stage.py"]}"#).expect("spec");
        let req = SandboxRequest {
            id: 1,
            spec: &spec,
            extra_env: env.clone(),
            read_only: Vec::new(),
            user: None,
        };
        assert_eq!(sandbox_spec(&req).read_write, vec![pipe]);
        let env: BTreeMap<String, String> =
            [("PYTHONPATH".to_string(), "../sdk:/abs".to_string())].into();
        let resolved = resolve_python_path(&env, Path::new("/p/q"));
        assert_eq!(resolved["PYTHONPATH"], "/p/q/../sdk:/abs");
        // Without MPS, no pipe, and on a simulated GPU no device at all.
        let h = host(t.path(), None);
        let env = device_env(&h, 0, 40, 0);
        assert!(
            !env.iter().any(|(k, _)| k.starts_with("CUDA_MPS")),
            "{env:?}"
        );
        let sim = StageHost {
            backend: BackendKind::Simulated,
            ..h
        };
        let env = device_env(&sim, 0, 40, 0);
        assert!(env.contains(&("CUDA_VISIBLE_DEVICES".into(), String::new())));
    }
}
