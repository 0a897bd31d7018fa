//! Removing the arena directories of workers that are gone, so a crash leaks nothing past the next
//! start.

use super::ShmError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Removes every `<pid>-<group>` directory (an arena) and `<pid>.pool` directory (the pools of a
/// process's arenas) under `root` whose pid is not a live process, and returns the directories
/// removed. Entries not named that way are left alone, as are this process's own.
///
/// A pid reused by an unrelated process keeps its directory until that process is gone too; a worker
/// restarted with its old pid replaces its leftovers when it creates the arena again.
pub fn sweep(root: &Path) -> Result<Vec<PathBuf>, ShmError> {
    let entries = match fs::read_dir(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(ShmError::io("read", root))?,
    };
    let own = std::process::id();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ShmError::io("read", root))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| owner_pid(name).or_else(|| pool_pid(name)))
        else {
            continue;
        };
        if pid == own || process_alive(pid) || !entry.path().is_dir() {
            continue;
        }
        let path = entry.path();
        fs::remove_dir_all(&path).map_err(ShmError::io("remove", &path))?;
        removed.push(path);
    }
    Ok(removed)
}

/// The pid of a directory named `<pid>-<group>`.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, group) = name.split_once('-')?;
    if group.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid > 0)
}

/// The pid of a directory named `<pid>.pool`.
fn pool_pid(name: &str) -> Option<u32> {
    let pid = name.strip_suffix(".pool")?;
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&pid| pid > 0)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // EPERM: it exists but belongs to someone else.
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::{owner_pid, pool_pid};

    #[test]
    fn parses_only_pid_group_names() {
        assert_eq!(owner_pid("123-ocr"), Some(123));
        assert_eq!(owner_pid("123-a-b"), Some(123));
        assert_eq!(owner_pid("123-"), None);
        assert_eq!(owner_pid("0-x"), None);
        assert_eq!(owner_pid("+12-x"), None);
        assert_eq!(owner_pid("abc-x"), None);
        assert_eq!(owner_pid("lost+found"), None);
        assert_eq!(pool_pid("123.pool"), Some(123));
        assert_eq!(pool_pid(".pool"), None);
        assert_eq!(pool_pid("0.pool"), None);
        assert_eq!(pool_pid("12x.pool"), None);
        assert_eq!(owner_pid("123.pool"), None);
    }
}
