//! The warm-sandbox pool: which sandboxes exist, on which device, in what state and with how
//! many invocations running in each; which to reuse, which to share, which to create (cold
//! start), and which to destroy.
//!
//! A sandbox runs up to its *capacity* invocations at once (the function's `concurrency`, fixed
//! when the sandbox is created). A start takes, in order: the most recently used idle sandbox of
//! the function on the chosen device; else a busy one there with spare capacity (fewest running
//! first, then lowest id) — no cold start; else a new one, unless the device (or, with the
//! worker-wide override, the pool) already has its cap of sandboxes starting. Only *Busy*
//! sandboxes are shared: a Starting sandbox serves the one invocation it is created for until it
//! is ready. A sandbox becomes idle when its last invocation ends; idle sandboxes are destroyed
//! after `ttl_s` without use, and the least recently used idle one of a device is destroyed
//! whenever the device holds more than its cap (or the pool more than the worker-wide cap).
//! The caps come from [`PoolLimits`] (derived from the devices and the functions' memory).
//!
//! Spare keep-alive: past `ttl_s`, an idle sandbox that the caller says costs nothing to keep
//! (the scheduler: its memory is resident on its device, in memory nobody needs) *lingers* up
//! to `spare_ttl_s` instead of going. A lingering sandbox is reused like any idle one, and is the
//! first to go when its device or the pool is over its cap; the scheduler also destroys it rather
//! than push its memory to the host when room is needed ([`WarmPool::is_lingering`]). So the
//! longer keep-alive uses only device memory that would otherwise sit empty: a function called
//! every 15 minutes stays warm where memory allows, and where memory is short nothing changes.

mod limits;
mod places;
mod types;

pub use limits::{PoolLimits, CREATES_PER_TOKEN, MAX_PER_DEVICE, PER_TOKEN_WITHOUT_MEMORY};
pub use types::{Acquire, KeepAliveParams, Sandbox, SandboxState};

use crate::firstset::FirstSet;
use crate::idmap::IdMap;
use places::PlaceMap;
use sluice_core::{Dur, FunctionId, GpuId, SandboxId, Time};
use std::collections::BTreeSet;

/// A function's idle sandboxes on one device, least recently used first; two are held inline.
type IdleList = smallvec::SmallVec<[SandboxId; 2]>;

/// What the pool counts per device.
#[derive(Copy, Clone, Debug, Default)]
struct OnDevice {
    sandboxes: usize,
    creating: usize,
}

/// The pool of all sandboxes.
#[derive(Clone, Debug)]
pub struct WarmPool {
    ttl: Dur,
    spare_ttl: Dur,
    limits: PoolLimits,
    devices: Vec<OnDevice>,
    next_id: u64,
    creating: usize,
    sandboxes: IdMap<SandboxId, Sandbox>,
    /// Idle sandboxes per (function, device), most recently used last.
    idle: PlaceMap<IdleList>,
    /// Idle sandboxes within their TTL by (last use, id): TTL expiry and LRU eviction order.
    idle_lru: FirstSet<(Time, SandboxId)>,
    /// Idle sandboxes past their TTL kept by spare keep-alive, by (last use, id): older than
    /// every one in `idle_lru`, so the first evicted.
    lingering: FirstSet<(Time, SandboxId)>,
    /// Busy sandboxes with spare capacity per (function, device), by (running, id).
    spare: PlaceMap<BTreeSet<(u32, SandboxId)>>,
}

/// Lists `sb` among the sandboxes with spare capacity if it is Busy and has some.
fn list_spare(spare: &mut PlaceMap<BTreeSet<(u32, SandboxId)>>, sb: &Sandbox) {
    if sb.state == SandboxState::Busy && sb.running < sb.capacity {
        spare
            .or_default((sb.func, sb.gpu))
            .insert((sb.running, sb.id));
    }
}

/// Takes the idle sandbox `id`, last used at `used`, off whichever idle order lists it.
fn unlist_idle(
    idle_lru: &mut FirstSet<(Time, SandboxId)>,
    lingering: &mut FirstSet<(Time, SandboxId)>,
    used: Time,
    id: SandboxId,
) {
    if !idle_lru.remove(&(used, id)) {
        lingering.remove(&(used, id));
    }
}

/// Takes `sb` off the spare-capacity list (a no-op if it is not listed).
fn unlist_spare(spare: &mut PlaceMap<BTreeSet<(u32, SandboxId)>>, sb: &Sandbox) {
    if let Some(set) = spare.get_mut(&(sb.func, sb.gpu)) {
        set.remove(&(sb.running, sb.id));
        if set.is_empty() {
            spare.remove(&(sb.func, sb.gpu));
        }
    }
}

