//! Sluice's policy layer: pure, deterministic state machines driven by events that carry `now`.
//!
//! Nothing here reads a clock, spawns a thread or touches a file. The simulator and the worker
//! drive the same code: [`scheduler::Scheduler`] composes a queueing policy ([`queue`]), device
//! concurrency tokens ([`slots`]), device-memory residency ([`memory`]), the warm-sandbox pool
//! ([`keepalive`]) and service-time estimates ([`estimator`]) into one event-driven core that
//! answers "what should start now, where, and which memory must move". [`admission`] predicts
//! how long a new invocation would wait, so an engine can refuse what it could not serve in time.
//! [`placement`] chooses a GPU inside a worker or a worker inside a cluster; [`routing`] wraps it
//! with the simpler cluster routing rules (random, round robin, least loaded, p2c) for comparison.

pub mod admission;
pub mod estimator;
pub mod firstset;
pub mod idmap;
pub mod keepalive;
pub mod memory;
pub mod placement;
pub mod queue;
pub mod routing;
pub mod scheduler;
pub mod slots;
