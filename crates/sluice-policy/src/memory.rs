//! Device-memory residency of sandboxes: which sandboxes' memory is on each device and which is
//! on the host, and the moves that change it.
//!
//! Every sandbox on a device owns `bytes` of device memory (its tracked allocations) that are
//! either resident on the device or pushed to host memory (managed memory makes both legal for a
//! black-box process). A running sandbox is always resident: it counts the invocations running
//! in it (a sandbox with `concurrency` > 1 may run several), and only once the last one is
//! released does it become a candidate for eviction. Before a start, room is made by
//! pushing *idle* resident sandboxes of that device to the host, lowest [`Rank`] first and least
//! recently used first within a rank; if that cannot make room the start is refused and nothing
//! changes. Resident bytes never exceed `capacity × oversubscribe` (1.0 unless oversubscription
//! is configured).
//!
//! How memory follows flow state is [`FlowCoupling`]: MQFQ-Sticky's eager movement (prefetch on
//! Active, push to host on Throttled/Inactive), Sluice's lazy variant (prefetch on Active, but
//! leaving Active only lowers a sandbox's rank to that of everything else, so it is pushed out in
//! LRU order *when room is needed*), or none.
//!
//! This module decides; it moves nothing. The engine carries out the returned [`MemMove`]s.

mod params;

pub use params::{FlowCoupling, MemoryParams, Rank};

use crate::idmap::IdMap;
use serde::{Deserialize, Serialize};
use sluice_core::{GpuId, SandboxId, Time};
use std::collections::BTreeSet;

/// Where a sandbox's device memory is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// Resident in device memory.
    Device,
    /// Not on the device: pushed out to host memory, or (for a new sandbox) not yet allocated.
    Host,
}

/// Move `bytes` of `sandbox`'s memory on `gpu` to `to`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemMove {
    /// The sandbox whose memory moves.
    pub sandbox: SandboxId,
    /// The device the sandbox belongs to: the source of a push to host, the destination of a move
    /// back.
    pub gpu: GpuId,
    /// How much moves: the sandbox's whole tracked allocation.
    pub bytes: u64,
    /// Where the memory ends up.
    pub to: Location,
}

/// Why a sandbox could not be made resident.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// The sandbox was never [`add`](DeviceMemory::add)ed, or was removed since.
    #[error("sandbox {0} is unknown to the memory manager")]
    Unknown(SandboxId),
    /// The sandbox alone exceeds the device's limit (`capacity × oversubscribe`): it can never be
    /// resident there.
    #[error("needs {need} bytes but the device allows {limit} in all")]
    TooLarge {
        /// The sandbox's bytes.
        need: u64,
        /// Most bytes that may be resident on the device.
        limit: u64,
    },
    /// Even with every idle sandbox of the device pushed to host, the running ones leave too little
    /// room; it may fit once some finish.
    #[error("needs {need} bytes; only {free} free after pushing out every idle sandbox")]
    NoRoom {
        /// The sandbox's bytes.
        need: u64,
        /// Bytes that would be free after pushing every idle sandbox of the device to host.
        free: u64,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    gpu: GpuId,
    bytes: u64,
    location: Location,
    /// Invocations running in it; > 0 keeps it resident.
    busy: u32,
    /// Whether its memory was ever on the device (a new sandbox allocates, it does not move).
    populated: bool,
    last_used: Time,
    rank: Rank,
}

/// Residency bookkeeping for all devices.
#[derive(Clone, Debug)]
pub struct DeviceMemory {
    capacity: Vec<u64>,
    limit: Vec<u64>,
    resident: Vec<u64>,
    entries: IdMap<SandboxId, Entry>,
    /// Per device, idle resident sandboxes by (rank, last use, id): eviction order.
    idle_lru: Vec<BTreeSet<(Rank, Time, SandboxId)>>,
}

impl DeviceMemory {
    /// `capacity[i]` is device i's memory in bytes.
    pub fn new(capacity: Vec<u64>, params: &MemoryParams) -> Self {
        let k = params.oversubscribe.max(1.0);
        let limit = capacity.iter().map(|&c| (c as f64 * k) as u64).collect();
        let n = capacity.len();
        DeviceMemory {
            capacity,
            limit,
            resident: vec![0; n],
            entries: IdMap::default(),
            idle_lru: vec![BTreeSet::new(); n],
        }
    }

