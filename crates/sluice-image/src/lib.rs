//! Container images without a daemon.
//!
//! (Interface documentation is written with the store.)

pub mod digest;
pub mod error;
pub mod source;
pub mod spec;
pub mod unpack;

pub use error::{ImageError, Result};
