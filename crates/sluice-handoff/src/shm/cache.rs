//! [`MappingCache`]: one process's mappings of segment files, kept from one hand-off to the next.
//!
//! The worker recycles a released segment's file (same inode, new name), so a stage that reads or
//! writes segments in a loop meets the same few files again and again. Mapping a file and unmapping
//! it costs the kernel work per 4 KiB page (page-table entries, faults, TLB shootdowns), and a
//! `write` into tmpfs locks and copies page by page; with a mapping kept per inode, a steady-state
//! hand-off is one `memcpy` for the producer and plain loads for the consumer. Mappings are keyed by
//! (device, inode), so a name that now denotes another file never reaches an old mapping.

use super::segment::{open_for_overwrite, segment_path};
use super::ShmError;
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

type Key = (u64, u64);

#[derive(Debug)]
struct Cached<M> {
    /// Kept open to tell when the file has been deleted (its pages stay alive while mapped).
    file: File,
    map: M,
    len: u64,
    last_used: u64,
}

/// A process's read and write mappings of segment files, least recently used dropped beyond a bound.
///
/// [`read`](Self::read) and [`write`](Self::write) take the place of [`open_segment`](super::open_segment)
/// and [`write_segment`](super::write_segment) for a stage that hands off many payloads. The bound
/// is on mapped bytes; a single segment larger than it is still mapped (alone). A mapping of a file
/// that was deleted meanwhile (evicted from the worker's pool, or its arena dropped) keeps the
/// file's pages alive until it is dropped: such mappings go first whenever a new one is made, and
/// dropping the cache releases everything.
#[derive(Debug)]
pub struct MappingCache {
    max_bytes: u64,
    bytes: u64,
    clock: u64,
    reads: HashMap<Key, Cached<Mmap>>,
    writes: HashMap<Key, Cached<MmapMut>>,
}

impl MappingCache {
    /// The bound used by stages unless configured otherwise: 256 MiB of mappings.
    pub const DEFAULT_BYTES: u64 = 256 << 20;

    /// An empty cache holding at most `max_bytes` of mappings (besides one larger segment).
    pub fn new(max_bytes: u64) -> Self {
        MappingCache {
            max_bytes,
            bytes: 0,
            clock: 0,
            reads: HashMap::new(),
            writes: HashMap::new(),
        }
    }

    /// Bytes mapped now.
    pub fn mapped_bytes(&self) -> u64 {
        self.bytes
    }

    /// The bytes of segment `dir/name`, read in place (the whole file). The same contract as
    /// [`open_segment`](super::open_segment): the segment must not change while the slice lives,
    /// which the protocol guarantees between its producer's answer and its consumer's release.
    pub fn read(&mut self, dir: &Path, name: &str) -> Result<&[u8], ShmError> {
        let path = segment_path(dir, name)?;
        let file = File::open(&path).map_err(ShmError::io("open", &path))?;
        let meta = file.metadata().map_err(ShmError::io("stat", &path))?;
        let len = checked_len(name, meta.len())?;
        if len == 0 {
            return Ok(&[]);
        }
        let key = (meta.dev(), meta.ino());
        if self.reads.get(&key).is_none_or(|c| c.len < meta.len()) {
            forget(&mut self.reads, &mut self.bytes, key);
            self.make_room(meta.len());
        }
        self.clock += 1;
        let entry = cached(
            &mut self.reads,
            &mut self.bytes,
            key,
            self.clock,
            file,
            meta.len(),
            |file| {
                // SAFETY: see `open_segment`: the segment is immutable while it is being read.
                unsafe { Mmap::map(file) }
            },
        )
        .map_err(ShmError::io("mmap", &path))?;
        Ok(&entry.map[..len])
    }

    /// Writes `bytes` as segment `dir/name`, like [`write_segment`](super::write_segment) (created
    /// when missing, otherwise overwritten and truncated to `bytes.len()`), through a mapping kept
    /// for the next output that lands in the same file.
    pub fn write(&mut self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ShmError> {
        let path = segment_path(dir, name)?;
        let file = open_for_overwrite(&path, true)?;
        // Sized first: shrinking frees the stale tail, growing adds the pages the copy fills.
        file.set_len(bytes.len() as u64)
            .map_err(ShmError::io("size", &path))?;
        if bytes.is_empty() {
            return Ok(());
        }
        let meta = file.metadata().map_err(ShmError::io("stat", &path))?;
        let key = (meta.dev(), meta.ino());
        if self.writes.get(&key).is_none_or(|c| c.len < meta.len()) {
            forget(&mut self.writes, &mut self.bytes, key);
            self.make_room(meta.len());
        }
        self.clock += 1;
        let entry = cached(
            &mut self.writes,
            &mut self.bytes,
            key,
            self.clock,
            file,
            meta.len(),
            |file| {
                // SAFETY: the producer is the segment's only user until it hands the segment over.
                unsafe { MmapOptions::new().populate().map_mut(file) }
            },
        )
        .map_err(ShmError::io("mmap", &path))?;
        entry.map[..bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Drops the mappings of deleted files, then the least recently used ones until `len` more
    /// bytes fit (or nothing is left).
    fn make_room(&mut self, len: u64) {
        let dead = |c_file: &File| c_file.metadata().map_or(true, |m| m.nlink() == 0);
        let dead_reads: Vec<Key> = self
            .reads
            .iter()
            .filter(|(_, c)| dead(&c.file))
            .map(|(k, _)| *k)
            .collect();
        let dead_writes: Vec<Key> = self
            .writes
            .iter()
            .filter(|(_, c)| dead(&c.file))
            .map(|(k, _)| *k)
            .collect();
        for key in dead_reads {
            forget(&mut self.reads, &mut self.bytes, key);
        }
        for key in dead_writes {
            forget(&mut self.writes, &mut self.bytes, key);
        }
        while self.bytes + len > self.max_bytes {
            let oldest_read = self.reads.iter().map(|(k, c)| (c.last_used, *k)).min();
            let oldest_write = self.writes.iter().map(|(k, c)| (c.last_used, *k)).min();
            match (oldest_read, oldest_write) {
                (Some(r), Some(w)) if w < r => forget(&mut self.writes, &mut self.bytes, w.1),
                (Some(r), _) => forget(&mut self.reads, &mut self.bytes, r.1),
                (None, Some(w)) => forget(&mut self.writes, &mut self.bytes, w.1),
                (None, None) => break,
            }
        }
    }
}

/// The entry of `key` in `table`, made with `map` (over `file`, `len` bytes) when missing.
fn cached<'a, M>(
    table: &'a mut HashMap<Key, Cached<M>>,
    bytes: &mut u64,
    key: Key,
    clock: u64,
    file: File,
    len: u64,
    map: impl FnOnce(&File) -> io::Result<M>,
) -> io::Result<&'a mut Cached<M>> {
    let entry = match table.entry(key) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            let map = map(&file)?;
            *bytes += len;
            entry.insert(Cached {
                file,
                map,
                len,
                last_used: clock,
            })
        }
    };
    entry.last_used = clock;
    Ok(entry)
}

fn forget<M>(table: &mut HashMap<Key, Cached<M>>, bytes: &mut u64, key: Key) {
    if let Some(old) = table.remove(&key) {
        *bytes -= old.len;
    }
}

fn checked_len(name: &str, len: u64) -> Result<usize, ShmError> {
    usize::try_from(len).map_err(|_| ShmError::TooLarge {
        name: name.to_owned(),
        len,
    })
}
