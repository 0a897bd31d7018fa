//! Cold starts that do not hold a token (`slots.cold_start_holds_token` off, the default).
//!
//! A device token stands for a share of the device's compute. Creating a sandbox (a process, a
//! runtime, a model read into memory) runs no kernels, so the invocation that caused a cold
//! start gives its token back as soon as the start is decided, and other work runs on the device
//! meanwhile; how many sandboxes start at once on a device is bounded by the pool's creation cap.
//! When the engine reports the sandbox ready ([`Scheduler::sandbox_ready`]), the invocation takes
//! a token on the sandbox's device if one is free and runs at once. Otherwise it waits in that
//! device's *ready line*, served before anything else at every dispatch (its sandbox is created
//! and its memory resident; only the token is missing), and the scheduler answers a warm
//! [`Start`] for the same invocation and sandbox when a token frees there; the engine then runs
//! the invocation it holds.
//!
//! Without this, on a busy trace's warm-up every cold start held a token for its whole start
//! (1.6–5.6 s on the Ilúvatar catalogue): on 4 GPUs the tokens held by the first minute's cold
//! starts built a backlog that the remaining capacity drained for minutes.

use super::{Action, Scheduler, Start};
use crate::idmap::IdMap;
use sluice_core::{GpuId, Invocation, SandboxId, Time};
use std::collections::VecDeque;

/// Sandboxes being created for an invocation that holds no token, and ready ones waiting for one.
#[derive(Debug, Default)]
pub(super) struct Creating {
    /// Per sandbox being created: its device and the invocation that will run first in it.
    starting: IdMap<SandboxId, (GpuId, Invocation)>,
    /// Per device index: ready sandboxes and their first invocations, in the order they became
    /// ready.
    ready: Vec<VecDeque<(SandboxId, Invocation)>>,
}

impl Scheduler {
    /// A cold start of `inv` in `sandbox` on `gpu` was decided with a token of `gpu`: unless
    /// cold starts hold their token, it goes back until the sandbox is ready.
    pub(super) fn creation_started(&mut self, inv: Invocation, sandbox: SandboxId, gpu: GpuId) {
        if self.cold_start_holds_token {
            return;
        }
        self.return_token(gpu);
        self.creating.starting.insert(sandbox, (gpu, inv));
    }

    /// A cold-started sandbox is ready. True if its first invocation runs now (it holds a
    /// token); false if it waits for one: the scheduler then answers a warm [`Start`] of the
    /// same invocation in `sandbox` when a token frees on its device, and the engine runs the
    /// invocation it holds.
    pub fn sandbox_ready(&mut self, sandbox: SandboxId) -> bool {
        self.pool.started(sandbox);
        let Some((gpu, inv)) = self.creating.starting.remove(&sandbox) else {
            return true;
        };
        if self.take_token(gpu) {
            return true;
        }
        self.wait_for_token(sandbox, gpu, inv);
        false
    }

    /// `inv` waits in `gpu`'s ready line for a token to run in `sandbox`, which is ready.
    pub(super) fn wait_for_token(&mut self, sandbox: SandboxId, gpu: GpuId, inv: Invocation) {
        let ready = &mut self.creating.ready;
        if ready.len() <= gpu.index() {
            ready.resize_with(gpu.index() + 1, VecDeque::new);
        }
        ready[gpu.index()].push_back((sandbox, inv));
    }

    /// Starts the invocations of ready sandboxes on devices with a free token, first come
    /// first served per device.
    pub(super) fn serve_ready_lines(&mut self, now: Time, out: &mut Vec<Action>) {
        for g in 0..self.creating.ready.len() {
            let gpu = GpuId(g as u16);
            while !self.creating.ready[g].is_empty() && self.take_token(gpu) {
                let Some((sandbox, inv)) = self.creating.ready[g].pop_front() else {
                    break;
                };
                self.expect_end(inv.func, sandbox, false, now);
                out.push(Action::Start(Start {
                    inv,
                    gpu,
                    sandbox,
                    cold: false,
                    moves: Vec::new(),
                }));
            }
        }
    }

    /// Forgets `sandbox` if its first invocation holds no token (being created, or ready and
    /// waiting for one); true if it did.
    pub(super) fn forget_tokenless(&mut self, sandbox: SandboxId) -> bool {
        if self.creating.starting.remove(&sandbox).is_some() {
            return true;
        }
        for line in &mut self.creating.ready {
            if let Some(i) = line.iter().position(|&(sb, _)| sb == sandbox) {
                line.remove(i);
                return true;
            }
        }
        false
    }
}
