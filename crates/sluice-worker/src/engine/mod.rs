//! The worker engine: the policy layer's [`Scheduler`] driven by a real clock. It owns the
//! registered functions, the queued and running invocations and the live sandboxes, and turns
//! the scheduler's actions into sandbox processes, invocations and memory moves (`exec`);
//! the timer task, prewarming and gauges are in `upkeep`. A function's `concurrency` is the
//! most invocations one sandbox serves at once; each still holds its own device token.
//!
//! GPU functions go through one scheduler whose devices are the GPUs found (or simulated); CPU
//! functions through a second one with a single device of `cpu_slots` tokens. Every scheduler
//! call happens under one mutex and is pure bookkeeping (sub-microsecond); everything that waits
//! (process start, the function's own execution) happens in tasks outside it.
//!
//! Admission and submission are in `submit` (the queue bounds, the predicted wait against the
//! function's `max_queue_ms`, cancelling the invocation of a caller that went away), fitting a
//! spec to the devices in `fit`, and ending queued work early (a deleted function, an
//! invocation no device can hold, a graceful stop) in `stop`.

mod exec;
mod fit;
mod load;
mod metrics;
mod prestart;
mod stop;
mod submit;
mod types;
mod upkeep;

pub use load::Load;
pub use metrics::Metrics;
pub use submit::{Admitted, InvokeOptions, StartHook, Ticket};
pub use types::{InvokeError, InvokeOk, Invoked, SandboxCounts, Status, Timing};

use crate::config::WorkerConfig;
use crate::devices::GpuInfo;
use crate::devices::{BackendKind, DeviceBackend};
use crate::function::FunctionSpec;
use crate::logs::{FunctionLogs, LogPage};
use crate::sandbox::{Launcher, Sandbox, UserLease};
use bytes::Bytes;
use serde::Serialize;
use sluice_core::{FunctionId, InvocationId, SandboxId, Time};
use sluice_policy::scheduler::{Action, FunctionInfo, Scheduler};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{oneshot, Notify};

/// The engine's resources that pipeline stage instances share.
#[derive(Clone, Debug)]
pub(crate) struct StageHost {
    pub launcher: Launcher,
    pub backend: BackendKind,
    pub gpus: u32,
    /// The devices, to name a stage's GPU by UUID.
    pub gpu_info: Vec<GpuInfo>,
    /// The MPS daemon's pipe directory, when MPS is on.
    pub mps_pipe: Option<PathBuf>,
    /// The user every MPS client runs as (MPS serves one user at a time).
    pub mps_user: Option<UserLease>,
    pub start_timeout: std::time::Duration,
    pub max_response_bytes: usize,
    /// The worker's images, to resolve stages that run from one.
    pub images: Option<Arc<crate::images::Images>>,
}

/// Which scheduler a function belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Functions with `resources.gpu`: scheduled over the GPUs found (or simulated).
    Gpu,
    /// Functions without a GPU: scheduled on one device of `cpu_slots` tokens.
    Cpu,
}

struct Registered {
    id: FunctionId,
    queue: QueueKind,
}

struct Pending {
    func: String,
    queue: QueueKind,
    input: Bytes,
    arrived: Instant,
    reply: oneshot::Sender<Invoked>,
    /// Awaited just before the invocation is sent to its sandbox.
    on_start: Option<StartHook>,
    /// Whether the caller wants the function's output while it ran.
    logs: bool,
}

