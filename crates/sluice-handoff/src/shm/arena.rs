//! [`ShmArena`]: the worker-side owner of one co-location group's shared-memory directory.

use super::{open_segment, write_segment, Segment, ShmError};
use crate::name::check_file_name;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where arenas live unless configured otherwise (a tmpfs on Linux).
pub const DEFAULT_ROOT: &str = "/dev/shm/sluice";

/// Arena directories owned by live arenas of this process: a second arena for the same group is an
/// error, while a directory of our pid that no live arena owns is a leftover of an earlier process
/// that had the same pid (a restarted container's pid 1) and is replaced.
static LIVE_DIRS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// What an arena holds right now (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShmUsage {
    /// Segments allocated and not yet deleted (retained or still awaiting their producer).
    pub segments: usize,
    /// Segments handed over to consumers.
    pub retained: usize,
    /// Bytes of the retained segments.
    pub bytes: u64,
}

#[derive(Debug)]
enum State {
    /// Named for a producer that has not handed it over yet.
    Allocated,
    /// Handed over; deleted when `consumers` reaches zero.
    Retained { consumers: u32, bytes: u64 },
}

#[derive(Debug)]
struct Entry {
    owner: String,
    state: State,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    segments: HashMap<String, Entry>,
}

/// One co-location group's directory `<root>/<worker pid>-<group>` and the segments in it.
///
/// Life of a segment: [`allocate`](Self::allocate) names it for a producer (tagged with an owner,
/// e.g. the invocation it belongs to); the producer writes it; [`retain`](Self::retain) hands it to
/// its consumers; each consumer's [`release`](Self::release) drops one reference and the last one
/// deletes the file. [`discard`](Self::discard) deletes a segment whose producer failed and
/// [`purge`](Self::purge) every segment of an owner that died in flight. Dropping the arena removes
/// the whole directory; [`sweep`](super::sweep) removes those of workers that crashed.
#[derive(Debug)]
pub struct ShmArena {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl ShmArena {
    /// Creates the group's directory under `root` (created too when missing).
    pub fn create(root: &Path, group: &str) -> Result<Self, ShmError> {
        check_file_name(group).map_err(|source| ShmError::BadName {
            name: group.to_owned(),
            source,
        })?;
        fs::create_dir_all(root).map_err(ShmError::io("create", root))?;
        let dir = root.join(format!("{}-{group}", std::process::id()));
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
        live.insert(dir.clone());
        Ok(ShmArena {
            dir,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The directory to pass to the group's stages as `SLUICE_SHM_DIR`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh segment name (unique in this arena) for a producer's output, tagged with `owner`.
    pub fn allocate(&self, owner: &str) -> String {
        let mut inner = lock(&self.inner);
        let name = format!("seg-{}", inner.next);
        inner.next += 1;
        inner.segments.insert(
            name.clone(),
            Entry {
                owner: owner.to_owned(),
                state: State::Allocated,
            },
        );
        name
    }

    /// Maps segment `name` of this directory read-only.
    pub fn open(&self, name: &str) -> Result<Segment, ShmError> {
        open_segment(&self.dir, name)
    }

    /// Writes `bytes` as segment `name` of this directory (e.g. the pipeline input).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), ShmError> {
        write_segment(&self.dir, name, bytes)
    }

    /// Hands segment `name` over to `consumers` more consumers and returns its size. The producer must
    /// have written it. With no consumer at all it is deleted at once.
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
                fs::metadata(&path)
                    .map_err(ShmError::io("stat", &path))?
                    .len()
            }
        };
        if consumers == 0 {
            inner.segments.remove(name);
            drop(inner);
            self.delete(name)?;
        } else {
            entry.state = State::Retained {
                consumers,
                bytes: size,
            };
        }
        Ok(size)
    }

    /// One consumer of segment `name` is done; returns whether that deleted it (the last one).
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
            State::Retained { .. } => {
                inner.segments.remove(name);
                drop(inner);
                self.delete(name)?;
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

    fn delete(&self, name: &str) -> Result<(), ShmError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ShmError::Io {
                op: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for ShmArena {
    fn drop(&mut self) {
        // Best effort: a directory that cannot be removed now is swept at the next start.
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(live) = lock(&LIVE_DIRS).as_mut() {
            live.remove(&self.dir);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
