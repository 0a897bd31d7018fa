//! Subcommands of the `sluice` binary.

pub mod client;
pub mod closed;
pub mod image;
pub mod invocations;
pub mod load;
pub mod load_pipeline;
pub mod logs;
pub mod manage;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod router;
pub mod sim;
pub mod sim_cluster;
pub mod sim_pipeline;
pub mod view;
pub mod worker;
