//! The warm pool's vocabulary: its parameters (TTL, pool size, cold-start cap), the sandbox
//! record it keeps, and the outcomes of asking it for a sandbox.

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, GpuId, SandboxId, Time};

/// Keep-alive parameters. The caps on sandboxes are derived per device from the devices and
/// the functions' memory (see [`PoolLimits`](super::PoolLimits)); the two worker-wide keys
/// override that derivation when set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepAliveParams {
    /// Idle sandboxes older than this are destroyed (seconds; 0 destroys at once).
    pub ttl_s: f64,
    /// Spare keep-alive: an idle sandbox past `ttl_s` whose memory is resident on its device
    /// lingers up to this age (seconds), and goes first when its memory is needed; at most
    /// `ttl_s` (or less) turns it off.
    pub spare_ttl_s: f64,
    /// Worker-wide: most sandboxes kept (idle, running and starting together) before LRU idle
    /// ones go. `None` (default): derived per device, `memory_factor` device memories' worth.
    pub max_sandboxes: Option<usize>,
    /// Worker-wide: most sandboxes being created at once; further cold starts wait. `None`
    /// (default): derived, D per device (one per token).
    pub max_concurrent_creates: Option<usize>,
    /// A device keeps sandboxes whose memory adds up to this many times its own memory
    /// (resident plus pushed to host) when `max_sandboxes` is not set.
    pub memory_factor: f64,
    /// An invocation whose function has only busy or starting sandboxes waits for one of them,
    /// and one whose function's idle sandboxes are all on devices without a free token waits for
    /// a token there, when that is expected to be quicker than a cold start (scheduler `lines`
    /// and `token_lines`).
    pub wait_for_warm: bool,
}

impl Default for KeepAliveParams {
    fn default() -> Self {
        KeepAliveParams {
            ttl_s: 600.0,
            spare_ttl_s: 3600.0,
            max_sandboxes: None,
            max_concurrent_creates: None,
            memory_factor: 4.0,
            wait_for_warm: true,
        }
    }
}

impl KeepAliveParams {
    /// The longest an idle sandbox may be kept: `ttl_s`, or `spare_ttl_s` where that is longer.
    pub fn longest(&self) -> Dur {
        Dur::from_secs_f64(self.ttl_s.max(self.spare_ttl_s))
    }

    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.ttl_s.is_finite() && self.ttl_s >= 0.0) {
            return Err("keepalive.ttl_s must be a non-negative number of seconds".into());
        }
        if !(self.spare_ttl_s.is_finite() && self.spare_ttl_s >= 0.0) {
            return Err("keepalive.spare_ttl_s must be a non-negative number of seconds".into());
        }
        if self.max_sandboxes == Some(0) || self.max_concurrent_creates == Some(0) {
            return Err("keepalive.max_sandboxes and max_concurrent_creates must be ≥ 1".into());
        }
        if !(self.memory_factor.is_finite() && self.memory_factor > 0.0) {
            return Err("keepalive.memory_factor must be a positive number".into());
        }
        Ok(())
    }
}

/// A sandbox's lifecycle state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    /// Being created (a cold start); it serves only the invocation it is created for until it is
    /// ready.
    Starting,
    /// Created and running nothing: kept warm for reuse until its TTL runs out or it is evicted.
    Idle,
    /// Running at least one invocation.
    Busy,
}

/// A sandbox as the pool tracks it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// Its id, assigned by the pool in creation order.
    pub id: SandboxId,
    /// The function it runs.
    pub func: FunctionId,
    /// The device it lives on, for its whole life.
    pub gpu: GpuId,
    /// Where it is in its lifecycle.
    pub state: SandboxState,
    /// When it last took an invocation (created, reused or shared) or, once Idle, when its last
    /// invocation ended: TTL expiry and LRU eviction count from it.
    pub last_used: Time,
    /// Invocations running in it (a Starting sandbox counts the one it is created for).
    pub running: u32,
    /// Most invocations it runs at once (≥ 1).
    pub capacity: u32,
}

/// The outcome of asking for a sandbox.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// Reuse this idle sandbox (now Busy).
    Warm(SandboxId),
    /// Run alongside the invocations already in this busy sandbox, which had spare capacity.
    Shared(SandboxId),
    /// Create this new sandbox (now Starting): a cold start.
    Cold(SandboxId),
    /// Too many sandboxes are being created; try later.
    Blocked,
}
