//! Who a sandbox runs as. A launcher running as root gives each sandbox (or each group that
//! asks to share one) its own host uid and gid from a configured range, so sandboxes can read
//! neither the host's private files nor each other's; a launcher running as another user runs
//! every sandbox as that user. Inside its user namespace the function always sees
//! [`INNER_UID`]/[`INNER_GID`]. Also: whether a host path can be reached by such a user (every
//! directory above it searchable), which decides what must be revealed to it.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The uid a function sees inside its sandbox.
pub const INNER_UID: u32 = 1000;
/// The gid a function sees inside its sandbox.
pub const INNER_GID: u32 = 1000;

/// Host uids (and the gids of the same numbers) handed to sandboxes by a root launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    /// First uid of the range.
    pub base: u32,
    /// How many uids.
    pub count: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        UidRange {
            base: 100_000,
            count: 65_536,
        }
    }
}

#[derive(Debug)]
struct PoolState {
    range: UidRange,
    used: BTreeSet<u32>,
    next: u32,
}

/// The uids of one launcher (round robin over the range, skipping those in use).
#[derive(Clone, Debug)]
pub(crate) struct UidPool {
    /// `None` when the launcher is not root: every sandbox runs as the launcher's own user.
    state: Option<Arc<Mutex<PoolState>>>,
}

impl UidPool {
    pub(crate) fn new(range: UidRange, root: bool) -> UidPool {
        // Different launchers of one host start at different places in the range.
        let start = std::process::id().wrapping_mul(2_654_435_761) % range.count.max(1);
        UidPool {
            state: root.then(|| {
                Arc::new(Mutex::new(PoolState {
                    range,
                    used: BTreeSet::new(),
                    next: start,
                }))
            }),
        }
    }

    /// A user for one sandbox or group; `None` when every uid of the range is in use.
    pub(crate) fn lease(&self) -> Option<UserLease> {
        let Some(state) = &self.state else {
            return Some(UserLease(Arc::new(Lease {
                // SAFETY: getuid/getgid have no preconditions.
                uid: unsafe { libc::getuid() },
                // SAFETY: as above.
                gid: unsafe { libc::getgid() },
                pool: None,
            })));
        };
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let count = st.range.count;
        for _ in 0..count {
            let off = st.next % count;
            st.next = st.next.wrapping_add(1);
            let uid = st.range.base.checked_add(off)?;
            if st.used.insert(uid) {
                return Some(UserLease(Arc::new(Lease {
                    uid,
                    gid: uid,
                    pool: Some(state.clone()),
                })));
            }
        }
        None
    }
}

#[derive(Debug)]
struct Lease {
    uid: u32,
    gid: u32,
    pool: Option<Arc<Mutex<PoolState>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.lock()
                .unwrap_or_else(|p| p.into_inner())
                .used
                .remove(&self.uid);
        }
    }
}

/// A host user held by one or more sandboxes; the uid goes back to the pool when the last
/// holder drops it.
#[derive(Clone, Debug)]
pub struct UserLease(Arc<Lease>);

impl UserLease {
    /// The host uid.
    pub fn uid(&self) -> u32 {
        self.0.uid
    }

    /// The host gid (no supplementary groups).
    pub fn gid(&self) -> u32 {
        self.0.gid
    }

    /// Whether this user differs from the launcher's own (the launcher runs as root).
    pub fn is_separate(&self) -> bool {
        self.0.pool.is_some()
    }

    /// Gives `path` to this user (mode unchanged); a no-op when it is the launcher's own user.
    pub fn chown(&self, path: &Path) -> std::io::Result<()> {
        if !self.is_separate() {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid()), Some(self.gid()))
    }
}

/// Whether `uid`/`gid` (no supplementary groups) may search every directory above `path`
/// (which must be absolute and free of symlinks): what resolving it as that user needs.
pub(crate) fn reachable(path: &Path, uid: u32, gid: u32) -> bool {
    topmost_unreachable(path, uid, gid).is_none()
}

/// The directory closest to `/` above `path` that `uid`/`gid` may not search, if any.
pub(crate) fn topmost_unreachable(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    dirs.into_iter()
        .find(|d| {
            std::fs::metadata(d).map_or(true, |m| {
                let mode = m.mode();
                let bit = if m.uid() == uid {
                    0o100
                } else if m.gid() == gid {
                    0o010
                } else {
                    0o001
                };
                mode & bit == 0
            })
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_root_pool_hands_out_distinct_uids_and_takes_them_back() {
        let pool = UidPool::new(
            UidRange {
                base: 500,
                count: 3,
            },
            true,
        );
        let a = pool.lease().expect("a");
        let b = pool.lease().expect("b");
        let c = pool.lease().expect("c");
        let mut uids = [a.uid(), b.uid(), c.uid()];
        uids.sort_unstable();
        assert_eq!(uids, [500, 501, 502]);
        assert_eq!(a.gid(), a.uid());
        assert!(pool.lease().is_none(), "the range is used up");
        let freed = b.uid();
        let shared = b.clone();
        drop(b);
        assert!(pool.lease().is_none(), "a clone still holds it");
        drop(shared);
        assert_eq!(pool.lease().map(|l| l.uid()), Some(freed));
    }

    #[test]
    fn a_non_root_pool_is_the_launchers_own_user() {
        let pool = UidPool::new(UidRange::default(), false);
        let l = pool.lease().expect("lease");
        // SAFETY: getuid has no preconditions.
        assert_eq!(l.uid(), unsafe { libc::getuid() });
        assert!(!l.is_separate());
    }

    #[test]
    fn reachability_follows_the_search_bits() {
        let t = tempfile::tempdir().expect("tempdir");
        let closed = t.path().join("closed");
        let inner = closed.join("inner");
        std::fs::create_dir_all(&inner).expect("mkdir");
        let open = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        open(t.path(), 0o755);
        open(&closed, 0o700);
        let file = inner.join("f");
        let nobody = 65_000_123;
        assert_eq!(
            topmost_unreachable(&file, nobody, nobody).as_deref(),
            Some(closed.as_path())
        );
        open(&closed, 0o711);
        assert!(reachable(&file, nobody, nobody));
        assert!(reachable(&closed, nobody, nobody));
    }
}