struct State {
    gpu: Scheduler,
    cpu: Scheduler,
    functions: HashMap<String, Registered>,
    /// Every spec ever registered, by id (an update gets a new id, so old sandboxes retire).
    specs: Vec<Arc<FunctionSpec>>,
    pending: HashMap<u64, Pending>,
    queued: HashMap<String, usize>,
    queued_total: usize,
    /// Every live sandbox, idle or running: the process owner stays here (to be killed on
    /// failure, expiry or trim) while invocation tasks call it through clones of its client, so
    /// one sandbox can serve several invocations at once.
    live: HashMap<(QueueKind, SandboxId), Sandbox>,
    /// Cold-started invocations whose sandbox is ready and which wait for a token (see
    /// `sluice_policy::scheduler` `creating`): the scheduler's warm start of the same invocation
    /// sends the go to the task holding it instead of starting a new one.
    parked: HashMap<(QueueKind, InvocationId), oneshot::Sender<()>>,
    next_invocation: u64,
    draining: bool,
    /// Stopping for good: nothing new is queued, even an accepted asynchronous invocation.
    stopping: bool,
}

impl State {
    fn sched(&mut self, q: QueueKind) -> &mut Scheduler {
        match q {
            QueueKind::Gpu => &mut self.gpu,
            QueueKind::Cpu => &mut self.cpu,
        }
    }

    fn sched_ref(&self, q: QueueKind) -> &Scheduler {
        match q {
            QueueKind::Gpu => &self.gpu,
            QueueKind::Cpu => &self.cpu,
        }
    }

    /// Takes a queued invocation out of the engine's books (it started, or ended unstarted).
    fn take_pending(&mut self, inv: u64) -> Option<Pending> {
        let p = self.pending.remove(&inv)?;
        if let Some(n) = self.queued.get_mut(&p.func) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued.remove(&p.func);
            }
        }
        self.queued_total = self.queued_total.saturating_sub(1);
        Some(p)
    }
}

