//! One tar entry applied beneath the root: its parent resolved (created if missing), whatever
//! stood at its name replaced by it, its content, mode and mtime written; whiteout markers handed
//! to [`whiteout`](super::whiteout).

use super::fsops::remove_tree;
use super::path::{components, shown};
use super::resolve::{kind_at, resolve_dir, Missing};
use super::whiteout::{forget_beneath, prune, prune_children, PhysPath};
use super::{display, file_mode, timestamps, CachedParent, DirMeta, Unpacker};
use crate::error::{ImageError, IoContext, Result};
use rustix::fs::{
    fchmod, futimens, linkat, mkdirat, openat, symlinkat, unlinkat, utimensat, AtFlags, FileType,
    Mode, OFlags,
};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use tar::EntryType;

impl Unpacker {
    /// Applies one entry of the layer `label`.
    pub(super) fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        label: &str,
    ) -> Result<()> {
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let mut parent_path = components(&raw)?;
        let Some(name) = parent_path.pop() else {
            return Ok(()); // the root itself
        };
        if parent_path.iter().any(|part| part.starts_with(b".wh.")) {
            // Beneath a reserved `.wh.` name: aufs bookkeeping (`.wh..wh.plnk/…`), never content.
            self.stats.skipped_other += 1;
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            return self.whiteout(&raw, &parent_path, hidden);
        }
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.stats.skipped_devices += 1;
                tracing::debug!(layer = label, path = %shown(&raw), "device node or FIFO skipped");
                return Ok(());
            }
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link => {}
            _ => {
                self.stats.skipped_other += 1;
                return Ok(());
            }
        }
        let corrupt = |e: std::io::Error| ImageError::CorruptLayer {
            layer: label.to_string(),
            message: format!("{}: {e}", shown(&raw)),
        };
        let mode = entry.header().mode().map_err(corrupt)?;
        let mtime = entry.header().mtime().map_err(corrupt)?;
        let doing = || format!("unpack {}", shown(&raw));
        let (parent, mut phys) = self.parent_of(&parent_path).ctx(doing)?;
        let dir = parent.as_fd();
        phys.push(name.clone());
        match kind {
            EntryType::Directory => {
                if kind_at(dir, &name).ctx(doing)? != Some(FileType::Directory) {
                    self.clear(dir, &name, &phys).ctx(doing)?;
                    mkdirat(dir, &name[..], Mode::from_raw_mode(0o755)).ctx(doing)?;
                }
                self.dir_meta.insert(phys.clone(), DirMeta { mode, mtime });
                self.stats.dirs += 1;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(ImageError::UnsafePath {
                        path: shown(&raw),
                        reason: "symlink target is empty or contains NUL",
                    });
                }
                self.clear(dir, &name, &phys).ctx(doing)?;
                symlinkat(&target[..], dir, &name[..]).ctx(doing)?;
                utimensat(
                    dir,
                    &name[..],
                    &timestamps(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ctx(doing)?;
                self.stats.symlinks += 1;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hard_link(dir, &name, &phys, &raw, &target)?;
            }
            _ => {
                self.clear(dir, &name, &phys).ctx(doing)?;
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let mut file: std::fs::File =
                    openat(dir, &name[..], flags, Mode::from_raw_mode(0o600))
                        .ctx(doing)?
                        .into();
                let size = entry.size();
                let mut copied = 0u64;
                loop {
                    let n = entry.read(&mut self.buf).map_err(corrupt)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n]).ctx(doing)?;
                    copied += n as u64;
                }
                if copied != size {
                    return Err(ImageError::CorruptLayer {
                        layer: label.to_string(),
                        message: format!("{}: truncated ({copied} of {size} bytes)", shown(&raw)),
                    });
                }
                fchmod(&file, Mode::from_raw_mode(file_mode(mode))).ctx(doing)?;
                futimens(&file, &timestamps(mtime)).ctx(doing)?;
                self.stats.files += 1;
                self.stats.bytes += copied;
            }
        }
        self.layer.mark(&phys);
        Ok(())
    }

    /// The directory `parent_path` names (created if missing), open, and its physical path.
    fn parent_of(
        &mut self,
        parent_path: &[Vec<u8>],
    ) -> rustix::io::Result<(Arc<OwnedFd>, PhysPath)> {
        if let Some(cached) = &self.parent {
            if cached.key == parent_path {
                return Ok((cached.dir.clone(), cached.phys.clone()));
            }
        }
        let resolved = resolve_dir(self.root.as_fd(), parent_path, Missing::Create)?
            .ok_or(rustix::io::Errno::NOENT)?;
        let dir = Arc::new(resolved.dir);
        self.parent = Some(CachedParent {
            key: parent_path.to_vec(),
            dir: dir.clone(),
            phys: resolved.phys.clone(),
        });
        Ok((dir, resolved.phys))
    }

    /// Removes whatever stands at `name` (a whole tree for a directory).
    fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        phys: &PhysPath,
    ) -> rustix::io::Result<()> {
        let kind = kind_at(dir, name)?;
        if kind.is_some() {
            self.parent = None;
        }
        match kind {
            None => Ok(()),
            Some(FileType::Directory) => {
                forget_beneath(&mut self.dir_meta, phys);
                remove_tree(dir, name)
            }
            Some(_) => unlinkat(dir, name, AtFlags::empty()),
        }
    }

    /// A hard link at `name` to `target`, which must be an existing non-directory in the root.
    fn hard_link(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        phys: &PhysPath,
        raw: &[u8],
        target: &[u8],
    ) -> Result<()> {
        let refuse = |reason| ImageError::BadHardLink {
            path: shown(raw),
            target: shown(target),
            reason,
        };
        let doing = || format!("hard link {}", shown(raw));
        let mut target_path = components(target)?;
        let target_name = target_path
            .pop()
            .ok_or_else(|| refuse("the target is the root"))?;
        let target_dir = resolve_dir(self.root.as_fd(), &target_path, Missing::Absent)
            .ctx(doing)?
            .ok_or_else(|| refuse("the target does not exist"))?;
        match kind_at(target_dir.dir.as_fd(), &target_name).ctx(doing)? {
            None => return Err(refuse("the target does not exist")),
            Some(FileType::Directory) => return Err(refuse("the target is a directory")),
            Some(_) => {}
        }
        let mut target_phys = target_dir.phys;
        target_phys.push(target_name.clone());
        if target_phys == *phys {
            return Ok(());
        }
        self.clear(dir, name, phys).ctx(doing)?;
        linkat(
            &target_dir.dir,
            &target_name[..],
            dir,
            name,
            AtFlags::empty(),
        )
        .ctx(doing)?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// A whiteout marker `<parent>/.wh.<hidden>`.
    fn whiteout(&mut self, raw: &[u8], parent_path: &[Vec<u8>], hidden: &[u8]) -> Result<()> {
        let doing = || format!("whiteout {}", shown(raw));
        self.parent = None;
        if hidden == b".wh..opq" {
            let parent = resolve_dir(self.root.as_fd(), parent_path, Missing::Create).ctx(doing)?;
            if let Some(parent) = parent {
                let mut phys = parent.phys.clone();
                prune_children(
                    &self.layer,
                    parent.dir.as_fd(),
                    &mut phys,
                    &mut self.dir_meta,
                )
                .ctx(doing)?;
                self.layer.mark(&parent.phys);
            }
        } else if hidden.starts_with(b".wh.") {
            // Other `.wh..wh.` names are aufs bookkeeping (hard-link directories): nothing to hide.
            return Ok(());
        } else {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(ImageError::UnsafePath {
                    path: shown(raw),
                    reason: "whiteout of an invalid name",
                });
            }
            let parent = resolve_dir(self.root.as_fd(), parent_path, Missing::Absent).ctx(doing)?;
            if let Some(parent) = parent {
                let mut phys = parent.phys;
                phys.push(hidden.to_vec());
                prune(
                    &self.layer,
                    parent.dir.as_fd(),
                    hidden,
                    &mut phys,
                    &mut self.dir_meta,
                )
                .ctx(|| format!("{} at {}", doing(), display(&phys)))?;
            }
        }
        self.stats.whiteouts += 1;
        Ok(())
    }
}
