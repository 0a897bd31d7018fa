//! The engine's load as a cluster router sees it: invocations queued and running and the token
//! capacity (cheap: one lock, a few additions, no system calls; sent on every invocation
//! response), which functions are warm (for `GET /v1/load`), and draining that can be lifted
//! again (a cluster member that lost its lease drains itself, then rejoins).

use super::{Engine, QueueKind};
use serde::Serialize;
use sluice_core::GpuId;
use std::collections::HashSet;

/// Queued, running and capacity, in device tokens (GPU and CPU together).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Waiting for a token.
    pub queued: u32,
    /// Holding a token.
    pub running: u32,
    /// Tokens in all.
    pub tokens: u32,
}

impl Engine {
    /// The current load.
    pub fn load(&self) -> Load {
        let gpus = self.inner.devices.gpus().len();
        let per_gpu = self.inner.cfg.scheduler.slots.tokens_per_gpu;
        let cpu = self.inner.cpu_slots;
        let st = self.inner.lock();
        let running: u32 = (0..gpus)
            .map(|g| st.gpu.tokens_in_use(GpuId(g as u16)))
            .sum::<u32>()
            + st.cpu.tokens_in_use(GpuId(0));
        Load {
            queued: st.queued_total as u32,
            running,
            tokens: per_gpu * gpus as u32 + cpu,
        }
    }

    /// The registered functions that have a live sandbox (idle or busy), sorted.
    pub fn warm_functions(&self) -> Vec<String> {
        let st = self.inner.lock();
        let mut ids = HashSet::new();
        for (q, sid) in st.live.keys() {
            let pool = match q {
                QueueKind::Gpu => st.gpu.pool(),
                QueueKind::Cpu => st.cpu.pool(),
            };
            if let Some(s) = pool.get(*sid) {
                ids.insert((*q, s.func));
            }
        }
        let mut names: Vec<String> = st
            .functions
            .iter()
            .filter(|(_, r)| ids.contains(&(r.queue, r.id)))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Starts (`true`) or stops (`false`) draining: while draining, new invocations get 503.
    pub fn set_draining(&self, draining: bool) {
        self.inner.lock().draining = draining;
    }
}