impl WarmPool {
    /// An empty pool with `params`' TTL under `limits`.
    pub fn new(params: &KeepAliveParams, limits: PoolLimits) -> Self {
        WarmPool {
            ttl: Dur::from_secs_f64(params.ttl_s),
            spare_ttl: Dur::from_secs_f64(params.spare_ttl_s.max(params.ttl_s)),
            limits,
            devices: Vec::new(),
            next_id: 0,
            creating: 0,
            sandboxes: IdMap::default(),
            idle: PlaceMap::default(),
            idle_lru: FirstSet::new(),
            lingering: FirstSet::new(),
            spare: PlaceMap::default(),
        }
    }

    /// Replaces the caps (e.g. when the functions' memory changed); call [`WarmPool::trim`]
    /// after to apply smaller ones.
    pub fn set_limits(&mut self, limits: PoolLimits) {
        self.limits = limits;
    }

    /// The caps in force.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    fn on(&mut self, gpu: GpuId) -> &mut OnDevice {
        let i = gpu.index();
        if self.devices.len() <= i {
            self.devices.resize_with(i + 1, OnDevice::default);
        }
        &mut self.devices[i]
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
        unlist_idle(&mut self.idle_lru, &mut self.lingering, sb.last_used, id);
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

    /// Whether a sandbox could be created on `gpu` now (its creation caps have room).
    pub fn can_create(&self, gpu: GpuId) -> bool {
        let on_device = self.devices.get(gpu.index()).map_or(0, |d| d.creating);
        self.limits.max_creates.is_none_or(|m| self.creating < m)
            && on_device < self.limits.creates_per_device
    }

