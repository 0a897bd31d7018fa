//! The one launcher for all user code in Sluice (functions, pipeline stage instances, profiling),
//! in the spirit of Firecracker's jailer: a small crate with its own tests.
//!
//! A [`Launcher`] is made once from a [`LauncherConfig`]: it picks the isolation (bubblewrap, else
//! util-linux unshare; a plain process only when the configuration explicitly allows unisolated
//! code) and the cgroup hierarchy (v2, v1 or none), and sweeps what a killed launcher left
//! behind. [`Launcher::spawn`] starts one [`Sandbox`] from a [`SandboxSpec`]: the function runs as
//! an unprivileged user (a host uid of its own when the launcher is root) through a user
//! namespace, in a minimal root (`rootfs`) with its own socket directory at
//! [`SOCKET_DIR`], under a seccomp filter (`seccomp`), in its own network
//! namespace (outbound access through `slirp4netns` when asked), with cgroup limits and a
//! size-limited `/tmp`. The running [`Sandbox`] gives readiness, its output (stdout and stderr,
//! read as it comes and kept bounded: [`Output`]) and teardown.
//!
//! Modules: `spec` (what to start), `rootfs`, `admit` and `resolve` (the mounts of the host's
//! minimal root), `image_root` and `gpu` (the mounts of an image root and the host's GPU driver
//! in it, from CDI or `ldconfig`), `plan` (the mount plan both isolations carry out), `bwrap`, `unshare` and `init` (the isolations), `users` and
//! `reveal` (who it runs as), `seccomp`, `network`, `cgroup`, `launch` (starting), `process`
//! (running), `output` (what it writes), `sweep` (leftovers).

mod admit;
mod bwrap;
mod cgroup;
mod elf;
mod family;
pub mod gpu;
pub mod image_root;
mod init;
mod launch;
mod launcher;
mod network;
pub mod oci;
mod oci_launch;
mod output;
mod plan;
mod preexec;
mod process;
mod resolve;
mod reveal;
pub mod rootfs;
pub mod seccomp;
mod spec;
mod sweep;
mod unshare;
mod users;

pub use cgroup::CgroupMode;
pub use launcher::{IsolationChoice, Launcher, LauncherConfig, NotEnforced};
pub use output::{
    Excerpt, Output, OutputSink, Stream, MAX_LINE, OUTPUT_RING, READ_RATE, STDERR_TAIL,
};
pub use process::{ExitInfo, Sandbox};
pub use rootfs::SOCKET_DIR;
pub use spec::{ImageRoot, Limits, Root, SandboxSpec};
pub use unshare::{Helper, INIT_ARG};
pub use users::{UidRange, UserLease, INNER_GID, INNER_UID};

use std::path::PathBuf;
use std::time::Duration;

/// File name of the function's socket in its socket directory.
pub const SOCKET_NAME: &str = "sluice.sock";

/// How a sandbox is isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// bubblewrap (`bwrap`) in a user namespace.
    Bubblewrap,
    /// util-linux `unshare` in a user namespace, with the launcher's helper as init.
    Unshare,
    /// An OCI runtime (`runc` or `crun`, rootful) running a bundle made from the same plan.
    Oci(oci::Runtime),
    /// A plain process: no namespaces, no minimal root, no seccomp (cgroup limits still apply).
    Plain,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Bubblewrap => "bubblewrap",
            Isolation::Unshare => "unshare",
            Isolation::Oci(r) => r.program(),
            Isolation::Plain => "plain process",
        })
    }
}

/// Why a launcher could not be made, or a sandbox not started or used.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The configuration asks for something this host cannot do, or forbids what it would need.
    #[error("sandbox launcher: {0}")]
    Config(String),
    /// The spec cannot be started as given (the message names the part).
    #[error("cannot start a sandbox: {0}")]
    BadSpec(String),
    /// A file system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup operation failed.
    #[error("cgroup {}: {source}", path.display())]
    Cgroup {
        /// The cgroup file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The isolation program could not be started.
    #[error("cannot run {program}: {source}")]
    Launch {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it became ready (`code` is `None` when a signal killed it).
    /// The message leaves the stderr tail out; it is in `stderr_tail`.
    #[error("the function exited ({}) before it was ready",
        code.map_or("killed".to_string(), |c| format!("code {c}")))]
    Exited {
        /// Its exit code.
        code: Option<i32>,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// It did not become ready in time (the process still runs; kill it).
    #[error("the function was not ready within {timeout:?}")]
    NotReady {
        /// How long it was given.
        timeout: Duration,
        /// The end of its stderr.
        stderr_tail: String,
    },
}

impl SandboxError {
    /// Whether the isolation itself failed to set the sandbox up (bubblewrap's or the unshare
    /// init's own error, before the function ran) — worth one more try, unlike a function that
    /// exits.
    pub fn is_setup_failure(&self) -> bool {
        match self {
            SandboxError::Exited { stderr_tail, .. } => {
                stderr_tail.starts_with("bwrap: ") || stderr_tail.starts_with(init::FAILURE_PREFIX)
            }
            _ => false,
        }
    }
}

/// Runs the helper's init mode when this process was started as one (`<exe> __sandbox-init`):
/// call it first thing in `main` of a binary that serves as [`Helper`]. Returns when the
/// process is not a helper; otherwise never returns.
pub fn helper_main() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(INIT_ARG)) {
        return;
    }
    if args.next().as_deref() == Some(std::ffi::OsStr::new("--version")) {
        println!("{}", unshare::HELPER_VERSION);
        std::process::exit(0);
    }
    let e = init::run();
    eprintln!("{}{e}", init::FAILURE_PREFIX);
    std::process::exit(127);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_isolations_own_failures_are_setup_failures() {
        let exited = |tail: &str| SandboxError::Exited {
            code: Some(1),
            stderr_tail: tail.into(),
        };
        assert!(
            exited("bwrap: loopback: Failed RTM_NEWADDR: No child processes").is_setup_failure()
        );
        assert!(exited("sluice sandbox init: mount /usr: Permission denied").is_setup_failure());
        assert!(!exited("Traceback (most recent call last):").is_setup_failure());
        let not_ready = SandboxError::NotReady {
            timeout: Duration::from_secs(1),
            stderr_tail: "bwrap: x".into(),
        };
        assert!(!not_ready.is_setup_failure());
    }
}
