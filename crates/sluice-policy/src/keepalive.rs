//! The warm-sandbox pool: which sandboxes exist, on which device, and in what state; which to
//! reuse, which to create (cold start), and which to destroy.
//!
//! A start reuses the most recently used idle sandbox of the function on the chosen device;
//! otherwise it creates one, unless `max_concurrent_creates` sandboxes are already starting.
//! Idle sandboxes are destroyed after `ttl_s` without use, and the least recently used idle one
//! is destroyed whenever the pool holds more than `max_sandboxes`.

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, GpuId, SandboxId, Time};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
}

/// The outcome of asking for a sandbox.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// Reuse this idle sandbox (now Busy).
    Warm(SandboxId),
    /// Create this new sandbox (now Starting): a cold start.
    Cold(SandboxId),
    /// Too many sandboxes are being created; try later.
    Blocked,
}

/// The pool of all sandboxes.
#[derive(Clone, Debug)]
pub struct WarmPool {
    ttl: Dur,
    max_sandboxes: usize,
    max_creates: usize,
    next_id: u64,
    creating: usize,
    sandboxes: HashMap<SandboxId, Sandbox>,
    /// Idle sandboxes per (function, device), most recently used last.
    idle: BTreeMap<(FunctionId, GpuId), Vec<SandboxId>>,
    /// All idle sandboxes by (last use, id): TTL expiry and LRU eviction order.
    idle_lru: BTreeSet<(Time, SandboxId)>,
}

impl WarmPool {
    pub fn new(params: &KeepAliveParams) -> Self {
        WarmPool {
            ttl: Dur::from_secs_f64(params.ttl_s),
            max_sandboxes: params.max_sandboxes.max(1),
            max_creates: params.max_concurrent_creates.max(1),
            next_id: 0,
            creating: 0,
            sandboxes: HashMap::new(),
            idle: BTreeMap::new(),
            idle_lru: BTreeSet::new(),
        }
    }

    /// Takes an idle sandbox of `func` on `gpu` (the most recently used one for which `prefer`
    /// holds, else the most recently used), or creates one.
    pub fn acquire(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        now: Time,
        prefer: impl Fn(SandboxId) -> bool,
    ) -> Acquire {
        if let Some(list) = self.idle.get_mut(&(func, gpu)) {
            let pick = list
                .iter()
                .rposition(|&id| prefer(id))
                .or(list.len().checked_sub(1));
            if let Some(i) = pick {
                let id = list.remove(i);
                if list.is_empty() {
                    self.idle.remove(&(func, gpu));
                }
                let sb = self.sandboxes.get_mut(&id).expect("idle sandboxes exist");
                self.idle_lru.remove(&(sb.last_used, id));
                sb.state = SandboxState::Busy;
                sb.last_used = now;
                return Acquire::Warm(id);
            }
        }
        if self.creating >= self.max_creates {
            return Acquire::Blocked;
        }
        self.creating += 1;
        let id = SandboxId(self.next_id);
        self.next_id += 1;
        self.sandboxes.insert(
            id,
            Sandbox {
                id,
                func,
                gpu,
                state: SandboxState::Starting,
                last_used: now,
            },
        );
        Acquire::Cold(id)
    }

    /// A created sandbox finished starting and now runs its first invocation.
    pub fn started(&mut self, id: SandboxId) {
        if let Some(sb) = self
            .sandboxes
            .get_mut(&id)
            .filter(|s| s.state == SandboxState::Starting)
        {
            sb.state = SandboxState::Busy;
            self.creating -= 1;
        }
    }

    /// A running (or starting) sandbox becomes idle at `now`.
    pub fn release(&mut self, id: SandboxId, now: Time) {
        let Some(sb) = self.sandboxes.get_mut(&id) else {
            return;
        };
        match sb.state {
            SandboxState::Idle => return,
            SandboxState::Starting => self.creating -= 1,
            SandboxState::Busy => {}
        }
        sb.state = SandboxState::Idle;
        sb.last_used = now;
        self.idle.entry((sb.func, sb.gpu)).or_default().push(id);
        self.idle_lru.insert((now, id));
    }

    /// Destroys a sandbox whatever its state (crash, eviction).
    pub fn remove(&mut self, id: SandboxId) -> Option<Sandbox> {
        let sb = self.sandboxes.remove(&id)?;
        match sb.state {
            SandboxState::Starting => self.creating -= 1,
            SandboxState::Idle => {
                self.idle_lru.remove(&(sb.last_used, id));
                if let Some(v) = self.idle.get_mut(&(sb.func, sb.gpu)) {
                    v.retain(|&x| x != id);
                    if v.is_empty() {
                        self.idle.remove(&(sb.func, sb.gpu));
                    }
                }
            }
            SandboxState::Busy => {}
        }
        Some(sb)
    }

    /// Destroys idle sandboxes unused for longer than the TTL; returns them.
    pub fn expire(&mut self, now: Time) -> Vec<Sandbox> {
        let mut out = Vec::new();
        while let Some(&(used, id)) = self.idle_lru.first() {
            if used + self.ttl > now {
                break;
            }
            out.extend(self.remove(id));
        }
        out
    }

    /// Destroys least-recently-used idle sandboxes while the pool is over `max_sandboxes`.
    pub fn trim(&mut self) -> Vec<Sandbox> {
        let mut out = Vec::new();
        while self.sandboxes.len() > self.max_sandboxes {
            let Some(&(_, id)) = self.idle_lru.first() else {
                break;
            };
            out.extend(self.remove(id));
        }
        out
    }

    /// When the next idle sandbox's TTL runs out.
    pub fn next_expiry(&self) -> Option<Time> {
        self.idle_lru.first().map(|&(used, _)| used + self.ttl)
    }

    /// Whether `func` has an idle sandbox on `gpu`.
    pub fn has_idle(&self, func: FunctionId, gpu: GpuId) -> bool {
        self.idle.get(&(func, gpu)).is_some_and(|v| !v.is_empty())
    }

    /// The idle sandboxes of `func` on `gpu`, least recently used first.
    pub fn idle_on(&self, func: FunctionId, gpu: GpuId) -> impl Iterator<Item = SandboxId> + '_ {
        self.idle.get(&(func, gpu)).into_iter().flatten().copied()
    }

    /// The idle sandboxes of `func` on any device.
    pub fn idle_of(&self, func: FunctionId) -> impl Iterator<Item = SandboxId> + '_ {
        self.idle
            .range((func, GpuId(0))..=(func, GpuId(u16::MAX)))
            .flat_map(|(_, v)| v.iter().copied())
    }

    pub fn get(&self, id: SandboxId) -> Option<&Sandbox> {
        self.sandboxes.get(&id)
    }

    /// Sandboxes in the pool, and how many of them are starting.
    pub fn len(&self) -> usize {
        self.sandboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty()
    }

    pub fn creating(&self) -> usize {
        self.creating
    }

    /// Sandboxes per state: (starting, idle, busy).
    pub fn counts(&self) -> (usize, usize, usize) {
        let idle = self.idle_lru.len();
        (
            self.creating,
            idle,
            self.sandboxes.len() - idle - self.creating,
        )
    }
}

#[cfg(test)]
mod tests;
