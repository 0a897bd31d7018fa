//! Sandboxes: a function process in its own Linux namespaces with cgroup limits.
//!
//! [`Launcher`] picks the isolation once — bubblewrap where `bwrap` works, else util-linux
//! `unshare`, else a plain process (logged: functions then run unisolated) — and the cgroup
//! hierarchy (v2, v1, or none). [`Launcher::spawn`] starts one [`Sandbox`]: the function gets
//! a clean environment (`PATH`, `HOME=/tmp`, `LANG=C.UTF-8`, the spec's env, the request's extra
//! env, `SLUICE_SOCKET`), a private writable `/tmp` (`<dir>/tmp`), a read-only system, no network
//! unless the spec asks for it, a new PID namespace, and dies with the worker. It joins its
//! cgroup (`sluice/<id>`) before exec. See `launch` (start), `process` (running sandbox,
//! teardown), `bwrap` and `unshare` (isolation), `cgroup` (limits).

mod bwrap;
mod cgroup;
mod launch;
mod process;
mod unshare;

pub use cgroup::CgroupMode;
pub use launch::SOCKET_NAME;
pub use process::{Sandbox, STDERR_TAIL};

use crate::function::FunctionSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a sandbox is isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap (`bwrap`): every namespace, read-only root, fresh /dev and /proc.
    Bubblewrap,
    /// util-linux `unshare` plus a mount script: namespaces, host mounts remounted read-only.
    Unshare,
    /// No isolation at all (cgroup limits still apply where available).
    Plain,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Bubblewrap => "bubblewrap",
            Isolation::Unshare => "unshare",
            Isolation::Plain => "plain process",
        })
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SandboxRequest<'a> {
    /// Unique among live sandboxes of this host: names the cgroup `sluice/<id>`.
    pub id: u64,
    pub spec: &'a FunctionSpec,
    /// Private per-sandbox directory the worker created: holds the socket (`sluice.sock`) and
    /// the private tmp (`tmp/`). Removed when the sandbox is killed.
    pub dir: PathBuf,
    /// Extra environment, e.g. `CUDA_VISIBLE_DEVICES`, `CUDA_MPS_*`.
    pub extra_env: Vec<(String, String)>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Signal that killed it, if any.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => f.write_str("ended"),
        }
    }
}

/// Why a sandbox could not be started or became unusable.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start a sandbox: {0}")]
    BadSpec(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {}: {source}", path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Launch {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it became ready (`code` is `None` when a signal killed it).
    /// The message leaves the stderr tail out; it is in `stderr_tail`.
    #[error("the function exited ({}) before it was ready",
        code.map_or("killed".to_string(), |c| format!("code {c}")))]
    Exited {
        code: Option<i32>,
        stderr_tail: String,
    },
    /// `/ready` did not answer 200 in time (the process still runs; kill it).
    #[error("the function was not ready within {timeout:?}")]
    NotReady {
        timeout: Duration,
        stderr_tail: String,
    },
}

/// Starts sandboxes with one isolation and cgroup mode.
#[derive(Debug, Clone)]
pub struct Launcher {
    isolation: Isolation,
    cgroups: CgroupMode,
    cgroup_root: PathBuf,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn detect_cgroups(root: &Path) -> CgroupMode {
    let mode = cgroup::detect(root);
    if mode == CgroupMode::None {
        tracing::warn!(
            "no usable cgroups under {}: sandboxes run without memory, CPU and pids limits",
            root.display()
        );
    }
    mode
}

impl Launcher {
    /// The best isolation that works here: bubblewrap, then unshare, then a plain process.
    pub fn detect() -> Launcher {
        let isolation = if bwrap::works() {
            Isolation::Bubblewrap
        } else if unshare::works() {
            Isolation::Unshare
        } else {
            Isolation::Plain // `with` warns that functions run unisolated
        };
        let l = Launcher::with(isolation);
        tracing::info!(isolation = %l.isolation, cgroups = %l.cgroups, "sandbox launcher");
        l
    }

    /// A launcher with a forced isolation (cgroups still detected).
    pub fn with(isolation: Isolation) -> Launcher {
        if isolation == Isolation::Plain {
            tracing::warn!("sandboxes are plain processes: functions run unisolated");
        }
        let root = PathBuf::from(CGROUP_ROOT);
        Launcher {
            isolation,
            cgroups: detect_cgroups(&root),
            cgroup_root: root,
        }
    }

    /// Overrides the detected cgroup mode (`CgroupMode::None` runs without limits).
    pub fn with_cgroups(mut self, mode: CgroupMode) -> Launcher {
        self.cgroups = mode;
        self
    }

    /// Whether `isolation` can be used on this host (trial run).
    pub fn available(isolation: Isolation) -> bool {
        match isolation {
            Isolation::Bubblewrap => bwrap::works(),
            Isolation::Unshare => unshare::works(),
            Isolation::Plain => true,
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn cgroups(&self) -> CgroupMode {
        self.cgroups
    }

    /// Removes empty `sluice/<id>` cgroups left by a worker that died without cleaning up; call
    /// once at start, before the first spawn. Returns how many were removed.
    pub fn sweep_stale_cgroups(&self) -> usize {
        let n = cgroup::sweep(self.cgroups, &self.cgroup_root);
        if n > 0 {
            tracing::info!(removed = n, "removed stale sandbox cgroups");
        }
        n
    }

    /// Starts a sandbox; the caller then waits for [`Sandbox::wait_ready`]. From this call on
    /// `req.dir` belongs to the sandbox: it is removed by kill, drop, or a failed spawn.
    pub async fn spawn(&self, req: SandboxRequest<'_>) -> Result<Sandbox, SandboxError> {
        let dir = req.dir.clone();
        let started = launch::spawn(self.isolation, self.cgroups, &self.cgroup_root, req);
        if started.is_err() {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_names() {
        assert_eq!(Isolation::Bubblewrap.to_string(), "bubblewrap");
        assert_eq!(Isolation::Unshare.to_string(), "unshare");
        assert_eq!(Isolation::Plain.to_string(), "plain process");
    }

    #[test]
    fn detect_prefers_bubblewrap_then_unshare() {
        let expect = if bwrap::works() {
            Isolation::Bubblewrap
        } else if unshare::works() {
            Isolation::Unshare
        } else {
            Isolation::Plain
        };
        let l = Launcher::detect();
        assert_eq!(l.isolation(), expect);
        assert_eq!(
            l.clone().with_cgroups(CgroupMode::None).cgroups(),
            CgroupMode::None
        );
    }

    #[tokio::test]
    async fn failed_spawn_reports_the_program_and_removes_the_dir() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sb");
        let spec: FunctionSpec =
            serde_json::from_str(r#"{"name":"x","command":["/nonexistent/fn"]}"#).expect("spec");
        let l = Launcher::with(Isolation::Plain).with_cgroups(CgroupMode::None);
        let req = SandboxRequest {
            id: 1,
            spec: &spec,
            dir: dir.clone(),
            extra_env: Vec::new(),
        };
        match l.spawn(req).await {
            Err(SandboxError::Launch { program, .. }) => assert_eq!(program, "/nonexistent/fn"),
            other => panic!("expected Launch, got {:?}", other.map(|s| s.id())),
        }
        assert!(!dir.exists());
    }
}
