//! Revealing host paths to a sandbox user that cannot reach them (a root launcher only): the
//! directories the launcher itself chose (the sandbox's socket directory under a private data
//! directory, MPS and shared-memory directories, an interpreter under `/root` found in the
//! operator's `PATH`, the helper program). Before it drops privileges, the new process enters a
//! private mount namespace, opens the topmost unsearchable directory above each such path,
//! covers it with a small tmpfs, and binds the path back in at its own place through that
//! descriptor; bubblewrap or unshare, now running as the sandbox user, then find it where it
//! was. Nothing changes in the host's mount namespace, and the mounts go with the sandbox.

use crate::users::topmost_unreachable;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The descriptor numbers the covered directories are opened at, one after another.
const FIRST_FD: i32 = 500;

/// One step, prepared (no allocation left for the child after fork).
#[derive(Debug)]
pub(crate) enum Op {
    /// Open this directory (in the new mount namespace) at descriptor `fd`.
    Open { dir: CString, fd: i32 },
    /// Close descriptor `fd`.
    Close(i32),
    /// Cover this unsearchable directory with a small tmpfs.
    Cover(CString),
    /// Create a directory (one that exists is fine).
    Mkdir(CString),
    /// Create an empty file to bind a file onto.
    Touch(CString),
    /// Bind `src` (a `/proc/self/fd/N/…` path into the covered directory) onto `dst`.
    Bind { src: CString, dst: CString },
}

/// What the new process does before it drops privileges.
#[derive(Debug, Default)]
pub(crate) struct Reveal {
    /// The steps, in order.
    pub ops: Vec<Op>,
}

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The steps that make every path of `paths` (canonical) reachable by `uid`/`gid`.
pub(crate) fn prepare(paths: &[PathBuf], uid: u32, gid: u32) -> io::Result<Reveal> {
    let mut groups: BTreeMap<PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for p in paths {
        if let Some(top) = topmost_unreachable(p, uid, gid) {
            groups.entry(top).or_default().push(p);
        }
    }
    let mut r = Reveal::default();
    for (fd, (top, mut inside)) in (FIRST_FD..).zip(groups) {
        inside.sort();
        inside.dedup();
        r.ops.push(Op::Open { dir: c(&top)?, fd });
        r.ops.push(Op::Cover(c(&top)?));
        let mut done: Vec<&PathBuf> = Vec::new();
        for p in inside {
            if done.iter().any(|d| p.starts_with(d)) {
                continue;
            }
            let Ok(rel) = p.strip_prefix(&top) else {
                continue;
            };
            let mut parents: Vec<&Path> = p.ancestors().skip(1).take_while(|a| *a != top).collect();
            parents.reverse();
            for a in parents {
                r.ops.push(Op::Mkdir(c(a)?));
            }
            r.ops.push(if p.is_dir() {
                Op::Mkdir(c(p)?)
            } else {
                Op::Touch(c(p)?)
            });
            let src = Path::new("/proc/self/fd").join(fd.to_string()).join(rel);
            r.ops.push(Op::Bind {
                src: c(&src)?,
                dst: c(p)?,
            });
            done.push(p);
        }
        r.ops.push(Op::Close(fd));
    }
    Ok(r)
}

/// Carries the steps out in the new process (between fork and exec: raw system calls only).
///
/// # Safety
/// Call only in a child between `fork` and `exec`, running as root.
pub(crate) unsafe fn apply(ops: &[Op]) -> io::Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let fail = || Err(io::Error::last_os_error());
    let slash = c"/";
    let tmpfs = c"tmpfs";
    let opts = c"mode=0755,size=65536";
    // SAFETY: every pointer below is a NUL-terminated string prepared before fork.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return fail();
        }
        let private = libc::MS_REC | libc::MS_SLAVE;
        if libc::mount(
            std::ptr::null(),
            slash.as_ptr(),
            std::ptr::null(),
            private,
            std::ptr::null(),
        ) != 0
        {
            return fail();
        }
        for op in ops {
            let r = match op {
                Op::Open { dir, fd } => {
                    let opened = libc::open(
                        dir.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if opened < 0 || libc::dup2(opened, *fd) < 0 {
                        -1
                    } else {
                        libc::close(opened)
                    }
                }
                Op::Close(fd) => libc::close(*fd),
                Op::Cover(dir) => libc::mount(
                    tmpfs.as_ptr(),
                    dir.as_ptr(),
                    tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    opts.as_ptr().cast(),
                ),
                Op::Mkdir(dir) => {
                    let r = libc::mkdir(dir.as_ptr(), 0o755);
                    if r != 0 && *libc::__errno_location() == libc::EEXIST {
                        0
                    } else {
                        r
                    }
                }
                Op::Touch(file) => {
                    let fd = libc::open(
                        file.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd)
                    } else {
                        fd
                    }
                }
                Op::Bind { src, dst } => libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ),
            };
            if r != 0 {
                return fail();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn paths_under_one_closed_directory_share_one_cover() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let closed = t.path().join("closed");
        let a = closed.join("x/a");
        let b = closed.join("y/b.sock");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(closed.join("y")).expect("mkdir");
        std::fs::write(&b, "").expect("file");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let open = t.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        let r = prepare(&[a.clone(), b.clone(), open], 65_000_321, 65_000_321).expect("prepare");
        let text: Vec<String> = r.ops.iter().map(|o| format!("{o:?}")).collect();
        assert_eq!(
            text.iter().filter(|o| o.starts_with("Cover")).count(),
            1,
            "{text:?}"
        );
        assert!(
            text[0].starts_with("Open") && text[1].contains("closed"),
            "{text:?}"
        );
        assert!(
            text.last().is_some_and(|o| o.starts_with("Close")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|o| o.starts_with("Touch") && o.contains("b.sock")),
            "{text:?}"
        );
        assert_eq!(
            text.iter().filter(|o| o.starts_with("Bind")).count(),
            2,
            "{text:?}"
        );
        assert!(
            text.iter().all(|o| !o.contains("open")),
            "reachable paths need nothing"
        );
    }
}
