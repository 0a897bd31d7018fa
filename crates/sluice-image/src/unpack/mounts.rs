//! The mount points the sandbox needs in every root: `/proc`, `/dev`, `/tmp`, `/run/sluice` as real
//! directories (anything else standing there, a symlink included, is replaced so a mount can never
//! be redirected), an empty `/etc/resolv.conf` when the image has none, and `/usr/local/nvidia`
//! (where a GPU sandbox gets the host driver's libraries) where the image's `/usr/local` is a
//! real directory or missing — never replacing anything of the image to make it.

use super::fsops::remove_tree;
use super::resolve::{kind_at, open_dir_at, resolve_dir, Missing};
use super::whiteout::{forget_beneath, PhysPath};
use super::DirMeta;
use crate::error::{IoContext, Result};
use rustix::fs::{mkdirat, openat, FileType, Mode, OFlags};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Mount points and the mode each gets when the image lacks it.
const MOUNT_POINTS: [(&[&str], u32); 4] = [
    (&["proc"], 0o555),
    (&["dev"], 0o755),
    (&["tmp"], 0o1777),
    (&["run", "sluice"], 0o755),
];

/// Creates the mount points and `/etc/resolv.conf`.
pub(super) fn create(
    root: BorrowedFd<'_>,
    dir_meta: &mut BTreeMap<PhysPath, DirMeta>,
) -> Result<()> {
    for (path, mode) in MOUNT_POINTS {
        let shown = || format!("create mount point /{}", path.join("/"));
        let mut cur: Option<OwnedFd> = None;
        let mut phys: PhysPath = Vec::new();
        for name in path {
            let dir = cur.as_ref().map_or(root, |fd| fd.as_fd());
            phys.push(name.as_bytes().to_vec());
            let next = real_dir(dir, name.as_bytes(), &phys, mode, dir_meta).ctx(shown)?;
            cur = Some(next);
        }
    }
    gpu_mount_point(root, dir_meta).ctx(|| "create mount point /usr/local/nvidia".to_string())?;
    let etc =
        resolve_dir(root, &[b"etc".to_vec()], Missing::Create).ctx(|| "create /etc".to_string())?;
    if let Some(etc) = etc {
        if kind_at(etc.dir.as_fd(), b"resolv.conf")
            .ctx(|| "stat /etc/resolv.conf".to_string())?
            .is_none()
        {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            openat(&etc.dir, "resolv.conf", flags, Mode::from_raw_mode(0o644))
                .ctx(|| "create /etc/resolv.conf".to_string())?;
        }
    }
    Ok(())
}

/// `/usr/local/nvidia` as real directories, created where missing; stops quietly at anything
/// else (a symlinked `/usr`, a file) so the image's own tree is never changed to make it.
fn gpu_mount_point(
    root: BorrowedFd<'_>,
    dir_meta: &mut BTreeMap<PhysPath, DirMeta>,
) -> rustix::io::Result<()> {
    let mut cur: Option<OwnedFd> = None;
    let mut phys: PhysPath = Vec::new();
    for name in ["usr", "local", "nvidia"] {
        let dir = cur.as_ref().map_or(root, |fd| fd.as_fd());
        phys.push(name.as_bytes().to_vec());
        match kind_at(dir, name.as_bytes())? {
            Some(FileType::Directory) => {}
            Some(_) => return Ok(()),
            None => {
                mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
                dir_meta.insert(
                    phys.clone(),
                    DirMeta {
                        mode: 0o755,
                        mtime: 0,
                    },
                );
            }
        }
        cur = Some(open_dir_at(dir, name.as_bytes())?);
    }
    Ok(())
}

/// Opens `name` in `dir` as a real directory, replacing whatever else stands there.
fn real_dir(
    dir: BorrowedFd<'_>,
    name: &[u8],
    phys: &PhysPath,
    mode: u32,
    dir_meta: &mut BTreeMap<PhysPath, DirMeta>,
) -> rustix::io::Result<OwnedFd> {
    match kind_at(dir, name)? {
        Some(FileType::Directory) => return open_dir_at(dir, name),
        Some(_) => {
            forget_beneath(dir_meta, phys);
            remove_tree(dir, name)?;
        }
        None => {}
    }
    mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
    dir_meta.insert(phys.clone(), DirMeta { mode, mtime: 0 });
    open_dir_at(dir, name)
}
