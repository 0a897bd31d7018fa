//! The image store: a directory the caller owns (the worker passes `<data_dir>/images`):
//!
//! ```text
//! blobs/sha256/<hex>   verified blobs (manifests, configs, layers)
//! roots/<chain hex>/   one read-only root file system per chain id
//! locks/<chain hex>.lock   flock: one unpacker per chain id
//! images.json          the image records (atomic replace under images.lock)
//! gc.lock              shared by imports and unpacks, exclusive for garbage collection
//! tmp/<instance>/      this store instance's temporary files, guarded by tmp/<instance>.lock
//! ```
//!
//! Each [`ImageStore`] holds an exclusive flock on its own `tmp/<instance>.lock` for its lifetime;
//! [`ImageStore::open`] sweeps every other instance directory whose lock nobody holds (its process
//! died), which removes half-copied blobs, staged archives and half-unpacked roots.

pub(crate) mod blobs;
mod fsutil;
mod gc;
mod lock;
mod records;
mod roots;

pub use gc::GcReport;
pub use records::{ImageRecord, LayerRecord};
pub use roots::RootInfo;

use crate::error::{IoContext, Result};
pub(crate) use fsutil::remove_all;
use lock::FileLock;
pub(crate) use lock::LockKind;
use records::RecordFile;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A content store with its root-file-system cache. `Sync`: share it (in an `Arc`) and call the
/// blocking methods from worker threads.
pub struct ImageStore {
    dir: PathBuf,
    pub(crate) records: RecordFile,
    tmp: PathBuf,
    _instance: FileLock,
    seq: AtomicU64,
}

impl ImageStore {
    /// Opens (creating) the store at `dir` and sweeps the temporaries of dead store instances.
    pub fn open(dir: impl AsRef<Path>) -> Result<ImageStore> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["blobs/sha256", "roots", "locks", "tmp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
        }
        let swept = sweep(&dir.join("tmp"))?;
        if swept > 0 {
            tracing::info!(swept, store = %dir.display(), "removed temporaries of dead image store instances");
        }
        let (tmp, instance) = new_instance(&dir.join("tmp"))?;
        Ok(ImageStore {
            records: RecordFile::new(&dir),
            dir,
            tmp,
            _instance: instance,
            seq: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh path in this instance's temporary directory.
    pub(crate) fn temp_path(&self, kind: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{kind}-{n}"))
    }

    /// Holds off garbage collection while imports and unpacks run.
    pub(crate) fn gc_guard(&self, kind: LockKind) -> Result<FileLock> {
        FileLock::acquire(&self.dir.join("gc.lock"), kind)
    }
}

/// Creates this instance's temporary directory under a lock it keeps.
fn new_instance(tmp: &Path) -> Result<(PathBuf, FileLock)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for attempt in 0u32..1000 {
        let name = format!("{}-{nanos}-{attempt}", std::process::id());
        let lock_path = tmp.join(format!("{name}.lock"));
        let Some(lock) = FileLock::try_exclusive(&lock_path)? else {
            continue;
        };
        // A sweeper may have removed the lock file between its creation and our lock.
        let held = lock
            .file()
            .metadata()
            .ctx(|| format!("stat {}", lock_path.display()))?;
        match std::fs::metadata(&lock_path) {
            Ok(on_disk) if on_disk.ino() == held.ino() && on_disk.dev() == held.dev() => {}
            _ => continue,
        }
        let dir = tmp.join(&name);
        remove_all(&dir)?;
        std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        return Ok((dir, lock));
    }
    Err(std::io::Error::other("no free instance name"))
        .ctx(|| format!("create an instance in {}", tmp.display()))
}

/// Removes the instance directories (and lock files) of store instances that are gone.
fn sweep(tmp: &Path) -> Result<usize> {
    let mut swept = 0;
    let entries = std::fs::read_dir(tmp).ctx(|| format!("list {}", tmp.display()))?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    for name in &names {
        if let Some(instance) = name.strip_suffix(".lock") {
            let lock_path = tmp.join(name);
            if let Some(_lock) = FileLock::try_exclusive(&lock_path)? {
                remove_all(&tmp.join(instance))?;
                remove_all(&lock_path)?;
                swept += 1;
            }
        } else if !tmp.join(format!("{name}.lock")).exists() {
            // An instance directory without its lock file belongs to no live instance (a live
            // one creates its lock file first).
            remove_all(&tmp.join(name))?;
            swept += 1;
        }
    }
    Ok(swept)
}
