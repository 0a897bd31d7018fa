//! The scheduler's vocabulary: its configuration, what it knows of a function, and the actions
//! it answers with.

use crate::estimator::EstimatorParams;
use crate::keepalive::KeepAliveParams;
use crate::memory::{MemMove, MemoryParams};
use crate::placement::PlacementParams;
use crate::queue::{self, QueueParams};
use crate::slots::SlotParams;
use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, GpuId, Invocation, SandboxId};

/// Everything that configures a [`Scheduler`](super::Scheduler).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Queueing policy name (see [`queue::POLICY_NAMES`]).
    pub policy: String,
    /// Parameters of the queueing policies (all validated; each policy uses only its own).
    pub queue: QueueParams,
    /// Concurrency tokens per device and the optional utilisation gate.
    pub slots: SlotParams,
    /// Device-memory oversubscription and how memory follows flow state.
    pub memory: MemoryParams,
    /// The warm pool: TTL of idle sandboxes, caps on sandboxes and on concurrent creations, and
    /// whether to wait for a busy sandbox rather than cold-start.
    pub keepalive: KeepAliveParams,
    /// Service-time estimates: EWMA smoothing and the estimate before a function's first sample.
    pub estimator: EstimatorParams,
    /// Which device a start goes to (consistent hashing with bounded loads over the devices,
    /// weighted by their tokens; see [`crate::placement`]).
    pub placement: PlacementParams,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            policy: "mqfq-sticky".into(),
            queue: QueueParams::default(),
            slots: SlotParams::default(),
            memory: MemoryParams::default(),
            keepalive: KeepAliveParams::default(),
            estimator: EstimatorParams::default(),
            placement: PlacementParams::default(),
        }
    }
}

/// A configuration the scheduler refuses.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The queueing policy name is unknown, or the queue parameters are out of range.
    #[error(transparent)]
    Queue(#[from] queue::BuildError),
    /// A slot, memory, keep-alive, estimator or placement parameter is out of range, or the device
    /// count is not between 1 and 65535; the message says which.
    #[error("invalid parameter: {0}")]
    Invalid(String),
}

/// What the scheduler knows of a function.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct FunctionInfo {
    /// Fair-share weight (> 0).
    pub weight: f64,
    /// Device memory a sandbox of it holds, bytes.
    pub gpu_mem_bytes: u64,
    /// A fixed service-time estimate that overrides measurement.
    pub fixed_estimate: Option<Dur>,
    /// Most invocations one sandbox of it runs at once (≥ 1; 0 counts as 1).
    pub concurrency: u32,
}

impl Default for FunctionInfo {
    fn default() -> Self {
        FunctionInfo {
            weight: 1.0,
            gpu_mem_bytes: 0,
            fixed_estimate: None,
            concurrency: 1,
        }
    }
}

/// Start `inv` in `sandbox` on `gpu` once `moves` are done (and, if `cold`, the sandbox created).
/// A start in a sandbox that is already running other invocations (its function's
/// `concurrency` > 1) is warm and has no moves.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    /// The invocation to run.
    pub inv: Invocation,
    /// The device it runs on: the one whose token it holds and where `sandbox` lives.
    pub gpu: GpuId,
    /// The sandbox to run it in: an idle one reused, a busy one shared, a new one, or the one whose
    /// line it waited in.
    pub sandbox: SandboxId,
    /// Whether `sandbox` is new and must be created before `inv` runs (a cold start).
    pub cold: bool,
    /// Memory moves to carry out first, in order: idle sandboxes pushed to host to make room, then
    /// `sandbox`'s own memory brought back if it was on the host. Empty for a sandbox already
    /// resident.
    pub moves: Vec<MemMove>,
}

/// Why an invocation can never start on these devices.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// Its function's sandbox needs more device memory than any device allows.
    #[error(
        "its function needs {} MiB of device memory, more than any device allows (the largest: {} MiB)",
        need >> 20, largest >> 20
    )]
    TooLarge {
        /// Device memory the function's sandbox needs, bytes.
        need: u64,
        /// The largest device's limit (capacity × `memory.oversubscribe`), bytes.
        largest: u64,
    },
}

/// `inv` was taken off its queue without running: it can never start here. The engine fails it
/// with `reason`; it held no token and no sandbox.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The invocation taken off its queue.
    pub inv: Invocation,
    /// Why it can never start.
    pub reason: RejectReason,
}

/// An instruction for the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start an invocation (see [`Start`]).
    Start(Start),
    /// Move an idle sandbox's memory (flow-state coupling), asynchronously.
    Move(MemMove),
    /// Destroy an idle sandbox (keep-alive expiry or pool trim).
    Destroy(SandboxId),
    /// Fail an invocation that can never be placed.
    Reject(Reject),
    /// Create a sandbox that no invocation waits for (see [`Create`]).
    Create(Create),
}

/// A sandbox bought ahead of the invocations that will use it: the engine creates it and then
/// calls [`Scheduler::prewarm_done`](super::Scheduler::prewarm_done), or
/// [`Scheduler::forget_sandbox`](super::Scheduler::forget_sandbox) if it could not be created.
/// Its memory is already counted on `gpu`; the moves that made room for it come as
/// [`Action::Move`]s before it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// The function whose sandbox it is.
    pub func: FunctionId,
    /// The new sandbox.
    pub sandbox: SandboxId,
    /// Its device.
    pub gpu: GpuId,
}
