//! [`ShmArena`]: the worker-side owner of one co-location group's shared-memory directory, and the
//! pool of released segments it recycles.

use super::pool::{Pool, PoolLimits};
use super::{open_segment, write_segment, Segment, ShmError};
use crate::name::check_file_name;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// Where arenas live unless configured otherwise (a tmpfs on Linux).
pub const DEFAULT_ROOT: &str = "/dev/shm/sluice";

/// Arena directories owned by live arenas of this process: a second arena for the same group is an
/// error, while a directory of our pid that no live arena owns is a leftover of an earlier process
/// that had the same pid (a restarted container's pid 1) and is replaced.
static LIVE_DIRS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// What an arena holds right now (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmUsage {
    /// Segments allocated and not yet released (retained or still awaiting their producer).
    pub segments: usize,
    /// Segments handed over to consumers.
    pub retained: usize,
    /// Bytes of the retained segments.
    pub bytes: u64,
    /// Released segments kept for reuse (files no item refers to).
    pub pooled: usize,
    /// Bytes of the pooled segments.
    pub pooled_bytes: u64,
}

#[derive(Debug)]
enum State {
    /// Named for a producer that has not handed it over yet.
    Allocated,
    /// Handed over; recycled when `consumers` reaches zero.
    Retained { consumers: u32, bytes: u64 },
}

#[derive(Debug)]
struct Entry {
    owner: String,
    /// Pool class: which producer the file is for (see [`ShmArena::allocate_for`]).
    class: String,
    state: State,
}

#[derive(Debug)]
struct Inner {
    next: u64,
    segments: HashMap<String, Entry>,
    pool: Pool,
}

/// One co-location group's directory `<root>/<worker pid>-<group>` and the segments in it.
///
/// Life of a segment: [`allocate`](Self::allocate) names it for a producer (tagged with an owner,
/// e.g. the invocation it belongs to); the producer writes it; [`retain`](Self::retain) hands it to
/// its consumers; each consumer's [`release`](Self::release) drops one reference and the last one
/// recycles the file. [`discard`](Self::discard) deletes a segment whose producer failed and
/// [`purge`](Self::purge) every segment of an owner that died in flight. Dropping the arena removes
/// the whole directory; [`sweep`](super::sweep) removes those of workers that crashed.
///
/// Recycling: a released segment's file is not deleted but moved to a pool directory beside the
/// group's, bounded by [`PoolLimits`] (the least recently released files beyond it are deleted).
/// `allocate` moves the most recently pooled file back under the fresh name it hands out, so the producer overwrites pages that
/// exist (and are mapped warm) instead of making the kernel allocate and zero new ones: names stay
/// unique — a late `release` of an old name is an error, never a decrement of a new item's count —
/// and a file is only handed out again once no item refers to it. A pooled file's modification time
/// is set to the epoch; every write and `ftruncate` stamps it anew, so [`retain`](Self::retain)
/// refuses a recycled segment its producer never wrote instead of handing over an earlier item's
/// bytes.
#[derive(Debug)]
pub struct ShmArena {
    dir: PathBuf,
    /// `<root>/<worker pid>.pool/<group>`: where pooled files wait, out of the stages' sight (a
    /// stale name in the group's directory finds nothing) but on the same tmpfs (so moving a file
    /// in and out is a rename).
    pool_dir: PathBuf,
    inner: Mutex<Inner>,
}

impl ShmArena {
    /// Creates the group's directory under `root` (created too when missing), recycling released
    /// segments within [`PoolLimits::default`].
    pub fn create(root: &Path, group: &str) -> Result<Self, ShmError> {
        Self::with_pool(root, group, PoolLimits::default())
    }

