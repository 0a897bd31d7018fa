//! The Sluice worker: runs registered black-box functions in sandboxes on real or simulated GPUs,
//! scheduled by the same policy code the simulator drives (`sluice_policy::scheduler`).

pub mod function;
