//! Resolution of paths beneath a root directory, one component at a time with `openat(O_NOFOLLOW)`:
//! symbolic links met on the way are read and followed *inside* the root (an absolute target starts
//! again at the root, `..` stops at the root), the way `chroot` would see them, so no path can lead
//! out of the root however its links are laid. Every directory is held open while walking, so the
//! caller finally acts through a directory file descriptor and a single name (`*at` calls).

use super::path::link_components;
use rustix::fs::{mkdirat, openat, readlinkat, statat, unlinkat, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Symbolic links followed for one path before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A directory beneath the root, open, with its physical path (no symlinks in it).
pub struct Resolved {
    /// The open directory.
    pub dir: OwnedFd,
    /// Its components from the root, after following links.
    pub phys: Vec<Vec<u8>>,
}

/// Whether missing (or non-directory) components are made into directories.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Create them (mode 0755), replacing a non-directory that stands in the way.
    Create,
    /// Report `None`.
    Absent,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens `name` in `dir` as a directory without following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    openat(dir, name, dir_flags(), Mode::empty())
}

/// The type of `name` in `dir`, without following a symlink; `None` when there is nothing.
pub fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileType>, Errno> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Walks `components` beneath `root` and opens the directory they name.
pub fn resolve_dir(
    root: BorrowedFd<'_>,
    components: &[Vec<u8>],
    missing: Missing,
) -> Result<Option<Resolved>, Errno> {
    let mut stack: Vec<(OwnedFd, Vec<u8>)> = Vec::new();
    let mut queue: VecDeque<Vec<u8>> = components.iter().cloned().collect();
    let mut links = 0;
    while let Some(name) = queue.pop_front() {
        if name.is_empty() || name == b"." {
            continue;
        }
        if name == b".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map_or(root, |(fd, _)| fd.as_fd());
        match open_dir_at(cur, &name) {
            Ok(fd) => stack.push((fd, name)),
            Err(Errno::NOENT) if missing == Missing::Create => {
                match mkdirat(cur, &name[..], Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                stack.push((open_dir_at(cur, &name)?, name));
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => match readlinkat(cur, &name[..], Vec::new()) {
                Ok(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP);
                    }
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for part in link_components(target).into_iter().rev() {
                        queue.push_front(part);
                    }
                }
                Err(Errno::INVAL) if missing == Missing::Create => {
                    // A file where a directory is needed: the later layer wins.
                    unlinkat(cur, &name[..], AtFlags::empty())?;
                    mkdirat(cur, &name[..], Mode::from_raw_mode(0o755))?;
                    stack.push((open_dir_at(cur, &name)?, name));
                }
                Err(Errno::INVAL) => return Ok(None),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    let phys = stack.iter().map(|(_, name)| name.clone()).collect();
    let dir = match stack.pop() {
        Some((fd, _)) => fd,
        None => openat(root, ".", dir_flags(), Mode::empty())?,
    };
    Ok(Some(Resolved { dir, phys }))
}

/// Opens the regular file `components` names beneath `root` for reading, following symlinks
/// (the final one too) inside the root. `None` when it does not exist or is not a regular file.
pub fn open_file_beneath(
    root: BorrowedFd<'_>,
    components: &[Vec<u8>],
) -> Result<Option<std::fs::File>, Errno> {
    let mut path = components.to_vec();
    for _ in 0..MAX_LINKS {
        let Some(name) = path.pop() else {
            return Ok(None);
        };
        let Some(parent) = resolve_dir(root, &path, Missing::Absent)? else {
            return Ok(None);
        };
        match kind_at(parent.dir.as_fd(), &name)? {
            Some(FileType::RegularFile) => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                return Ok(Some(
                    openat(&parent.dir, &name[..], flags, Mode::empty())?.into(),
                ));
            }
            Some(FileType::Symlink) => {
                let target = readlinkat(&parent.dir, &name[..], Vec::new())?;
                let target = target.as_bytes();
                path = if target.starts_with(b"/") {
                    Vec::new()
                } else {
                    parent.phys
                };
                path.extend(link_components(target));
            }
            _ => return Ok(None),
        }
    }
    Err(Errno::LOOP)
}

/// Opens the directory at a physical path (no symlinks expected) without following any link;
/// `None` when some component is missing or not a directory.
pub fn open_physical_dir(root: BorrowedFd<'_>, phys: &[Vec<u8>]) -> Result<Option<OwnedFd>, Errno> {
    let mut cur = openat(root, ".", dir_flags(), Mode::empty())?;
    for name in phys {
        cur = match open_dir_at(cur.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(cur))
}
