//! Co-running debt: when a function keeps co-running on a busy device while another device sits
//! idle, it pays for one cold start there.
//!
//! Placement prefers a device where the function is warm, also one that is over its load bound
//! (the hint slack): a warm start beside another invocation is nearly always cheaper than a cold
//! start. But two hot functions whose warm sandboxes share a device (their homes collide on the
//! ring, which more devices can make happen) would then co-run there for good, each slowing the
//! other, while other devices stay idle. So each start of a function on a device that already
//! runs something, taken while at least half the devices run nothing (with fewer idle, a new
//! sandbox would soon co-run too, and cost memory others need), adds the time it is expected to
//! co-run to its debt: its estimated service time, or less when everything that runs there is
//! expected to end sooner (a long function beside short calls co-runs only for their rest; a
//! call past its expected end may run on for any time, so beside one the whole service counts).
//! That is an estimate of what co-running costs (its own execution stretched and the other's);
//! once the debt reaches the function's measured cold start, the debt is cleared and a second
//! sandbox is bought on an idle device (the first clockwise from its home), as in ski rental: the
//! rent paid so far buys it. If the function already has a sandbox there, the start moves,
//! warm; if it is warm where the start was going and co-running costs it less than a cold start,
//! that start still runs there and the sandbox is created ahead, with no call waiting for it
//! (`ahead`); otherwise (or when nothing can be bought now) the start itself goes to the idle
//! device. Later starts find the new sandbox idle on a device within its bound and prefer it. A
//! debt untouched for the longest keep-alive (the spare TTL, `keepalive`) is forgotten: the
//! sandbox it would buy would not be kept that long between uses. (Forgotten after the shorter
//! TTL while sandboxes lingered, debts went between a function's bursts, and the class-timed
//! Azure day kept single GPU steps that raised a mean by up to 0.03%; with the spare TTL, none.)

use super::{Action, Scheduler};
use crate::placement::{Key, Request};
use sluice_core::{FunctionId, GpuId, Time};

/// A function's co-running debt.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Debt {
    /// Estimated time lost to co-running since the last cold start it paid for, µs.
    us: u64,
    /// When it last grew.
    at: Time,
}

impl Scheduler {
    /// The device for a start of `func` that placement sent to `gpu`: an idle device instead, or
    /// `gpu` with a sandbox bought ahead on the idle device (in `out`), when `func`'s co-running
    /// debt has reached its cold start (see the module documentation).
    pub(super) fn spread(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        now: Time,
        out: &mut Vec<Action>,
    ) -> GpuId {
        if self.slots.in_use(gpu) == 0 {
            return gpu;
        }
        let Some(cold) = self.settled_cold_start(func) else {
            return gpu;
        };
        if !self.mostly_idle() || self.buying(func) {
            return gpu;
        }
        let ttl = self.keepalive.longest();
        let est = self.estimator.estimate(func);
        // The time it co-runs: its own service, or less when what runs there ends sooner.
        let overlap = self
            .longest_rest_on(gpu, now)
            .map_or(est, |rest| rest.min(est));
        let debt = self.corun.entry(func).or_default();
        if now.since(debt.at) > ttl {
            debt.us = 0;
        }
        debt.us = debt.us.saturating_add(overlap.as_micros());
        debt.at = now;
        if debt.us < cold.as_micros() {
            return gpu;
        }
        debt.us = 0;
        let (slots, pool) = (&self.slots, &self.pool);
        let idle = |g: &GpuId| {
            slots.in_use(*g) == 0 && slots.has_free(*g) && super::placing::startable(pool, func, *g)
        };
        let req = Request {
            key: Key::of_u64(u64::from(func.0)),
            hints: &[],
            usable: &idle,
            popular: true,
        };
        let Some(to) = self.placement.choose(&req).map(|c| c.bin) else {
            return gpu;
        };
        // A sandbox of the function there already: the start moves, warm. Otherwise, if it is
        // warm where it was going and co-running there costs it less than a cold start, it
        // co-runs once more while a sandbox is bought ahead on the idle device; else it starts
        // that sandbox itself.
        let warm =
            |g: GpuId| self.pool.has_spare(func, g) || self.pool.idle_on(func, g).next().is_some();
        if !warm(to) && warm(gpu) && overlap < cold && self.buy_ahead(func, to, now, out) {
            return gpu;
        }
        to
    }

    /// The devices that run nothing and have a free token (they pass the utilisation gate).
    fn idle_devices(&self) -> impl Iterator<Item = GpuId> + '_ {
        (0..self.slots.gpus())
            .map(|g| GpuId(g as u16))
            .filter(|&g| self.slots.in_use(g) == 0 && self.slots.has_free(g))
    }

    /// Whether some device runs nothing and has a free token.
    pub(super) fn an_idle_device(&self) -> bool {
        self.idle_devices().next().is_some()
    }

    /// Whether at least half the devices run nothing and have a free token: a second sandbox of
    /// a function would then run alone rather than beside other work.
    pub(super) fn mostly_idle(&self) -> bool {
        2 * self.idle_devices().count() >= self.slots.gpus()
    }
}
