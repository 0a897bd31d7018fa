//! The warm-sandbox pool: which sandboxes exist, on which device, in what state and with how
//! many invocations running in each; which to reuse, which to share, which to create (cold
//! start), and which to destroy.
//!
//! A sandbox runs up to its *capacity* invocations at once (the function's `concurrency`, fixed
//! when the sandbox is created). A start takes, in order: the most recently used idle sandbox of
//! the function on the chosen device; else a busy one there with spare capacity (fewest running
//! first, then lowest id) — no cold start; else a new one, unless `max_concurrent_creates`
//! sandboxes are already starting. Only *Busy* sandboxes are shared: a Starting sandbox serves
//! the one invocation it is created for until it is ready. A sandbox becomes idle when its last
//! invocation ends; idle sandboxes are destroyed after `ttl_s` without use, and the least
//! recently used idle one is destroyed whenever the pool holds more than `max_sandboxes`.

mod types;

pub use types::{Acquire, KeepAliveParams, Sandbox, SandboxState};

use sluice_core::{Dur, FunctionId, GpuId, SandboxId, Time};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Place = (FunctionId, GpuId);

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
    idle: BTreeMap<Place, Vec<SandboxId>>,
    /// All idle sandboxes by (last use, id): TTL expiry and LRU eviction order.
    idle_lru: BTreeSet<(Time, SandboxId)>,
    /// Busy sandboxes with spare capacity per (function, device), by (running, id).
    spare: BTreeMap<Place, BTreeSet<(u32, SandboxId)>>,
}

/// Lists `sb` among the sandboxes with spare capacity if it is Busy and has some.
fn list_spare(spare: &mut BTreeMap<Place, BTreeSet<(u32, SandboxId)>>, sb: &Sandbox) {
    if sb.state == SandboxState::Busy && sb.running < sb.capacity {
        spare
            .entry((sb.func, sb.gpu))
            .or_default()
            .insert((sb.running, sb.id));
    }
}

/// Takes `sb` off the spare-capacity list (a no-op if it is not listed).
fn unlist_spare(spare: &mut BTreeMap<Place, BTreeSet<(u32, SandboxId)>>, sb: &Sandbox) {
    if let Some(set) = spare.get_mut(&(sb.func, sb.gpu)) {
        set.remove(&(sb.running, sb.id));
        if set.is_empty() {
            spare.remove(&(sb.func, sb.gpu));
        }
    }
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
            spare: BTreeMap::new(),
        }
    }

    /// A sandbox of `func` on `gpu` for one more invocation: an idle one (the most recently used
    /// for which `prefer` holds, else the most recently used), else a busy one with spare
    /// capacity, else a new one that runs up to `capacity` invocations at once.
    pub fn acquire(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        capacity: u32,
        now: Time,
        prefer: impl Fn(SandboxId) -> bool,
    ) -> Acquire {
        if let Some(id) = self.take_idle(func, gpu, now, prefer) {
            return Acquire::Warm(id);
        }
        if let Some(id) = self.share(func, gpu, now) {
            return Acquire::Shared(id);
        }
        self.create(func, gpu, capacity, now)
            .map_or(Acquire::Blocked, Acquire::Cold)
    }

    fn take_idle(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        now: Time,
        prefer: impl Fn(SandboxId) -> bool,
    ) -> Option<SandboxId> {
        let list = self.idle.get_mut(&(func, gpu))?;
        let i = list
            .iter()
            .rposition(|&id| prefer(id))
            .or(list.len().checked_sub(1))?;
        let id = list.remove(i);
        if list.is_empty() {
            self.idle.remove(&(func, gpu));
        }
        let sb = self.sandboxes.get_mut(&id)?;
        self.idle_lru.remove(&(sb.last_used, id));
        sb.state = SandboxState::Busy;
        sb.running = 1;
        sb.last_used = now;
        list_spare(&mut self.spare, sb);
        Some(id)
    }

    fn share(&mut self, func: FunctionId, gpu: GpuId, now: Time) -> Option<SandboxId> {
        let set = self.spare.get_mut(&(func, gpu))?;
        let (_, id) = set.pop_first()?;
        if set.is_empty() {
            self.spare.remove(&(func, gpu));
        }
        let sb = self.sandboxes.get_mut(&id)?;
        sb.running += 1;
        sb.last_used = now;
        list_spare(&mut self.spare, sb);
        Some(id)
    }

    /// Creates a sandbox of `func` on `gpu` (Starting, counting one use) unless the creation
    /// cap is reached.
    pub fn create(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        capacity: u32,
        now: Time,
    ) -> Option<SandboxId> {
        if self.creating >= self.max_creates {
            return None;
        }
        self.creating += 1;
        let id = SandboxId(self.next_id);
        self.next_id += 1;
        let sb = Sandbox {
            id,
            func,
            gpu,
            state: SandboxState::Starting,
            last_used: now,
            running: 1,
            capacity: capacity.max(1),
        };
        self.sandboxes.insert(id, sb);
        Some(id)
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
            list_spare(&mut self.spare, sb);
        }
    }

    /// One invocation in a running (or starting) sandbox ended at `now`; after its last one the
    /// sandbox is idle.
    pub fn release(&mut self, id: SandboxId, now: Time) {
        let Some(sb) = self.sandboxes.get_mut(&id) else {
            return;
        };
        match sb.state {
            SandboxState::Idle => return,
            SandboxState::Starting => self.creating -= 1,
            SandboxState::Busy => unlist_spare(&mut self.spare, sb),
        }
        sb.running = sb.running.saturating_sub(1);
        if sb.running > 0 {
            sb.state = SandboxState::Busy;
            list_spare(&mut self.spare, sb);
            return;
        }
        sb.state = SandboxState::Idle;
        sb.last_used = now;
        self.idle.entry((sb.func, sb.gpu)).or_default().push(id);
        self.idle_lru.insert((now, id));
    }

    /// Destroys a sandbox whatever its state (crash, eviction); returns it as it was, with the
    /// invocations still running in it.
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
            SandboxState::Busy => unlist_spare(&mut self.spare, &sb),
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

    /// Whether `func` has a busy sandbox on `gpu` that can take one more invocation.
    pub fn has_spare(&self, func: FunctionId, gpu: GpuId) -> bool {
        self.spare.get(&(func, gpu)).is_some_and(|s| !s.is_empty())
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

    /// Sandboxes in the pool.
    pub fn len(&self) -> usize {
        self.sandboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty()
    }

    /// Sandboxes being created.
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
