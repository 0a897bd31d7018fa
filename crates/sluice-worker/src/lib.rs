//! The Sluice worker: runs registered black-box functions in sandboxes on real or simulated GPUs,
//! scheduled by the same policy code the simulator drives (`sluice_policy::scheduler`).

pub mod api;
pub mod config;
pub mod devices;
pub mod engine;
pub mod function;
pub mod images;
pub mod logs;
pub mod pipeline;
pub mod protocol;
pub mod sandbox;
pub mod server;
pub mod store;
