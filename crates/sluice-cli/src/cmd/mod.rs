//! Subcommands of the `sluice` binary.

pub mod client;
pub mod manage;
pub mod sim;
pub mod worker;