    /// Declares a new sandbox on `gpu` needing `bytes`; its memory is not yet allocated.
    pub fn add(&mut self, sandbox: SandboxId, gpu: GpuId, bytes: u64, rank: Rank, now: Time) {
        self.remove(sandbox);
        self.entries.insert(
            sandbox,
            Entry {
                gpu,
                bytes,
                location: Location::Host,
                busy: 0,
                populated: false,
                last_used: now,
                rank,
            },
        );
    }

    /// Changes a sandbox's eviction rank.
    pub fn set_rank(&mut self, sandbox: SandboxId, rank: Rank) {
        if let Some((e, dev)) = self.split(sandbox) {
            rerank(e, sandbox, rank, dev.idle_lru);
        }
    }

    /// What a flow-state change does to one sandbox, with one lookup: [`set_rank`](Self::set_rank)
    /// and then, for `to`, [`prefetch`](Self::prefetch) (`Device`) or [`offload`](Self::offload)
    /// (`Host`).
    pub fn follow_flow(
        &mut self,
        sandbox: SandboxId,
        rank: Rank,
        to: Option<Location>,
    ) -> Option<MemMove> {
        let (e, dev) = self.split(sandbox)?;
        rerank(e, sandbox, rank, dev.idle_lru);
        match to? {
            Location::Device => prefetch(e, sandbox, dev),
            Location::Host => offload(e, sandbox, dev),
        }
    }

    /// Forgets a sandbox (destroyed), freeing its device memory.
    pub fn remove(&mut self, sandbox: SandboxId) {
        if let Some(e) = self.entries.remove(&sandbox) {
            let g = e.gpu.index();
            if e.location == Location::Device {
                self.resident[g] -= e.bytes;
                self.idle_lru[g].remove(&(e.rank, e.last_used, sandbox));
            }
        }
    }

    /// Makes `sandbox` resident and counts one more invocation running in it. Returns the moves
    /// to perform first: the idle sandboxes pushed to host to make room, then the sandbox's own
    /// memory brought back (absent for a new sandbox, whose memory is allocated rather than
    /// moved; and for a sandbox already running, which is resident). On error nothing changed.
    pub fn admit(&mut self, sandbox: SandboxId, now: Time) -> Result<Vec<MemMove>, AdmitError> {
        let e = self
            .entries
            .get_mut(&sandbox)
            .ok_or(AdmitError::Unknown(sandbox))?;
        if e.busy > 0 {
            e.busy += 1;
            e.last_used = now;
            return Ok(Vec::new());
        }
        let (g, bytes, location) = (e.gpu.index(), e.bytes, e.location);
        let key = (e.rank, e.last_used, sandbox);
        let mut moves = Vec::new();
        if location == Location::Device {
            self.idle_lru[g].remove(&key);
        } else {
            if bytes > self.limit[g] {
                return Err(AdmitError::TooLarge {
                    need: bytes,
                    limit: self.limit[g],
                });
            }
            let mut free = self.limit[g] - self.resident[g];
            let mut victims = Vec::new();
            for &(_, _, victim) in &self.idle_lru[g] {
                if free >= bytes {
                    break;
                }
                free += self.entries[&victim].bytes;
                victims.push(victim);
            }
            if free < bytes {
                return Err(AdmitError::NoRoom { need: bytes, free });
            }
            for victim in victims {
                moves.extend(self.offload(victim));
            }
            let e = self.entries.get_mut(&sandbox).expect("checked above");
            if e.populated {
                moves.push(MemMove {
                    sandbox,
                    gpu: e.gpu,
                    bytes,
                    to: Location::Device,
                });
            }
            e.location = Location::Device;
            e.populated = true;
            self.resident[g] += bytes;
        }
        let e = self.entries.get_mut(&sandbox).expect("checked above");
        e.busy = 1;
        e.last_used = now;
        Ok(moves)
    }

    /// One invocation in a running sandbox ended at `now`; after its last one the sandbox is
    /// idle and may be pushed out (a sandbox that is not running is left alone).
    pub fn release(&mut self, sandbox: SandboxId, now: Time) {
        if let Some(e) = self.entries.get_mut(&sandbox).filter(|e| e.busy > 0) {
            e.busy -= 1;
            e.last_used = now;
            if e.busy == 0 && e.location == Location::Device {
                self.idle_lru[e.gpu.index()].insert((e.rank, now, sandbox));
            }
        }
    }

