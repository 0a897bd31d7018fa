//! In-place hand-off on a host: segments are files on a tmpfs shared by co-located stage processes,
//! mapped with `mmap`, so a consumer reads the producer's bytes where they lie (no socket copy).
//!
//! This module owns segment I/O ([`open_segment`], [`write_segment`], [`create_segment`]: what both
//! the worker and Rust stages use) and the worker-side [`ShmArena`]: one co-location group's directory
//! (`<root>/<worker pid>-<group>`), unique segment names, reference counts that recycle a segment's
//! file once its last consumer is done (a bounded pool of warm files that later outputs overwrite),
//! purging the segments of items that died in flight, and sweeping the directories that crashed
//! workers left behind; and [`MappingCache`], the mappings a stage keeps from one hand-off to the
//! next. It does not own the frame format ([`crate::frame`]).

mod arena;
mod cache;
mod pool;
mod segment;
mod sweep;

#[cfg(test)]
mod tests;

pub use arena::{ShmArena, ShmUsage, DEFAULT_ROOT};
pub use cache::MappingCache;
pub use pool::PoolLimits;
pub use segment::{create_segment, open_segment, write_segment, Segment, SegmentMut};
pub use sweep::sweep;

use crate::name::NameError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// A failure of a shared-memory operation.
#[derive(Debug, Error)]
pub enum ShmError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{name:?} is not a plain file name: {source}")]
    BadName { name: String, source: NameError },
    #[error("segment {0:?} was not allocated by this arena (or is already gone)")]
    Unknown(String),
    #[error("segment {0:?} was recycled and its producer has not written it since")]
    NotWritten(String),
    #[error("segment {0:?} has no consumers to release (it was never retained)")]
    NotRetained(String),
    #[error("segment {name:?} holds {actual} bytes where {expected} were expected")]
    LengthMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("segment {name:?}: {len} bytes do not fit this machine's address space")]
    TooLarge { name: String, len: u64 },
}

impl ShmError {
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ShmError {
        let path = path.into();
        move |source| ShmError::Io { op, path, source }
    }
}
