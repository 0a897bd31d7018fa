//! Sluice's discrete-event simulator: a virtual clock and a device model ([`device`]) driving the
//! policy layer's [`sluice_policy::scheduler::Scheduler`] unchanged ([`engine`]), trace loaders
//! that build [`workload::Workload`]s from real traces ([`trace`]), and reports over
//! [`record::RunResult`]s ([`report`]), each beside the ideal bound of its arrivals ([`ideal`]);
//! [`capacity`] searches the fewest GPUs that meet a latency target. Parameters come from
//! [`config::SimConfig`]. Pipelines of GPU microservices have their own engine, reports and
//! evaluation in [`pipeline`].

pub mod capacity;
pub mod cluster;
pub mod config;
pub mod device;
pub mod engine;
pub mod experiment;
pub mod ideal;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod trace;
pub mod workload;