    /// [`create`](Self::create) with other pool bounds ([`PoolLimits::NONE`]: delete at release).
    pub fn with_pool(root: &Path, group: &str, limits: PoolLimits) -> Result<Self, ShmError> {
        check_file_name(group).map_err(|source| ShmError::BadName {
            name: group.to_owned(),
            source,
        })?;
        fs::create_dir_all(root).map_err(ShmError::io("create", root))?;
        let dir = root.join(format!("{}-{group}", std::process::id()));
        let pool_dir = pool_root(root, std::process::id()).join(group);
        let mut live = lock(&LIVE_DIRS);
        let live = live.get_or_insert_with(HashSet::new);
        if live.contains(&dir) {
            return Err(ShmError::Io {
                op: "create",
                path: dir,
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "this process already has an arena for this group",
                ),
            });
        }
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_dir_all(&dir).map_err(ShmError::io("remove leftover", &dir))?;
                fs::create_dir(&dir).map_err(ShmError::io("create", &dir))?;
            }
            other => other.map_err(ShmError::io("create", &dir))?,
        }
        match fs::remove_dir_all(&pool_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(ShmError::io("remove leftover", &pool_dir)(e))
            }
            _ => fs::create_dir_all(&pool_dir).map_err(ShmError::io("create", &pool_dir))?,
        }
        live.insert(dir.clone());
        Ok(ShmArena {
            dir,
            pool_dir,
            inner: Mutex::new(Inner {
                next: 0,
                segments: HashMap::new(),
                pool: Pool::new(limits),
            }),
        })
    }

    /// The directory to pass to the group's stages as `SLUICE_SHM_DIR`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh segment name (unique in this arena) for a producer's output, tagged with `owner`.
    ///
    /// When the pool holds a released file it is renamed to this name: the producer then finds a
    /// file there and overwrites it (write, then truncate to the output's length).
    pub fn allocate(&self, owner: &str) -> String {
        self.allocate_for(owner, "")
    }

    /// [`allocate`](Self::allocate) for a producer of pool class `class` (e.g. its stage): it
    /// gets back a file that class released before when there is one, so its size likely fits.
    pub fn allocate_for(&self, owner: &str, class: &str) -> String {
        let mut inner = lock(&self.inner);
        let name = format!("seg-{}", inner.next);
        inner.next += 1;
        if let Some(pooled) = inner.pool.take(class) {
            // Under the lock, so no purge or discard of `name` can run before the file is there. A
            // pooled file that cannot be renamed is dropped: the producer then creates a fresh one.
            let from = self.pool_dir.join(&pooled.name);
            if fs::rename(&from, self.dir.join(&name)).is_err() {
                let _ = fs::remove_file(&from);
            }
        }
        inner.segments.insert(
            name.clone(),
            Entry {
                owner: owner.to_owned(),
                class: class.to_owned(),
                state: State::Allocated,
            },
        );
        name
    }

    /// Maps segment `name` of this directory read-only. Drop the mapping before the reference it
    /// reads under is released: a recycled file is overwritten by a later item.
    pub fn open(&self, name: &str) -> Result<Segment, ShmError> {
        open_segment(&self.dir, name)
    }

    /// Writes `bytes` as segment `name` of this directory (e.g. the pipeline input), overwriting a
    /// recycled file.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ShmError> {
        write_segment(&self.dir, name, bytes)
    }

    /// Hands segment `name` over to `consumers` more consumers and returns its size. The producer must
    /// have written it. With no consumer at all it is released at once.
    pub fn retain(&self, name: &str, consumers: u32) -> Result<u64, ShmError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .segments
            .get_mut(name)
            .ok_or_else(|| ShmError::Unknown(name.to_owned()))?;
        let size = match &mut entry.state {
            State::Retained {
                consumers: n,
                bytes,
            } => {
                *n = n.saturating_add(consumers);
                return Ok(*bytes);
            }
            State::Allocated => {
                let path = self.dir.join(name);
                let meta = fs::metadata(&path).map_err(ShmError::io("stat", &path))?;
                if meta.modified().ok() == Some(SystemTime::UNIX_EPOCH) {
                    return Err(ShmError::NotWritten(name.to_owned()));
                }
                meta.len()
            }
        };
        if consumers == 0 {
            let class = inner
                .segments
                .remove(name)
                .map(|e| e.class)
                .unwrap_or_default();
            drop(inner);
            self.recycle(name, size, class);
        } else {
            entry.state = State::Retained {
                consumers,
                bytes: size,
            };
        }
        Ok(size)
    }

    /// One consumer of segment `name` is done; returns whether it was the last one (the segment is
    /// then gone from the arena: its file pooled for reuse, or deleted beyond the pool's bounds).
    pub fn release(&self, name: &str) -> Result<bool, ShmError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .segments
            .get_mut(name)
            .ok_or_else(|| ShmError::Unknown(name.to_owned()))?;
        match &mut entry.state {
            State::Allocated => Err(ShmError::NotRetained(name.to_owned())),
            State::Retained { consumers, .. } if *consumers > 1 => {
                *consumers -= 1;
                Ok(false)
            }
            State::Retained { bytes, .. } => {
                let bytes = *bytes;
                let class = inner
                    .segments
                    .remove(name)
                    .map(|e| e.class)
                    .unwrap_or_default();
                drop(inner);
                self.recycle(name, bytes, class);
                Ok(true)
            }
        }
    }

    /// Deletes segment `name` whatever its references (its producer or the whole request failed).
    pub fn discard(&self, name: &str) -> Result<(), ShmError> {
        if lock(&self.inner).segments.remove(name).is_none() {
            return Err(ShmError::Unknown(name.to_owned()));
        }
        self.delete(name)
    }

    /// Deletes every segment allocated for `owner` (e.g. an invocation that died in flight) and
    /// returns how many were tracked.
    pub fn purge(&self, owner: &str) -> Result<usize, ShmError> {
        let names: Vec<String> = {
            let mut inner = lock(&self.inner);
            let names: Vec<String> = inner
                .segments
                .iter()
                .filter(|(_, entry)| entry.owner == owner)
                .map(|(name, _)| name.clone())
                .collect();
            for name in &names {
                inner.segments.remove(name);
            }
            names
        };
        let mut first_error = None;
        for name in &names {
            if let Err(e) = self.delete(name) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(names.len()), Err)
    }

    /// Segments and bytes held now.
    pub fn usage(&self) -> ShmUsage {
        let inner = lock(&self.inner);
        let mut usage = ShmUsage {
            segments: inner.segments.len(),
            pooled: inner.pool.len(),
            pooled_bytes: inner.pool.bytes(),
            ..ShmUsage::default()
        };
        for entry in inner.segments.values() {
            if let State::Retained { bytes, .. } = entry.state {
                usage.retained += 1;
                usage.bytes += bytes;
            }
        }
        usage
    }

    /// Puts the file of a segment that no item refers to any more into the pool, and deletes what
    /// the pool's bounds leave out. Never fails: a file that cannot be pooled is deleted, and one
    /// that cannot be deleted goes with the directory.
    fn recycle(&self, name: &str, bytes: u64, class: String) {
        let pooled = self.pool_dir.join(name);
        if !lock(&self.inner).pool.admits(bytes)
            || fs::rename(self.dir.join(name), &pooled).is_err()
            || mark_unwritten(&pooled).is_err()
        {
            let _ = remove(&self.dir.join(name));
            let _ = remove(&pooled);
            return;
        }
        // Moved and marked before it is pooled: once in the pool, `allocate` may hand it out.
        let evicted = lock(&self.inner).pool.put(name.to_owned(), bytes, class);
        for file in evicted {
            let _ = remove(&self.pool_dir.join(&file.name));
        }
    }

    fn delete(&self, name: &str) -> Result<(), ShmError> {
        remove(&self.dir.join(name))
    }
}

/// Where the pools of the arenas of process `pid` live under `root`: `<root>/<pid>.pool`.
fn pool_root(root: &Path, pid: u32) -> PathBuf {
    root.join(format!("{pid}.pool"))
}

/// Deletes a file; one already gone is fine.
fn remove(path: &Path) -> Result<(), ShmError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ShmError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

impl Drop for ShmArena {
    fn drop(&mut self) {
        // Best effort: a directory that cannot be removed now is swept at the next start.
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.pool_dir);
        if let Some(pools) = self.pool_dir.parent() {
            // Fails while another arena of this process has its pool there.
            let _ = fs::remove_dir(pools);
        }
        if let Some(live) = lock(&LIVE_DIRS).as_mut() {
            live.remove(&self.dir);
        }
    }
}

/// Sets the modification time of `path` to the epoch (the access time is left alone): the mark of
/// a pooled file that no producer has written since.
fn mark_unwritten(path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    ];
    // SAFETY: `path` is a NUL-terminated string and `times` two valid timespecs, both alive for
    // the call; utimensat only reads them.
    if unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