    /// Creates a sandbox of `func` on `gpu` (Starting, counting one use) unless a creation cap
    /// is reached.
    pub fn create(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        capacity: u32,
        now: Time,
    ) -> Option<SandboxId> {
        if !self.can_create(gpu) {
            return None;
        }
        self.creating += 1;
        let d = self.on(gpu);
        d.creating += 1;
        d.sandboxes += 1;
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
            if let Some(d) = self.devices.get_mut(sb.gpu.index()) {
                d.creating -= 1;
            }
            list_spare(&mut self.spare, sb);
        }
    }

    /// One invocation in a running (or starting) sandbox ended at `now`; after its last one the
    /// sandbox is idle.
    pub fn release(&mut self, id: SandboxId, now: Time) {
        let Some(sb) = self.sandboxes.get_mut(&id) else {
            return;
        };
        let device = self.devices.get_mut(sb.gpu.index());
        match sb.state {
            SandboxState::Idle => return,
            SandboxState::Starting => {
                self.creating -= 1;
                if let Some(d) = device {
                    d.creating -= 1;
                }
            }
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
        self.idle.or_default((sb.func, sb.gpu)).push(id);
        self.idle_lru.insert((now, id));
    }

    /// Destroys a sandbox whatever its state (crash, eviction); returns it as it was, with the
    /// invocations still running in it.
    pub fn remove(&mut self, id: SandboxId) -> Option<Sandbox> {
        let sb = self.sandboxes.remove(&id)?;
        let d = self.on(sb.gpu);
        d.sandboxes -= 1;
        if sb.state == SandboxState::Starting {
            d.creating -= 1;
        }
        match sb.state {
            SandboxState::Starting => self.creating -= 1,
            SandboxState::Idle => {
                unlist_idle(&mut self.idle_lru, &mut self.lingering, sb.last_used, id);
                if let Some(v) = self.idle.get_mut(&(sb.func, sb.gpu)) {
                    v.retain(|x| *x != id);
                    if v.is_empty() {
                        self.idle.remove(&(sb.func, sb.gpu));
                    }
                }
            }
            SandboxState::Busy => unlist_spare(&mut self.spare, &sb),
        }
        Some(sb)
    }

    /// Destroys idle sandboxes unused for longer than the TTL, except those for which `keep`
    /// holds, which linger until the spare TTL (see the module documentation); returns the
    /// destroyed ones.
    pub fn expire(&mut self, now: Time, mut keep: impl FnMut(SandboxId) -> bool) -> Vec<Sandbox> {
        let mut out = Vec::new();
        while let Some(&(used, id)) = self.idle_lru.first() {
            if used + self.ttl > now {
                break;
            }
            if used + self.spare_ttl > now && keep(id) {
                self.idle_lru.remove(&(used, id));
                self.lingering.insert((used, id));
            } else {
                out.extend(self.remove(id));
            }
        }
        while let Some(&(used, id)) = self.lingering.first() {
            if used + self.spare_ttl > now {
                break;
            }
            out.extend(self.remove(id));
        }
        out
    }

    /// Whether `id` is an idle sandbox past its TTL kept by spare keep-alive.
    pub fn is_lingering(&self, id: SandboxId) -> bool {
        self.sandboxes.get(&id).is_some_and(|sb| {
            sb.state == SandboxState::Idle && self.lingering.contains(&(sb.last_used, id))
        })
    }

    /// Destroys least-recently-used idle sandboxes of `gpu` while it holds more than its cap,
    /// then of the whole pool while it holds more than the worker-wide cap.
    pub fn trim_device(&mut self, gpu: GpuId) -> Vec<Sandbox> {
        let mut out = Vec::new();
        let cap = self.limits.sandboxes_on(gpu.index());
        while self.len_on(gpu) > cap {
            // The least recently used idle sandbox of this device: a device over its cap holds
            // more sandboxes than tokens, so some are idle, and the scan is short.
            let sandboxes = &self.sandboxes;
            let oldest = self
                .lingering
                .iter()
                .chain(self.idle_lru.iter())
                .find(|(_, id)| sandboxes.get(id).is_some_and(|sb| sb.gpu == gpu));
            let Some(&(_, id)) = oldest else {
                break;
            };
            out.extend(self.remove(id));
        }
        self.trim_pool(&mut out);
        out
    }

    /// Applies every cap: each device's, then the worker-wide one.
    pub fn trim(&mut self) -> Vec<Sandbox> {
        let mut out = Vec::new();
        for g in 0..self.devices.len() {
            out.extend(self.trim_device(GpuId(g as u16)));
        }
        self.trim_pool(&mut out);
        out
    }

    fn trim_pool(&mut self, out: &mut Vec<Sandbox>) {
        let cap = self.limits.max_sandboxes.unwrap_or(usize::MAX);
        while self.sandboxes.len() > cap {
            let Some(&(_, id)) = self.lingering.first().or(self.idle_lru.first()) else {
                break;
            };
            out.extend(self.remove(id));
        }
    }

    /// When the next idle sandbox's TTL (or a lingering one's spare TTL) runs out.
    pub fn next_expiry(&self) -> Option<Time> {
        let fresh = self.idle_lru.first().map(|&(used, _)| used + self.ttl);
        let lingering = self
            .lingering
            .first()
            .map(|&(used, _)| used + self.spare_ttl);
        fresh.into_iter().chain(lingering).min()
    }

    /// Whether `func` has an idle sandbox on any device.
    pub fn has_idle_of(&self, func: FunctionId) -> bool {
        self.idle.has(func)
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

    /// The devices where `func` has idle sandboxes, with those sandboxes (least recently used
    /// first), in device order.
    pub fn idle_places(
        &self,
        func: FunctionId,
    ) -> impl Iterator<Item = (GpuId, &[SandboxId])> + '_ {
        self.idle.of(func).map(|(g, v)| (g, v.as_slice()))
    }

    /// The devices where `func` has a busy sandbox with spare capacity, in device order.
    pub fn spare_devices(&self, func: FunctionId) -> impl Iterator<Item = GpuId> + '_ {
        self.spare.of(func).map(|(g, _)| g)
    }

    /// Sandboxes on `gpu`, in any state.
    pub fn len_on(&self, gpu: GpuId) -> usize {
        self.devices.get(gpu.index()).map_or(0, |d| d.sandboxes)
    }

    /// The idle sandboxes of `func` on any device.
    pub fn idle_of(&self, func: FunctionId) -> impl Iterator<Item = SandboxId> + '_ {
        self.idle.of(func).flat_map(|(_, v)| v.iter().copied())
    }

    /// The sandbox `id`, if the pool holds it.
    pub fn get(&self, id: SandboxId) -> Option<&Sandbox> {
        self.sandboxes.get(&id)
    }

    /// Sandboxes in the pool.
    pub fn len(&self) -> usize {
        self.sandboxes.len()
    }

    /// Whether the pool holds no sandbox.
    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty()
    }

    /// Sandboxes being created.
    pub fn creating(&self) -> usize {
        self.creating
    }

    /// Sandboxes per state: (starting, idle, busy).
    pub fn counts(&self) -> (usize, usize, usize) {
        let idle = self.idle_lru.len() + self.lingering.len();
        (
            self.creating,
            idle,
            self.sandboxes.len() - idle - self.creating,
        )
    }
}

#[cfg(test)]
mod tests;
