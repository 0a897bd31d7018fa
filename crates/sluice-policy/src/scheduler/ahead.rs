//! Sandboxes bought ahead: when a function's debt (its calls' waits in a line, `lines`, or its
//! co-running beside other work, `spread`) reaches a cold start, a second sandbox pays off for the
//! calls to come, but the call that tipped the balance need not be the one that waits for it: its
//! own wait in the line, or its own co-run, is shorter than a cold start (that is why it was
//! counted as debt). So the sandbox is created with no call waiting for it ([`Action::Create`])
//! and the call goes on as it would have; later calls find the new sandbox idle once it is ready
//! and prefer it. (The rent-or-buy decision of ski rental, with the purchase delivered while the
//! renting goes on.) Where nothing can be bought now (no device with room under its creation cap,
//! or no memory), the call itself starts the second sandbox, as before.
//!
//! One purchase per function at a time: while its bought sandbox is being created, the function's
//! calls wait in lines or co-run as each alone would, and add nothing to its debts (the purchase
//! already covers them). A call may wait in the line of the sandbox being bought, as in any
//! sandbox's line, when it would start there sooner than in a new one: when the sandbox is ready,
//! the first call of its line starts there (with a token of its device, or first in the device's
//! ready line, `creating`), and the rest follow as each one ends. If it cannot be created, its
//! line goes back to the head of the queue.
//!
//! The new sandbox is created like a prewarmed one: its memory is counted on its device when it
//! is bought, and the engine reports it ready with [`Scheduler::prewarm_done`].

use super::{Action, Create, Scheduler};
use crate::placement::{Key, Request};
use sluice_core::{FunctionId, GpuId, SandboxId, Time};

impl Scheduler {
    /// Whether a sandbox bought ahead for `func` is still being created.
    pub(super) fn buying(&self, func: FunctionId) -> bool {
        self.ahead.contains_key(&func)
    }

    /// Whether `sandbox` is a sandbox bought ahead that is still being created.
    pub(super) fn in_flight(&self, func: FunctionId, sandbox: SandboxId) -> bool {
        self.ahead.get(&func) == Some(&sandbox)
    }

    /// `sandbox` finished starting or is gone: if it was bought ahead, the purchase is over and
    /// its function is returned.
    pub(super) fn bought(&mut self, sandbox: SandboxId) -> Option<FunctionId> {
        let func = self.pool.get(sandbox)?.func;
        self.in_flight(func, sandbox).then(|| {
            self.ahead.remove(&func);
            func
        })
    }

    /// Buys a sandbox of `func` ahead on an idle device (one that runs nothing, has a free token
    /// and room under its creation cap; the first such clockwise from its home): true if one was
    /// bought (see [`Scheduler::buy_ahead`]).
    pub(super) fn buy_on_an_idle_device(
        &mut self,
        func: FunctionId,
        now: Time,
        out: &mut Vec<Action>,
    ) -> bool {
        let (slots, pool) = (&self.slots, &self.pool);
        let idle = |g: &GpuId| slots.in_use(*g) == 0 && slots.has_free(*g) && pool.can_create(*g);
        let req = Request {
            key: Key::of_u64(u64::from(func.0)),
            hints: &[],
            usable: &idle,
            popular: true,
        };
        match self.placement.choose(&req) {
            Some(c) => self.buy_ahead(func, c.bin, now, out),
            None => false,
        }
    }

    /// Buys a sandbox of `func` on `gpu` with no call waiting for it: true if the creation cap
    /// and memory allowed it (the [`Create`] and any moves that make room are in `out`).
    pub(super) fn buy_ahead(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        now: Time,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(sandbox) = self.create_admitted(func, gpu, now, out) else {
            return false;
        };
        self.ahead.insert(func, sandbox);
        self.count_unpaid(func, true);
        self.line_bought(func, sandbox, now);
        out.push(Action::Create(Create { func, sandbox, gpu }));
        true
    }

    /// Counts a new sandbox of `func` as starting on `gpu`, under the creation cap, with its
    /// memory admitted there: the moves that make room for it (and the destruction of lingering
    /// sandboxes whose push they replace) go to `out`. `None`, with nothing changed, if the cap
    /// or memory does not allow it.
    pub(super) fn create_admitted(
        &mut self,
        func: FunctionId,
        gpu: GpuId,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<SandboxId> {
        let capacity = self.info(func).concurrency;
        let sandbox = self.pool.create(func, gpu, capacity, now)?;
        let (bytes, rank) = (self.info(func).gpu_mem_bytes, self.rank_of(func));
        self.memory.add(sandbox, gpu, bytes, rank, now);
        match self.memory.admit(sandbox, now) {
            Ok(moves) => {
                let moves = self.drop_lingering(moves, out);
                out.extend(moves.into_iter().map(Action::Move));
                Some(sandbox)
            }
            Err(_) => {
                self.pool.remove(sandbox);
                self.memory.remove(sandbox);
                None
            }
        }
    }
}
