//! Subcommands of the `sluice` binary.

pub mod client;
pub mod closed;
pub mod load;
pub mod manage;
pub mod sim;
pub mod worker;
