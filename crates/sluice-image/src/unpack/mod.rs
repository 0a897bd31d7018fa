//! The safe layer unpacker: applies layer tars, bottom first, onto one directory that becomes a
//! read-only root file system.
//!
//! Rules (the bug classes behind CVE-2018-15664, CVE-2019-14271 and umoci's CVE-2021-29136 are what
//! they guard against):
//! - every entry is reached through `resolve`: one component at a time with `O_NOFOLLOW`,
//!   symlinks followed only *inside* the root, and the final name is acted on with `*at` calls
//!   relative to its open parent, so nothing is ever written through a symlink or outside the root;
//! - tar paths lose a leading `/`; NUL bytes, `..` components and over-long names are refused
//!   (`path`); hard links must name an existing non-directory inside the root;
//! - whiteouts follow the OCI rules (`whiteout`); an entry replaces whatever lower entry of
//!   another type stood at its path (file ↔ directory ↔ symlink);
//! - device nodes and FIFOs are skipped and counted; ownership and xattrs are not applied;
//!   setuid/setgid bits are dropped; directories get at least `0555` (their modes and mtimes are
//!   applied at the end, so a read-only directory never blocks a later layer);
//! - each layer's uncompressed stream is hashed while it is applied and checked against its diff id
//!   (decompression and hashing run on a second thread, `stream`).
//!
//! The unpacker works in a directory nobody else writes to (the store's temporary root); it owns
//! nothing of the store, the locks or the final rename.

mod entry;
mod fsops;
mod mounts;
pub(crate) mod path;
pub(crate) mod resolve;
pub(crate) mod stream;
mod whiteout;

use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::spec::Compression;
use resolve::open_physical_dir;
use rustix::fs::{fchmod, futimens, Mode, Timestamps};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use stream::PadAtEnd;
use whiteout::{LayerState, PhysPath};

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnpackStats {
    /// Layers applied.
    pub layers: u64,
    /// Tar entries read.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Whiteout markers applied.
    pub whiteouts: u64,
    /// Character and block devices and FIFOs skipped.
    pub skipped_devices: u64,
    /// Other entry types skipped (sockets, vendor types).
    pub skipped_other: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// A resolved parent directory, by the components the tar gave for it.
struct CachedParent {
    key: Vec<Vec<u8>>,
    dir: Arc<OwnedFd>,
    phys: PhysPath,
}

/// Mode and modification time of a directory, applied when unpacking ends.
pub(crate) struct DirMeta {
    mode: u32,
    mtime: u64,
}

/// Applies layers onto a root directory. Create it, [`apply_layer`](Unpacker::apply_layer) each
/// layer bottom first, then [`finish`](Unpacker::finish).
pub struct Unpacker {
    root: OwnedFd,
    /// The parent directory of the last entry: consecutive entries of one directory skip the walk.
    /// Dropped whenever anything is removed (the only way a resolved path can change).
    parent: Option<CachedParent>,
    dir_meta: BTreeMap<PhysPath, DirMeta>,
    layer: LayerState,
    stats: UnpackStats,
    buf: Vec<u8>,
}

impl Unpacker {
    /// An unpacker writing into the existing directory `root` (normally empty).
    pub fn new(root: &Path) -> Result<Unpacker> {
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::CLOEXEC;
        let root_fd = rustix::fs::open(root, flags, Mode::empty())
            .ctx(|| format!("open root {}", root.display()))?;
        Ok(Unpacker {
            root: root_fd,
            parent: None,
            dir_meta: BTreeMap::new(),
            layer: LayerState::default(),
            stats: UnpackStats::default(),
            buf: vec![0; 256 * 1024],
        })
    }

    /// Applies one layer blob. `diff_id`, when given, must be the sha256 of the uncompressed tar;
    /// `label` names the layer in errors. On error the root is left half-written: discard it.
    pub fn apply_layer<R: Read + Send>(
        &mut self,
        blob: R,
        compression: Compression,
        diff_id: Option<&Digest>,
        label: &str,
    ) -> Result<()> {
        let corrupt = |e: std::io::Error| ImageError::CorruptLayer {
            layer: label.to_string(),
            message: e.to_string(),
        };
        self.layer = LayerState::default();
        self.parent = None;
        let ((), digest) = stream::decode_in_background(blob, compression, |decoded| {
            let mut archive = tar::Archive::new(PadAtEnd::new(decoded));
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                self.apply_entry(&mut entry, label)?;
            }
            Ok::<(), ImageError>(())
        })?;
        let actual = digest.map_err(corrupt)?;
        if let Some(expected) = diff_id {
            if *expected != actual {
                return Err(ImageError::DiffIdMismatch {
                    index: usize::try_from(self.stats.layers).unwrap_or(usize::MAX),
                    layer: label.to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        self.stats.layers += 1;
        Ok(())
    }

    /// Creates the sandbox's mount points, applies the directories' modes and mtimes, and returns
    /// what was done.
    pub fn finish(mut self) -> Result<UnpackStats> {
        mounts::create(self.root.as_fd(), &mut self.dir_meta)?;
        // Deepest first, so a parent's mtime is set after its children changed it.
        for (phys, meta) in self.dir_meta.iter().rev() {
            let shown = || display(phys);
            let Some(dir) = open_physical_dir(self.root.as_fd(), phys).ctx(shown)? else {
                continue;
            };
            fchmod(&dir, Mode::from_raw_mode(dir_mode(meta.mode))).ctx(shown)?;
            futimens(&dir, &timestamps(meta.mtime)).ctx(shown)?;
        }
        fchmod(&self.root, Mode::from_raw_mode(0o755)).ctx(|| "chmod root".to_string())?;
        Ok(self.stats)
    }
}

/// A file's mode as written: permission bits only (setuid, setgid and sticky dropped).
fn file_mode(mode: u32) -> u32 {
    mode & 0o777
}

/// A directory's mode as written: sticky kept, setuid/setgid dropped, at least `0555`.
fn dir_mode(mode: u32) -> u32 {
    (mode & 0o1777) | 0o555
}

fn timestamps(mtime: u64) -> Timestamps {
    let time = rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// A physical path for messages.
fn display(phys: &[Vec<u8>]) -> String {
    let joined: Vec<String> = phys
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("/{}", joined.join("/"))
}
