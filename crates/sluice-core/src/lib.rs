//! The vocabulary every Sluice layer speaks: identifiers, a time type that serves both a virtual
//! and a real clock, invocations, running estimators and summary statistics.
//!
//! This crate owns no policy and performs no I/O; it is the bottom layer of `DESIGN.md`.

pub mod estimate;
pub mod ids;
pub mod invocation;
pub mod stats;
pub mod time;

pub use estimate::Ewma;
pub use ids::{FunctionId, GpuId, InvocationId, SandboxId};
pub use invocation::Invocation;
pub use time::{Dur, Time};
