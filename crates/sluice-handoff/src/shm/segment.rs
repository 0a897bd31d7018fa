//! Reading and writing one segment: a file in a shared-memory directory, mapped with `mmap`.

use super::ShmError;
use crate::name::check_file_name;
use memmap2::{Mmap, MmapMut};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

/// A segment mapped read-only: its bytes, in place.
#[derive(Debug)]
pub struct Segment {
    map: Mmap,
}

impl Deref for Segment {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// A segment mapped for writing, sized at creation; [`SegmentMut::finish`] flushes it.
#[derive(Debug)]
pub struct SegmentMut {
    map: MmapMut,
    path: PathBuf,
}

impl Deref for SegmentMut {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for SegmentMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

impl SegmentMut {
    /// Flushes the mapping and unmaps it; the bytes are then visible to every reader of the file.
    pub fn finish(self) -> Result<(), ShmError> {
        self.map.flush().map_err(ShmError::io("flush", &self.path))
    }
}

fn segment_path(dir: &Path, name: &str) -> Result<PathBuf, ShmError> {
    check_file_name(name).map_err(|source| ShmError::BadName {
        name: name.to_owned(),
        source,
    })?;
    Ok(dir.join(name))
}

/// Maps the segment `dir/name` read-only (the whole file).
///
/// The protocol makes a segment immutable once its producer has answered, which is what makes the
/// shared mapping sound to read as a slice.
pub fn open_segment(dir: &Path, name: &str) -> Result<Segment, ShmError> {
    let path = segment_path(dir, name)?;
    let file = File::open(&path).map_err(ShmError::io("open", &path))?;
    // SAFETY: segments are written once by their producer before being handed over and never
    // modified afterwards (the worker deletes, never rewrites, them), so the mapping is not mutated
    // while this `Segment` lives.
    let map = unsafe { Mmap::map(&file) }.map_err(ShmError::io("mmap", &path))?;
    Ok(Segment { map })
}

/// Creates (or truncates) the segment `dir/name` with `len` bytes and maps it for writing.
pub fn create_segment(dir: &Path, name: &str, len: u64) -> Result<SegmentMut, ShmError> {
    let path = segment_path(dir, name)?;
    if usize::try_from(len).is_err() {
        return Err(ShmError::TooLarge {
            name: name.to_owned(),
            len,
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(ShmError::io("create", &path))?;
    file.set_len(len).map_err(ShmError::io("size", &path))?;
    // SAFETY: the file was just created (or truncated) by this producer, which is its only writer
    // until it hands the segment over.
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(ShmError::io("mmap", &path))?;
    Ok(SegmentMut { map, path })
}

/// Writes `bytes` as the segment `dir/name`: create (or truncate), size, write, close.
///
/// A `write` fills fresh tmpfs pages without the page faults a new writable mapping takes one page at
/// a time (half the cost for a 64 MiB segment on 4 KiB pages; see `docs/handoff.md`). Producers that
/// compute their output in place use [`create_segment`] instead.
pub fn write_segment(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ShmError> {
    let path = segment_path(dir, name)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(ShmError::io("create", &path))?;
    file.set_len(bytes.len() as u64)
        .map_err(ShmError::io("size", &path))?;
    file.write_all(bytes).map_err(ShmError::io("write", &path))
}