    /// Invocations running in `sandbox` (0 when idle or unknown).
    pub fn running(&self, sandbox: SandboxId) -> u32 {
        self.entries.get(&sandbox).map_or(0, |e| e.busy)
    }

    /// Brings an idle sandbox's memory back to the device if it fits without pushing anything
    /// else out.
    pub fn prefetch(&mut self, sandbox: SandboxId) -> Option<MemMove> {
        let (e, dev) = self.split(sandbox)?;
        prefetch(e, sandbox, dev)
    }

    /// Pushes an idle resident sandbox's memory to the host.
    pub fn offload(&mut self, sandbox: SandboxId) -> Option<MemMove> {
        let (e, dev) = self.split(sandbox)?;
        offload(e, sandbox, dev)
    }

    /// `sandbox`'s entry and the per-device state beside it.
    fn split(&mut self, sandbox: SandboxId) -> Option<(&mut Entry, Devices<'_>)> {
        let e = self.entries.get_mut(&sandbox)?;
        let dev = Devices {
            resident: &mut self.resident,
            limit: &self.limit,
            idle_lru: &mut self.idle_lru,
        };
        Some((e, dev))
    }

    /// Whether `sandbox` holds device memory that is resident now.
    pub fn holds_resident(&self, sandbox: SandboxId) -> bool {
        self.entries
            .get(&sandbox)
            .is_some_and(|e| e.location == Location::Device && e.bytes > 0)
    }

    /// Where `sandbox`'s memory is.
    pub fn location(&self, sandbox: SandboxId) -> Option<Location> {
        self.entries.get(&sandbox).map(|e| e.location)
    }

    /// Bytes resident on `gpu`.
    pub fn resident(&self, gpu: GpuId) -> u64 {
        self.resident.get(gpu.index()).copied().unwrap_or(0)
    }

    /// Physical capacity of `gpu`.
    pub fn capacity(&self, gpu: GpuId) -> u64 {
        self.capacity.get(gpu.index()).copied().unwrap_or(0)
    }

    /// Most bytes that may be resident on `gpu`.
    pub fn limit(&self, gpu: GpuId) -> u64 {
        self.limit.get(gpu.index()).copied().unwrap_or(0)
    }
}

/// A [`DeviceMemory`]'s per-device state, borrowed beside one of its entries.
struct Devices<'a> {
    resident: &'a mut [u64],
    limit: &'a [u64],
    idle_lru: &'a mut [BTreeSet<(Rank, Time, SandboxId)>],
}

/// Sets `e`'s rank, re-keying it in its device's eviction order if it is there.
fn rerank(
    e: &mut Entry,
    sandbox: SandboxId,
    rank: Rank,
    idle_lru: &mut [BTreeSet<(Rank, Time, SandboxId)>],
) {
    if e.rank == rank {
        return;
    }
    let set = &mut idle_lru[e.gpu.index()];
    if set.remove(&(e.rank, e.last_used, sandbox)) {
        set.insert((rank, e.last_used, sandbox));
    }
    e.rank = rank;
}

/// [`DeviceMemory::prefetch`] of the sandbox whose entry is `e`.
fn prefetch(e: &mut Entry, sandbox: SandboxId, dev: Devices<'_>) -> Option<MemMove> {
    let g = e.gpu.index();
    if e.busy > 0 || !e.populated || e.location == Location::Device {
        return None;
    }
    if dev.resident[g] + e.bytes > dev.limit[g] {
        return None;
    }
    e.location = Location::Device;
    dev.resident[g] += e.bytes;
    dev.idle_lru[g].insert((e.rank, e.last_used, sandbox));
    Some(MemMove {
        sandbox,
        gpu: e.gpu,
        bytes: e.bytes,
        to: Location::Device,
    })
}

/// [`DeviceMemory::offload`] of the sandbox whose entry is `e`.
fn offload(e: &mut Entry, sandbox: SandboxId, dev: Devices<'_>) -> Option<MemMove> {
    let g = e.gpu.index();
    if e.busy > 0 || e.location == Location::Host {
        return None;
    }
    e.location = Location::Host;
    dev.resident[g] -= e.bytes;
    dev.idle_lru[g].remove(&(e.rank, e.last_used, sandbox));
    Some(MemMove {
        sandbox,
        gpu: e.gpu,
        bytes: e.bytes,
        to: Location::Host,
    })
}

#[cfg(test)]
mod tests;
