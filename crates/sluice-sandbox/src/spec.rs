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
    /// The program and its arguments. A program without a `/` is looked up in `PATH`.
    pub command: Vec<String>,
    /// The function's own environment: values that name existing host paths (or `:`-lists of
    /// them, like `PYTHONPATH`) are bound read-only into the sandbox.
    pub env: Vec<(String, String)>,
    /// Environment the caller adds (devices, MPS, stage protocol); never scanned for paths.
    pub extra_env: Vec<(String, String)>,
    /// Working directory, bound read-only at its own path (default: the private `/tmp`).
    pub workdir: Option<PathBuf>,
    /// The root file system.
    pub root: Root,
    /// Further host paths the function reads, bound read-only at their own paths.
    pub files: Vec<PathBuf>,
    /// Host paths the caller (not the function) chose, e.g. the GPU shim library, bound
    /// read-only at their own paths even where the sandbox's user could not reach them.
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
