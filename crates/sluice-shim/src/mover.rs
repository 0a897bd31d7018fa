//! Carrying out control commands through the driver, on the control thread: for each context
//! that holds managed allocations, make it current on this thread, use the shim's own stream in
//! it (created once, `CU_STREAM_NON_BLOCKING`, so the application's streams are never waited
//! on), issue `cuMemPrefetchAsync` for every allocation, then `cuStreamSynchronize`. Advice
//! (`cuMemAdvise`, `SET_PREFERRED_LOCATION`) needs no stream. The registry stays locked while
//! calls are issued, so no allocation is freed under a prefetch being issued.

use crate::cuda::*;
use crate::driver::Driver;
use crate::protocol::Target;
use crate::state::State;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A command that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// The driver lacks an entry point the command needs (its name).
    #[error("the driver has no {0}")]
    Missing(&'static str),
    /// A driver call returned an error.
    #[error("{call} failed with CUDA error {code}")]
    Cuda {
        /// The driver entry point, e.g. `cuMemPrefetchAsync`.
        call: &'static str,
        /// The `CUresult` it returned.
        code: CuResult,
    },
}

/// What a command covered.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Bytes of the allocations covered (prefetched or advised).
    pub bytes: u64,
    /// Number of allocations covered.
    pub count: u64,
    /// Wall time the command took, including waiting for prefetches to complete.
    pub elapsed: Duration,
}

/// The control thread's executor: owns one stream per context.
#[derive(Debug, Default)]
pub struct Mover {
    streams: HashMap<usize, usize>,
}

fn need<T>(f: Option<T>, name: &'static str) -> Result<T, MoveError> {
    f.ok_or(MoveError::Missing(name))
}

fn check(call: &'static str, code: CuResult) -> Result<(), MoveError> {
    if code == CUDA_SUCCESS {
        Ok(())
    } else {
        Err(MoveError::Cuda { call, code })
    }
}

/// Makes `context` current on this thread and returns where `to` is for it.
fn enter(d: &Driver, context: usize, to: Target) -> Result<CuDevice, MoveError> {
    let set = need(d.ctx_set_current, "cuCtxSetCurrent")?;
    // SAFETY: `context` was current when a still-recorded allocation was made, so the driver
    // handed it out. The shim assumes a context outlives the allocations made in it (it does not
    // interpose `cuCtxDestroy`, so it cannot drop the records of a context destroyed early).
    check("cuCtxSetCurrent", unsafe { set(context as CuContext) })?;
    match to {
        Target::Host => Ok(CU_DEVICE_CPU),
        Target::Device => {
            let get = need(d.ctx_get_device, "cuCtxGetDevice")?;
            let mut dev: CuDevice = 0;
            // SAFETY: a valid out-pointer.
            check("cuCtxGetDevice", unsafe { get(&mut dev) })?;
            Ok(dev)
        }
    }
}

impl Mover {
    /// The shim's stream in the current context `context`.
    fn stream(&mut self, d: &Driver, context: usize) -> Result<CuStream, MoveError> {
        if let Some(&s) = self.streams.get(&context) {
            return Ok(s as CuStream);
        }
        let create = need(d.stream_create, "cuStreamCreate")?;
        let mut s: CuStream = std::ptr::null_mut();
        // SAFETY: a valid out-pointer; the context is current on this thread.
        check("cuStreamCreate", unsafe {
            create(&mut s, CU_STREAM_NON_BLOCKING)
        })?;
        self.streams.insert(context, s as usize);
        Ok(s)
    }

    /// Prefetches every managed allocation to `to` and waits until it is there.
    pub fn prefetch(&mut self, d: &Driver, state: &State, to: Target) -> Result<Moved, MoveError> {
        let prefetch = need(d.mem_prefetch_async, "cuMemPrefetchAsync")?;
        let sync = need(d.stream_synchronize, "cuStreamSynchronize")?;
        let start = Instant::now();
        let mut moved = Moved::default();
        let mut issued = Vec::new();
        {
            let registry = state.registry();
            for group in registry.managed_by_context() {
                let dst = enter(d, group.context, to)?;
                let stream = self.stream(d, group.context)?;
                for &(ptr, bytes) in &group.ranges {
                    // SAFETY: a live managed allocation (the registry is locked) and our stream.
                    let code = unsafe { prefetch(ptr, bytes as usize, dst, stream) };
                    check("cuMemPrefetchAsync", code)?;
                    moved.bytes += bytes;
                    moved.count += 1;
                }
                issued.push((group.context, stream));
            }
        }
        for (context, stream) in issued {
            enter(d, context, to)?;
            // SAFETY: the shim's own stream in the current context.
            check("cuStreamSynchronize", unsafe { sync(stream) })?;
        }
        moved.elapsed = start.elapsed();
        Ok(moved)
    }

    /// Sets the preferred location of every managed allocation to `to`.
    pub fn advise(&mut self, d: &Driver, state: &State, to: Target) -> Result<Moved, MoveError> {
        let advise = need(d.mem_advise, "cuMemAdvise")?;
        let start = Instant::now();
        let mut done = Moved::default();
        let registry = state.registry();
        for group in registry.managed_by_context() {
            let dst = enter(d, group.context, to)?;
            for &(ptr, bytes) in &group.ranges {
                let advice = CU_MEM_ADVISE_SET_PREFERRED_LOCATION;
                // SAFETY: a live managed allocation (the registry is locked).
                check("cuMemAdvise", unsafe {
                    advise(ptr, bytes as usize, advice, dst)
                })?;
                done.bytes += bytes;
                done.count += 1;
            }
        }
        done.elapsed = start.elapsed();
        Ok(done)
    }
}
