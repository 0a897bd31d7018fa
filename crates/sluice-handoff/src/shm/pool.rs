//! The free pool of an arena: files of released segments kept for reuse, least recently released
//! deleted beyond the bounds. Each file remembers the class it was allocated for (the producing
//! stage): a new segment of a class gets that class's most recently released file, whose size is
//! likeliest to match, so a big producer and a small one sharing a group do not trade files (and
//! fault in fresh pages) at every hand-off. Only a class with nothing pooled takes another's file.

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

/// A pooled file: its name in the arena directory, its size and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pooled {
    pub name: String,
    pub bytes: u64,
    pub class: String,
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
    pub fn put(&mut self, name: String, bytes: u64, class: String) -> Vec<Pooled> {
        self.files.push_back(Pooled { name, bytes, class });
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

    /// The most recently released file of `class` (its pages the likeliest to be warm and of the
    /// right size), else the most recently released of any class, out of the pool.
    pub fn take(&mut self, class: &str) -> Option<Pooled> {
        let at = self
            .files
            .iter()
            .rposition(|f| f.class == class)
            .or_else(|| self.files.len().checked_sub(1))?;
        let file = self.files.remove(at)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_gets_its_own_file_back_before_another_class_s() {
        let mut p = Pool::new(PoolLimits::default());
        assert!(p.put("big".into(), 16 << 20, "gen".into()).is_empty());
        assert!(p.put("small".into(), 18, "sum".into()).is_empty());
        assert_eq!(p.take("gen").map(|f| f.name), Some("big".into()));
        assert!(p.put("big".into(), 16 << 20, "gen".into()).is_empty());
        assert_eq!(p.take("sum").map(|f| f.name), Some("small".into()));
        assert_eq!(
            p.take("other").map(|f| f.name),
            Some("big".into()),
            "any class as a fallback"
        );
        assert_eq!(p.take("gen"), None);
        assert_eq!((p.len(), p.bytes()), (0, 0));
    }
}
