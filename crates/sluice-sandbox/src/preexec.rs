//! What a new sandbox process does between fork and exec, prepared beforehand so that it only
//! makes system calls: join its cgroup (while still privileged), start a new session, reveal what
//! its user cannot reach (`reveal`), put inherited descriptors in place, and — for a root
//! launcher — drop to the sandbox's user with no supplementary groups and an empty bounding set;
//! in every mode `no_new_privs` and death with the launcher.

use crate::reveal;

/// What the child inherits: `(fd, target)` — moved to `target`, or kept at its number when
/// `target` is `None`.
pub(crate) type Inherit = Vec<(i32, Option<i32>)>;

/// Most descriptors moved to fixed numbers.
const MAX_MOVED: usize = 8;

/// What the child does between fork and exec, prepared so it only makes system calls.
pub(crate) struct PreExec {
    pub cgroup_procs: Vec<i32>,
    pub reveal: Vec<reveal::Op>,
    pub inherit: Inherit,
    /// Host uid/gid to become (a root launcher).
    pub drop_to: Option<(u32, u32)>,
    pub last_cap: u64,
    pub parent: i32,
}

impl PreExec {
    /// # Safety
    /// Only between fork and exec.
    pub(crate) unsafe fn run(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY: raw system calls on descriptors and values prepared before fork.
        unsafe {
            for &fd in &self.cgroup_procs {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return fail();
                }
            }
            if libc::setsid() < 0 {
                return fail();
            }
            reveal::apply(&self.reveal)?;
            // Move descriptors to their numbers: first out of the way, then into place (no
            // allocation here, so at most MAX_MOVED of them).
            let mut moved = [(-1, -1); MAX_MOVED];
            let mut n = 0;
            for &(fd, target) in &self.inherit {
                match target {
                    Some(t) if n < MAX_MOVED => {
                        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                        if high < 0 {
                            return fail();
                        }
                        moved[n] = (high, t);
                        n += 1;
                    }
                    Some(_) => return Err(std::io::Error::other("too many descriptors to move")),
                    None => {
                        if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                            return fail();
                        }
                    }
                }
            }
            for &(high, t) in &moved[..n] {
                if libc::dup2(high, t) < 0 {
                    return fail();
                }
            }
            if let Some((uid, gid)) = self.drop_to {
                for cap in 0..=self.last_cap {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return fail();
                }
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return fail();
            }
            // After the change of user, which clears it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return fail();
            }
            if libc::getppid() != self.parent {
                return Err(std::io::Error::other("the launcher is gone"));
            }
        }
        Ok(())
    }
}

/// The highest capability number of this kernel.
pub(crate) fn last_cap() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}
