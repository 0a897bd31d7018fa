//! The warm pool's vocabulary: its parameters (TTL, pool size, cold-start cap), the sandbox
//! record it keeps, and the outcomes of asking it for a sandbox.

use serde::{Deserialize, Serialize};
use sluice_core::{FunctionId, GpuId, SandboxId, Time};

/// Keep-alive parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepAliveParams {
    /// Idle sandboxes older than this are destroyed (seconds; 0 destroys at once).
    pub ttl_s: f64,
    /// Most sandboxes kept (idle, running and starting together) before LRU idle ones go.
    pub max_sandboxes: usize,
    /// Most sandboxes being created at once; further cold starts wait.
    pub max_concurrent_creates: usize,
}

impl Default for KeepAliveParams {
    fn default() -> Self {
        KeepAliveParams {
            ttl_s: 600.0,
            max_sandboxes: 64,
            max_concurrent_creates: 4,
        }
    }
}

impl KeepAliveParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.ttl_s.is_finite() && self.ttl_s >= 0.0) {
            return Err("keepalive.ttl_s must be a non-negative number of seconds".into());
        }
        if self.max_sandboxes == 0 || self.max_concurrent_creates == 0 {
            return Err("keepalive.max_sandboxes and max_concurrent_creates must be ≥ 1".into());
        }
        Ok(())
    }
}

/// A sandbox's lifecycle state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    Starting,
    Idle,
    Busy,
}

/// A sandbox as the pool tracks it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    pub id: SandboxId,
    pub func: FunctionId,
    pub gpu: GpuId,
    pub state: SandboxState,
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
