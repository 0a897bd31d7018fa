//! `libsluice_shim.so`: preloaded (`LD_PRELOAD`) into GPU sandboxes, it turns the CUDA driver's
//! device allocations into managed (unified) memory, records every allocation, reports free
//! memory against a configured budget, and serves a control socket on which the worker asks it
//! to prefetch all recorded allocations to the device or to the host.
//!
//! Layout: [`cuda`] (the driver ABI slice), [`driver`] (the real `libcuda.so.1`, loaded lazily),
//! [`dlsym`] (the real `dlsym` and the trampoline that hands out the shim's entry points to code
//! that looks the driver up by handle), [`exports`] (the interposed `cu*` entry points),
//! [`procaddr`] (which of them `cuGetProcAddress` hands out), [`registry`] (live allocations),
//! [`sizing`] (pitch and free-memory arithmetic), [`protocol`] (the control line protocol),
//! [`mover`] (prefetch and advice through the driver), [`server`] (the control socket thread),
//! [`state`] (process-wide state and the environment).
//!
//! Nothing runs at load time: the driver is opened, and the control thread started, at the first
//! interposed call, so a process that never touches CUDA runs unchanged, and where
//! `libcuda.so.1` is missing every interposed call fails as the missing driver would.

pub mod cuda;
pub mod dlsym;
pub mod driver;
pub mod exports;
pub mod mover;
pub mod procaddr;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod sizing;
pub mod state;