pub(crate) struct Inner {
    cfg: WorkerConfig,
    started: Instant,
    launcher: Launcher,
    /// Every function's recent output, fed by its sandboxes.
    logs: Arc<FunctionLogs>,
    /// What the launcher cannot enforce here (for the status).
    not_enforced: Vec<&'static str>,
    devices: Box<dyn DeviceBackend>,
    /// With MPS on real GPUs: the one user all GPU sandboxes run as.
    mps_user: Option<UserLease>,
    state: Mutex<State>,
    timer: Arc<Notify>,
    metrics: Metrics,
    /// CPU slots, resolved once (`cfg.cpu_slots()` reads cgroup files when it is 0).
    cpu_slots: u32,
    /// Invocations dispatched and not yet answered, and a wake-up when that reaches zero.
    running: std::sync::atomic::AtomicUsize,
    idle: Notify,
    /// The worker's images (set once at start), handed to pipeline stages.
    images: std::sync::OnceLock<Arc<crate::images::Images>>,
}

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine over `devices`, starting sandboxes with `launcher`.
    pub fn new(
        cfg: WorkerConfig,
        devices: Box<dyn DeviceBackend>,
        launcher: Launcher,
    ) -> Result<Engine, sluice_policy::scheduler::ConfigError> {
        let mems: Vec<u64> = devices.gpus().iter().map(|g| g.memory_bytes).collect();
        let gpu = Scheduler::new(&cfg.scheduler, mems)?;
        let mut cpu_cfg = cfg.scheduler.clone();
        let cpu_slots = cfg.cpu_slots();
        cpu_cfg.slots.tokens_per_gpu = cpu_slots;
        cpu_cfg.slots.util_gate = None;
        // Starting a process is the work a CPU slot stands for.
        cpu_cfg.slots.cold_start_holds_token = true;
        let cpu = Scheduler::new(&cpu_cfg, vec![u64::MAX / 4])?;
        let mps_user = (cfg.gpu.mps && devices.kind() == BackendKind::Nvml)
            .then(|| launcher.lease_user())
            .flatten();
        let inner = Arc::new(Inner {
            started: Instant::now(),
            not_enforced: (launcher.limits_not_enforced().iter())
                .map(|m| m.what)
                .collect(),
            launcher,
            logs: Arc::new(FunctionLogs::default()),
            devices,
            mps_user,
            state: Mutex::new(State {
                gpu,
                cpu,
                functions: HashMap::new(),
                specs: Vec::new(),
                pending: HashMap::new(),
                queued: HashMap::new(),
                queued_total: 0,
                live: HashMap::new(),
                parked: HashMap::new(),
                next_invocation: 0,
                draining: false,
                stopping: false,
            }),
            timer: Arc::new(Notify::new()),
            metrics: Metrics::new(),
            cpu_slots,
            running: std::sync::atomic::AtomicUsize::new(0),
            idle: Notify::new(),
            images: std::sync::OnceLock::new(),
            cfg,
        });
        tokio::spawn(upkeep::timer_loop(Arc::downgrade(&inner)));
        if inner.devices.kind() == BackendKind::Nvml {
            tokio::spawn(upkeep::sample_loop(Arc::downgrade(&inner)));
        }
        Ok(Engine { inner })
    }

    /// What pipeline stage instances are started with: the same launcher, sandbox root, device
    /// backend and sandbox serials as functions (so cgroup names never collide).
    pub(crate) fn stage_host(&self) -> StageHost {
        let inner = &self.inner;
        let mps = inner.cfg.gpu.mps && inner.devices.kind() == BackendKind::Nvml;
        StageHost {
            launcher: inner.launcher.clone(),
            backend: inner.devices.kind(),
            gpus: inner.devices.gpus().len() as u32,
            gpu_info: inner.devices.gpus().to_vec(),
            mps_pipe: mps.then(|| {
                crate::devices::MpsDaemon::pipe_dir_under(&inner.cfg.data_dir.join("mps"))
            }),
            mps_user: inner.mps_user.clone(),
            start_timeout: std::time::Duration::from_millis(inner.cfg.start_timeout_ms),
            max_response_bytes: inner.cfg.max_response_bytes,
            images: inner.images.get().cloned(),
        }
    }

    /// Gives pipeline stages the worker's images (once, at start).
    pub fn set_images(&self, images: Arc<crate::images::Images>) {
        let _ = self.inner.images.set(images);
    }

    /// A sandbox serial unique on this host (see `create_sandbox`).
    pub(crate) fn next_serial(&self) -> u64 {
        next_serial()
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &WorkerConfig {
        &self.inner.cfg
    }

    /// Registers (or replaces) a function; returns true if it replaced one. It is not checked
    /// against the devices (see [`Engine::check_fits`]): one that fits none has each of its
    /// invocations failed at once as unplaceable.
    pub fn register(&self, spec: FunctionSpec) -> bool {
        let queue = if spec.resources.gpu {
            QueueKind::Gpu
        } else {
            QueueKind::Cpu
        };
        // The CPU queue's one "device" models no GPU memory: a CPU function holds none.
        let gpu_mem_bytes = match queue {
            QueueKind::Gpu => spec.resources.gpu_memory_mb.saturating_mul(1 << 20),
            QueueKind::Cpu => 0,
        };
        let info = FunctionInfo {
            weight: spec.weight,
            gpu_mem_bytes,
            fixed_estimate: None,
            concurrency: spec.concurrency,
        };
        let mut st = self.inner.lock();
        let id = FunctionId(st.specs.len() as u32);
        st.sched(queue).register(id, info);
        let name = spec.name.clone();
        st.specs.push(Arc::new(spec));
        st.functions
            .insert(name, Registered { id, queue })
            .is_some()
    }

    /// Runs `name` on `input` and waits for its result.
    pub async fn invoke(&self, name: &str, input: Bytes) -> Result<InvokeOk, InvokeError> {
        self.invoke_with(name, input, InvokeOptions::default())
            .await
            .result
    }

    /// `name`'s recent output after entry `after` (0: all kept), at most `limit` entries.
    pub fn function_logs(&self, name: &str, after: u64, limit: usize) -> LogPage {
        self.inner.logs.read(name, after, limit)
    }

    /// Starts up to `count` sandboxes of `name` ahead of demand; returns how many were started.
    pub fn prewarm(&self, name: &str, count: u32) -> Result<u32, InvokeError> {
        upkeep::prewarm(&self.inner, name, count)
    }

    /// Stops accepting invocations (503) and lets queued ones finish.
    pub fn drain(&self) {
        self.inner.lock().draining = true;
    }

    /// A status snapshot.
    pub fn status(&self) -> Status {
        let st = self.inner.lock();
        let mut sandboxes = SandboxCounts::default();
        for s in [&st.gpu, &st.cpu] {
            let (starting, idle, busy) = s.pool().counts();
            sandboxes.starting += starting;
            sandboxes.idle += idle;
            sandboxes.busy += busy;
        }
        let simulated = self.inner.devices.kind() == BackendKind::Simulated;
        Status {
            devices: self.inner.devices.kind(),
            gpus: self.inner.devices.gpus().to_vec(),
            note: simulated.then(|| {
                "no GPU found: simulated GPUs; GPU functions run on the CPU but are scheduled as on a GPU".into()
            }),
            isolation: self.inner.launcher.isolation().to_string(),
            limits_not_enforced: self.inner.not_enforced.clone(),
            policy: st.gpu.policy_name().to_string(),
            functions: st.functions.len(),
            queued: st.queued_total,
            sandboxes,
            draining: st.draining,
            uptime_s: self.inner.started.elapsed().as_secs_f64(),
        }
    }

    /// The OpenMetrics exposition, with state gauges refreshed.
    pub fn metrics_text(&self) -> String {
        upkeep::refresh_gauges(&self.inner);
        self.inner.metrics.encode()
    }
}

