//! What the worker keeps in its data directory besides the store: an exclusive lock, so two
//! workers never share one directory (store, sandboxes, MPS pipes), and `listen.addr`, the
//! address the API is bound to — written atomically once the worker serves, so a client that
//! started the worker on port 0 can read it back.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
const LOCK: &str = "lock";
/// The address file's name in the data directory.
pub(crate) const ADDRESS: &str = "listen.addr";

/// An exclusive `flock` on `<data_dir>/lock`, held until dropped (or the process ends, however
/// it ends).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the data directory's lock, or fails naming the directory and the holder's pid.
pub(crate) fn lock(data_dir: &Path) -> Result<DirLock> {
    let path = data_dir.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // SAFETY: flock(2) takes only a descriptor and flags and touches no memory of ours; the
    // descriptor belongs to `file`, which is open for the whole call (and kept open in the
    // returned `DirLock`, so the lock lasts as long as it). A bad descriptor would only give
    // EBADF, which is checked.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            bail!(
                "data_dir {} is in use by another worker{who}: two workers cannot share one; \
                 give this one its own --data-dir",
                data_dir.display()
            );
        }
        return Err(err).with_context(|| format!("cannot lock {}", path.display()));
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DirLock { _file: file })
}

/// Removes a stale address file (a previous worker's); call with the lock held.
pub(crate) fn forget_address(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(ADDRESS));
}

/// Writes `addr` to `<data_dir>/listen.addr` atomically (a temporary file renamed over it).
pub(crate) fn publish_address(data_dir: &Path, addr: SocketAddr) -> Result<PathBuf> {
    let path = data_dir.join(ADDRESS);
    let tmp = data_dir.join(format!(".{ADDRESS}.{}", std::process::id()));
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another worker"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(lock(dir.path()).is_ok());
    }

    #[test]
    fn the_address_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let path = publish_address(dir.path(), addr).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "127.0.0.1:4321\n");
        forget_address(dir.path());
        assert!(!path.exists());
    }
}
