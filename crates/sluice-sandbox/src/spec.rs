//! What a caller asks for: [`SandboxSpec`] (the command, its environment and files, the root it
//! runs in, the directories it shares, devices, network and [`Limits`]). It says nothing about
//! how the isolation is done; `rootfs` turns it into mounts and `launch` into a process.

use crate::users::UserLease;
use std::path::PathBuf;

/// The root file system a sandbox sees.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Root {
    /// The host's system directories (`/usr`, `/bin`, `/lib`…) read-only, an `/etc` allow-list
    /// without secrets, fresh `/dev`, `/proc` and `/tmp`, and nothing else of the host but the
    /// function's own files.
    #[default]
    HostMinimal,
    /// An unpacked container image's root file system (`image_root`): its top-level entries
    /// bound read-only onto the sandbox's own root, with fresh `/dev`, `/proc`, `/tmp`, `/run`
    /// (the socket directory at [`SOCKET_DIR`](crate::SOCKET_DIR)), and nothing of the host but
    /// what the caller chose (`read_only`, `read_write`, GPU devices and driver libraries).
    Image(ImageRoot),
}

/// An image root to run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRoot {
    /// The unpacked root on the host (never written; the sandbox's user must be able to read
    /// it, which the launcher arranges for paths it cannot reach).
    pub path: PathBuf,
    /// Who the function is inside (the image's `User`: uid and gid; root of the image is still
    /// the sandbox's unprivileged host user).
    pub user: (u32, u32),
}

/// Resource limits of one sandbox (cgroups, and the size of its `/tmp`).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Memory limit of the sandbox's cgroup, bytes (its `/tmp` pages count here too).
    pub memory_bytes: u64,
    /// CPU quota, cores (may be fractional).
    pub cpus: f64,
    /// Most processes and threads.
    pub pids: u32,
    /// Size of the private `/tmp` tmpfs, bytes.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            cpus: 1.0,
            pids: 256,
            tmp_bytes: 64 << 20,
        }
    }
}

/// One sandbox to start.
#[derive(Clone, Debug, Default)]
pub struct SandboxSpec {
    /// Unique among the live sandboxes of this host: names the sandbox directory and cgroup
    /// (`w<launcher pid>-<id>`).
    pub id: u64,
    /// The program and its arguments. A program without a `/` is looked up in `PATH` (inside
    /// the image for [`Root::Image`]).
    pub command: Vec<String>,
    /// The function's own environment: values that name existing host paths (or `:`-lists of
    /// them, like `PYTHONPATH`) are bound read-only into the sandbox. For [`Root::Image`] it is
    /// the whole environment (the image's, with the spec's laid over it) and never scanned.
    pub env: Vec<(String, String)>,
    /// Environment the caller adds (devices, MPS, stage protocol); never scanned for paths.
    pub extra_env: Vec<(String, String)>,
    /// Working directory, bound read-only at its own path (default: the private `/tmp`); for
    /// [`Root::Image`] a directory inside the image (default `/`).
    pub workdir: Option<PathBuf>,
    /// The root file system.
    pub root: Root,
    /// Further host paths the function reads, bound read-only at their own paths (refused for
    /// [`Root::Image`]: such a function sees only its image).
    pub files: Vec<PathBuf>,
    /// Host paths the caller (not the function) chose, e.g. the GPU shim library, bound
    /// read-only at their own paths even where the sandbox's user could not reach them (under
    /// [`HOST_DIR`](crate::image_root::HOST_DIR) in an image root).
    pub read_only: Vec<PathBuf>,
    /// Directories the caller chose (MPS pipe and log directories, a pipeline group's shared
    /// memory) bound read-write at their own paths.
    pub read_write: Vec<PathBuf>,
    /// The function uses a GPU: the NVIDIA device nodes and `/sys` (read-only) are visible.
    pub gpu: bool,
    /// Outbound network through a user-mode stack in the sandbox's own network namespace;
    /// otherwise only the sandbox's own loopback.
    pub network: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Run as this (shared) user, e.g. one per pipeline group; default: a user of its own.
    pub user: Option<UserLease>,
}
