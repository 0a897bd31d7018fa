//! Advisory file locks (`flock`), held for as long as the [`FileLock`] lives. They exclude other
//! processes and other open descriptions in this process alike, so two stores opened on the same
//! directory (or two workers) coordinate through them.

use crate::error::{IoContext, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A held lock on a file; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

/// Shared (many holders) or exclusive (one holder).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once.
    Shared,
    /// One holder.
    Exclusive,
}

impl FileLock {
    /// Opens (creating) `path` and waits for the lock.
    pub fn acquire(path: &Path, kind: LockKind) -> Result<FileLock> {
        let file = open(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::LockShared,
            LockKind::Exclusive => FlockOperation::LockExclusive,
        };
        flock(&file, op).ctx(|| format!("lock {}", path.display()))?;
        Ok(FileLock { file })
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `None` when somebody does.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("lock {}", path.display())),
        }
    }

    /// The locked file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx(|| format!("open lock file {}", path.display()))
}
