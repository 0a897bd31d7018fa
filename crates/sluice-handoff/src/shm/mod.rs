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
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: `open`, `mmap`, `size`, `create`, `remove`, ...
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A segment or group name breaks the plain-file-name rule ([`crate::name`]).
    #[error("{name:?} is not a plain file name: {source}")]
    BadName {
        /// The offending name.
        name: String,
        /// Which part of the rule it breaks.
        source: NameError,
    },
    /// The arena does not track a segment of this name.
    #[error("segment {0:?} was not allocated by this arena (or is already gone)")]
    Unknown(String),
    /// The segment was handed over while its recycled file still carries the arena's "not
    /// written" mark (modification time at the epoch).
    #[error("segment {0:?} was recycled and its producer has not written it since")]
    NotWritten(String),
    /// A consumer released a segment that was never handed over to any.
    #[error("segment {0:?} has no consumers to release (it was never retained)")]
    NotRetained(String),
    /// A segment's size differs from the length its reference gives.
    #[error("segment {name:?} holds {actual} bytes where {expected} were expected")]
    LengthMismatch {
        /// The segment's file name.
        name: String,
        /// The length the reference gives, bytes.
        expected: u64,
        /// The file's size, bytes.
        actual: u64,
    },
    /// A segment is larger than `usize` can address, so it cannot be mapped.
    #[error("segment {name:?}: {len} bytes do not fit this machine's address space")]
    TooLarge {
        /// The segment's file name.
        name: String,
        /// Its size, bytes.
        len: u64,
    },
}

impl ShmError {
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ShmError {
        let path = path.into();
        move |source| ShmError::Io { op, path, source }
    }
}
