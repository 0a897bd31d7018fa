//! The mount plan: the sandbox's file system as an ordered list of [`Mount`] steps plus the
//! command, working directory and environment. `rootfs` makes it; `bwrap` turns it into
//! bubblewrap arguments and `init` carries it out itself in unshare mode, so both isolations build
//! the same root. Sources are host paths, destinations paths inside the sandbox.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One step of building the sandbox's root, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Mount {
    /// Bind `src` read-only at `dst`.
    RoBind { src: PathBuf, dst: PathBuf },
    /// Bind `src` read-write at `dst`.
    Bind { src: PathBuf, dst: PathBuf },
    /// Bind a device node (device access kept).
    DevBind { src: PathBuf, dst: PathBuf },
    /// A fresh tmpfs of `size` bytes with permissions `mode`.
    Tmpfs { dst: PathBuf, size: u64, mode: u32 },
    /// A fresh procfs for the sandbox's PID namespace.
    Proc { dst: PathBuf },
    /// A minimal `/dev` (null, zero, full, random, urandom, tty, a private shm and pts).
    Dev { dst: PathBuf },
    /// An empty directory (a path the function names goes through it before a `..`).
    Dir { dst: PathBuf },
    /// A symbolic link at `dst` pointing at `target`.
    Symlink { target: PathBuf, dst: PathBuf },
    /// A small read-only file with `data` (generated `/etc/passwd`, `/etc/resolv.conf`…).
    File { dst: PathBuf, data: String },
    /// Make the mount at `dst` read-only (not recursively).
    RemountRo { dst: PathBuf },
}

/// Everything needed to start the command in its root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The steps, in order.
    pub mounts: Vec<Mount>,
    /// The working directory inside.
    pub chdir: PathBuf,
    /// The command with its program resolved to an absolute path inside.
    pub command: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Host paths the launcher must make reachable for the sandbox's user before it starts
    /// (chosen by the caller or found in the operator's `PATH`, never named by the function).
    pub trusted: Vec<PathBuf>,
    /// Who the function is inside (uid, gid); `None`: [`INNER_UID`](crate::INNER_UID) and
    /// [`INNER_GID`](crate::INNER_GID).
    #[serde(default)]
    pub user: Option<(u32, u32)>,
}

impl Plan {
    /// The uid and gid the function has inside.
    pub fn inner_ids(&self) -> (u32, u32) {
        self.user
            .unwrap_or((crate::users::INNER_UID, crate::users::INNER_GID))
    }
}
