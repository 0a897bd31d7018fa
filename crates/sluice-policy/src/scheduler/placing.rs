//! Which device a start goes to, and the limits the devices imply.
//!
//! The devices are the bins of a [`Placement`] (equal weights, as every device has the same D
//! tokens; load: tokens in use), so a function has a home device and spills clockwise only when
//! its home is over its load bound.
//! A device where the function has a sandbox with spare capacity (level 3), an idle sandbox
//! whose memory is resident (2) or an idle sandbox pushed to host (1) is hinted; the usable
//! devices are those with a free token that pass the utilisation gate and where the start can go
//! ahead now (a sandbox of the function there, or room under the creation cap). Every token
//! taken or returned goes through [`Scheduler::take_token`] and [`Scheduler::return_token`],
//! which keep the placement's loads equal to the tokens in use.

use super::Scheduler;
use crate::keepalive::{PoolLimits, WarmPool};
use crate::memory::{DeviceMemory, Location};
use crate::placement::{Key, Placement, PlacementParams, Request, MAX_POINTS_PER_BIN};
use sluice_core::{FunctionId, GpuId};

/// The devices as placement bins of equal weight (every device has the same D tokens, so the
/// load bound is each device's share of the tokens in use): D ring-point units each, capped at the
/// largest weight the ring takes.
pub(super) fn device_ring(
    params: &PlacementParams,
    gpus: usize,
    tokens: u32,
) -> Result<Placement<GpuId>, String> {
    let mut ring = Placement::new(params.clone()).map_err(|e| e.to_string())?;
    let weight = tokens.clamp(
        1,
        (MAX_POINTS_PER_BIN / params.vnodes_per_weight.max(1)).max(1),
    );
    ring.join_all((0..gpus).map(|g| (GpuId(g as u16), weight)))
        .map_err(|e| e.to_string())?;
    Ok(ring)
}

/// Whether `func` would start warm on `gpu` without moving memory: a busy sandbox with spare
/// capacity, or an idle sandbox whose memory is on the device.
pub(super) fn warm_on(
    pool: &WarmPool,
    memory: &DeviceMemory,
    func: FunctionId,
    gpu: GpuId,
) -> bool {
    pool.has_spare(func, gpu)
        || pool
            .idle_on(func, gpu)
            .any(|sb| memory.location(sb) == Some(Location::Device))
}

/// Whether a start of `func` on `gpu` could go ahead now: a sandbox of `func` there to run in
/// (idle, or busy with spare capacity), or room under the device's creation caps.
pub(super) fn startable(pool: &WarmPool, func: FunctionId, gpu: GpuId) -> bool {
    pool.has_spare(func, gpu) || pool.idle_on(func, gpu).next().is_some() || pool.can_create(gpu)
}

impl Scheduler {
    /// The device for a start of `func`, from the devices with a free token; `candidate` (the
    /// device the queueing policy chose for, which has a free token) when there is only one
    /// device or placement finds none.
    pub(super) fn device_for(&mut self, func: FunctionId, candidate: GpuId) -> GpuId {
        // One device, or only one with a free token (every token busy but one): nothing to choose.
        if self.slots.gpus() == 1 || self.slots.free_devices() == 1 {
            return candidate;
        }
        let mut hints = std::mem::take(&mut self.hints);
        hints.clear();
        hints.extend(self.pool.spare_devices(func).map(|g| (g, 3)));
        for (g, idle) in self.pool.idle_places(func) {
            let resident = idle
                .iter()
                .any(|&sb| self.memory.location(sb) == Some(Location::Device));
            hints.push((g, if resident { 2 } else { 1 }));
        }
        // Usable: a free token, and a start that can go ahead there: a sandbox of the function
        // to run in, or room under the device's creation cap. A device at its cap would hold the
        // function back until one of its sandboxes is ready (seconds) while others are free.
        let (slots, pool) = (&self.slots, &self.pool);
        let usable = |g: &GpuId| slots.has_free(*g) && startable(pool, func, *g);
        let req = Request {
            key: Key::of_u64(u64::from(func.0)),
            hints: &hints,
            usable: &usable,
            popular: true,
        };
        let gpu = self.placement.choose(&req).map_or(candidate, |c| c.bin);
        self.hints = hints;
        gpu
    }

    /// Where placement would put `func` now ignoring tokens (for prewarming): its home unless
    /// that is over its load bound.
    pub(super) fn home_of(&mut self, func: FunctionId) -> Option<GpuId> {
        let any = |_: &GpuId| true;
        let req = Request {
            key: Key::of_u64(u64::from(func.0)),
            hints: &[],
            usable: &any,
            popular: true,
        };
        self.placement.choose(&req).map(|c| c.bin)
    }

    /// Takes a token of `gpu` (false if none is free).
    pub(super) fn take_token(&mut self, gpu: GpuId) -> bool {
        let taken = self.slots.take(gpu);
        if taken {
            self.sync_load(gpu);
        }
        taken
    }

    /// Returns a token of `gpu`.
    pub(super) fn return_token(&mut self, gpu: GpuId) {
        self.slots.release(gpu);
        self.sync_load(gpu);
    }

    fn sync_load(&mut self, gpu: GpuId) {
        let load = f64::from(self.slots.in_use(gpu));
        // Every device joined the ring at construction; a foreign id changes nothing.
        let _ = self.placement.set_load(&gpu, load);
    }

    /// The pool's caps for the devices and the functions registered so far (see
    /// [`PoolLimits::derive`]).
    pub(super) fn pool_limits(&self) -> PoolLimits {
        let (sum, count) = self.function_memory;
        let mean = (count > 0).then(|| (sum / u128::from(count)) as u64);
        let capacity: Vec<u64> = (0..self.slots.gpus())
            .map(|g| self.memory.capacity(GpuId(g as u16)))
            .collect();
        PoolLimits::derive(
            &self.keepalive,
            self.slots.tokens_per_gpu(),
            &capacity,
            mean,
            self.cold_start_holds_token,
        )
    }
}