/// Sandbox serials are drawn from one counter per process: engines in one process (the in-crate
/// tests run many side by side) never share one, even when they start in the same millisecond
/// (two could, and one's teardown then killed the other's sandbox through the cgroup and
/// directory they shared: an in-crate API test saw a sandbox "killed before it was ready").
static SERIAL: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();

/// The next sandbox serial of this process.
pub(crate) fn next_serial() -> u64 {
    SERIAL
        .get_or_init(|| std::sync::atomic::AtomicU64::new(serial_base()))
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A starting serial unique among the workers of this host, and across restarts: it names
/// sandbox cgroups (`sluice/<serial>`), which all workers share, so two workers started in the
/// same millisecond must not collide. The process id (Linux pids are < 2^22) takes the top 22
/// bits, the start time in milliseconds modulo 2^22 (about 70 minutes) the next 22, and the
/// low 20 leave room for 2^20 sandboxes per start.
fn serial_base() -> u64 {
    const MASK: u64 = (1 << 22) - 1;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ((u64::from(std::process::id()) & MASK) << 42) | ((ms & MASK) << 20)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Time {
        Time::from_micros(self.started.elapsed().as_micros() as u64)
    }

    /// Polls one scheduler and wakes the timer task (its next deadline may have moved). A start
    /// of a parked invocation (its sandbox ready, now with a token) is a go to its task, not an
    /// action.
    fn poll(&self, st: &mut State, q: QueueKind, now: Time) -> Vec<(QueueKind, Action)> {
        let mut out = Vec::new();
        st.sched(q).poll(now, &mut out);
        self.timer.notify_one();
        let mut actions = Vec::with_capacity(out.len());
        for a in out {
            match a {
                Action::Start(s) if !s.cold && !st.parked.is_empty() => {
                    match st.parked.remove(&(q, s.inv.id)) {
                        Some(go) => {
                            if go.send(()).is_err() {
                                // Its task is gone (the runtime is stopping): free what it held.
                                st.live.remove(&(q, s.sandbox));
                                st.sched(q).sandbox_failed(s.sandbox, s.inv.func, now);
                            }
                        }
                        None => actions.push((q, Action::Start(s))),
                    }
                }
                a => actions.push((q, a)),
            }
        }
        actions
    }
}
