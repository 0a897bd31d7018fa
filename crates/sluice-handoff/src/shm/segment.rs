//! Reading and writing one segment: a file in a shared-memory directory, mapped with `mmap`.

use super::ShmError;
use crate::name::check_file_name;
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
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

pub(super) fn segment_path(dir: &Path, name: &str) -> Result<PathBuf, ShmError> {
    check_file_name(name).map_err(|source| ShmError::BadName {
        name: name.to_owned(),
        source,
    })?;
    Ok(dir.join(name))
}

/// Maps the segment `dir/name` read-only (the whole file).
///
/// The protocol makes a segment immutable from its producer's answer until its last consumer
/// releases it, which is what makes the shared mapping sound to read as a slice: drop the
/// [`Segment`] before releasing the reference it was read under, since the worker recycles the file
/// for a later output. (Mapping with `MAP_POPULATE` was measured and not kept: the kernel already
/// maps a read fault's neighbouring pages, and populating cost as much as it saved; see
/// `docs/handoff.md`.)
pub fn open_segment(dir: &Path, name: &str) -> Result<Segment, ShmError> {
    let path = segment_path(dir, name)?;
    let file = File::open(&path).map_err(ShmError::io("open", &path))?;
    // SAFETY: a segment is written by its producer before being handed over and not modified again
    // until every consumer has released it (only then is the file recycled), and consumers drop
    // their mapping before releasing, so the mapping is not mutated while this `Segment` lives.
    let map = unsafe { Mmap::map(&file) }.map_err(ShmError::io("mmap", &path))?;
    Ok(Segment { map })
}

/// Opens the segment `dir/name` for writing, creating it when missing and keeping the pages of a
/// recycled file (no `O_TRUNC`: truncating frees them and the kernel would zero fresh ones).
pub(super) fn open_for_overwrite(path: &Path, read: bool) -> Result<File, ShmError> {
    OpenOptions::new()
        .read(read)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(ShmError::io("open", path))
}

/// Sizes the segment `dir/name` to `len` bytes — created when missing, otherwise overwritten in
/// place (a recycled file keeps the pages it still needs) — and maps it for writing, populated.
///
/// The mapping's contents are unspecified (a recycled segment holds an earlier output's bytes):
/// the producer must write all `len` bytes.
pub fn create_segment(dir: &Path, name: &str, len: u64) -> Result<SegmentMut, ShmError> {
    let path = segment_path(dir, name)?;
    if usize::try_from(len).is_err() {
        return Err(ShmError::TooLarge {
            name: name.to_owned(),
            len,
        });
    }
    let file = open_for_overwrite(&path, true)?;
    file.set_len(len).map_err(ShmError::io("size", &path))?;
    // SAFETY: the producer is the segment's only user until it hands the segment over: the worker
    // named it for this output and no consumer maps it before the producer's answer.
    let map = unsafe { MmapOptions::new().populate().map_mut(&file) }
        .map_err(ShmError::io("mmap", &path))?;
    Ok(SegmentMut { map, path })
}

/// Writes `bytes` as the segment `dir/name`: open (creating it when missing), write from offset 0,
/// truncate to `bytes.len()`, close.
///
/// Overwriting a recycled file copies into pages that already exist; truncating afterwards frees
/// only the tail an earlier, longer output left (so no stale byte stays readable), and a same-size
/// overwrite allocates nothing. `write` also beat copying into a writable mapping on 4 KiB pages
/// (see `docs/handoff.md`); producers that compute their output in place use [`create_segment`].
pub fn write_segment(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ShmError> {
    let path = segment_path(dir, name)?;
    let file = open_for_overwrite(&path, false)?;
    file.write_all_at(bytes, 0)
        .map_err(ShmError::io("write", &path))?;
    file.set_len(bytes.len() as u64)
        .map_err(ShmError::io("size", &path))
}
