//! Sluice on many machines. Routers are stateless and serve the worker's public API; workers
//! join the cluster through etcd; accepted asynchronous invocations live in NATS JetStream.
//! No membership or consensus code of our own: etcd provides leases (membership), the
//! function and pipeline registry (compare-and-swap on `mod_revision`) and leader election;
//! JetStream provides the durable work queue and the result store.
//!
//! - [`keys`]: the etcd keyspace under `/sluice/v1/`;
//! - [`model`]: what is stored there (members, pipeline records, assignments) and the load
//!   reports workers send back;
//! - [`etcd`]: the etcd client behind [`etcd::Coordinator`], and the watch loop that keeps a
//!   [`cache::Cache`] of a prefix;
//! - [`queue`]: the JetStream work queue and result bucket behind [`queue::AsyncQueue`];
//! - [`balance`]: which worker a function's invocation goes to (the shared placement policy,
//!   fed by membership and load reports);
//! - [`router`]: the router service (HTTP API, forwarding, dispatchers);
//! - [`worker`]: the worker's side: membership agent (lease, fencing), registry mirror,
//!   pipeline assignment reconciler;
//! - [`controller`]: the elected pipeline controller;
//! - [`scale`]: membership at scale, measured (1,000 simulated workers' leases);
//! - [`config`]: the router's configuration (`config/router.toml`) and the worker's cluster
//!   settings.

pub mod balance;
pub mod cache;
pub mod config;
pub mod controller;
pub mod error;
pub mod etcd;
pub mod forward;
pub mod keys;
pub mod model;
pub mod queue;
pub mod router;
pub mod scale;
pub mod worker;

pub use error::ClusterError;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
