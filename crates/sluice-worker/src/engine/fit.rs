//! Whether a function spec can ever run on this worker's devices: refused at registration
//! (400, naming the field) rather than queued forever.

use super::Engine;
use crate::function::{FunctionSpec, SpecError};

impl Engine {
    /// Checks `spec` against the devices: a sandbox needing more GPU memory than the largest
    /// device allows (its memory times `scheduler.memory.oversubscribe`, as the scheduler
    /// counts it) could never be placed. Applies to CPU functions too, where such a figure can
    /// only be a mistake.
    pub fn check_fits(&self, spec: &FunctionSpec) -> Result<(), SpecError> {
        let need = spec.resources.gpu_memory_mb.saturating_mul(1 << 20);
        let largest = self.largest_gpu_memory();
        if need > largest {
            return Err(SpecError {
                field: "resources.gpu_memory_mb",
                reason: format!(
                    "{} MiB is more than any device of this worker allows (the largest: {} MiB)",
                    spec.resources.gpu_memory_mb,
                    largest >> 20
                ),
            });
        }
        Ok(())
    }

    /// The most device memory one sandbox may hold on this worker, bytes: the largest device's
    /// memory times `scheduler.memory.oversubscribe`, as the scheduler counts it.
    pub fn largest_gpu_memory(&self) -> u64 {
        let factor = self.inner.cfg.scheduler.memory.oversubscribe.max(1.0);
        self.inner
            .devices
            .gpus()
            .iter()
            .map(|g| (g.memory_bytes as f64 * factor) as u64)
            .max()
            .unwrap_or(0)
    }
}
