//! The free pool of an arena: files of released segments kept for reuse, most recently released
//! handed out first, least recently released deleted beyond the bounds.

use std::collections::VecDeque;

/// Bounds of an arena's pool of released segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most bytes the pooled files may hold together; a larger file is deleted at release.
    pub max_bytes: u64,
    /// Most files the pool keeps.
    pub max_segments: usize,
}

impl PoolLimits {
    /// No pool: every released segment is deleted (the cold path, for comparison).
    pub const NONE: PoolLimits = PoolLimits {
        max_bytes: 0,
        max_segments: 0,
    };
}

impl Default for PoolLimits {
    /// 256 MiB in at most 64 files.
    fn default() -> Self {
        PoolLimits {
            max_bytes: 256 << 20,
            max_segments: 64,
        }
    }
}

/// A pooled file: its name in the arena directory and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pooled {
    pub name: String,
    pub bytes: u64,
}

/// Pooled files in release order (oldest first) and their total size.
#[derive(Debug)]
pub(super) struct Pool {
    limits: PoolLimits,
    files: VecDeque<Pooled>,
    bytes: u64,
}

impl Pool {
    pub fn new(limits: PoolLimits) -> Self {
        Pool {
            limits,
            files: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Whether a released file of `bytes` may be pooled at all (empty files are not worth it).
    pub fn admits(&self, bytes: u64) -> bool {
        bytes > 0 && bytes <= self.limits.max_bytes && self.limits.max_segments > 0
    }

    /// Pools a file (one [`admits`](Self::admits)) and returns those evicted to stay within bounds,
    /// least recently released first.
    pub fn put(&mut self, name: String, bytes: u64) -> Vec<Pooled> {
        self.files.push_back(Pooled { name, bytes });
        self.bytes += bytes;
        let mut evicted = Vec::new();
        while self.bytes > self.limits.max_bytes || self.files.len() > self.limits.max_segments {
            let Some(oldest) = self.files.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes;
            evicted.push(oldest);
        }
        evicted
    }

    /// The most recently released file (its pages the likeliest to be warm), out of the pool.
    pub fn take(&mut self) -> Option<Pooled> {
        let file = self.files.pop_back()?;
        self.bytes -= file.bytes;
        Some(file)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
