//! A running sandbox: the function's process (or its isolation wrapper), its client, the captured
//! stderr tail, readiness with fail-fast on early exit, and teardown — SIGKILL to the process
//! group and everything in the cgroup, reap, remove the cgroup and the sandbox dir.

use super::cgroup::Cgroup;
use super::launch::Layout;
use super::{ExitInfo, Isolation, SandboxError};
use crate::protocol::FunctionClient;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr};
use tokio::task::JoinHandle;

/// How much of the function's stderr is kept.
pub const STDERR_TAIL: usize = 4096;

/// A running function process.
pub struct Sandbox {
    id: u64,
    isolation: Isolation,
    pid: Option<u32>,
    client: FunctionClient,
    tail: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    exited: Option<ExitInfo>,
    /// `None` once torn down.
    parts: Option<Parts>,
}

/// What teardown releases.
struct Parts {
    child: Child,
    cgroup: Option<Cgroup>,
    dir: PathBuf,
}

fn exit_info(s: ExitStatus) -> ExitInfo {
    ExitInfo {
        code: s.code(),
        signal: s.signal(),
    }
}

async fn capture(mut err: ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = err.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&buf[..n]);
            let excess = t.len().saturating_sub(STDERR_TAIL);
            t.drain(..excess);
        }
    }
}

impl Sandbox {
    pub(super) fn start(
        id: u64,
        isolation: Isolation,
        mut child: Child,
        cgroup: Option<Cgroup>,
        layout: Layout,
    ) -> Sandbox {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let reader = child
            .stderr
            .take()
            .map(|e| tokio::spawn(capture(e, tail.clone())));
        Sandbox {
            id,
            isolation,
            pid: child.id(),
            client: FunctionClient::new(layout.socket),
            tail,
            reader,
            exited: None,
            parts: Some(Parts {
                child,
                cgroup,
                dir: layout.dir,
            }),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Pid (in the worker's namespace) of the process the worker started: the function itself
    /// for [`Isolation::Plain`], the isolation wrapper otherwise.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn client(&self) -> &FunctionClient {
        &self.client
    }

    /// The cgroup directories holding the sandbox (empty without cgroups or after kill).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.parts
            .as_ref()
            .and_then(|p| p.cgroup.as_ref())
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    /// The sandbox dir (removed by [`Sandbox::kill`]).
    pub fn dir(&self) -> Option<&Path> {
        self.parts.as_ref().map(|p| p.dir.as_path())
    }

    /// The last ~4 KiB of the function's stderr.
    pub fn stderr_tail(&self) -> String {
        let t = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        String::from_utf8_lossy(&t).trim_end().to_string()
    }

    /// Waits until `/ready` answers 200; fails fast with [`SandboxError::Exited`] if the process
    /// ends first, or [`SandboxError::NotReady`] after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), SandboxError> {
        if self.try_exited().is_some() {
            return Err(self.exited_error().await);
        }
        let Some(parts) = self.parts.as_mut() else {
            return Err(self.exited_error().await);
        };
        let waited = tokio::select! {
            r = self.client.wait_ready(timeout) => Ok(r),
            s = parts.child.wait() => Err(s),
        };
        match waited {
            Ok(Ok(())) => Ok(()),
            Err(Ok(status)) => {
                self.exited = Some(exit_info(status));
                Err(self.exited_error().await)
            }
            _ if self.try_exited().is_some() => Err(self.exited_error().await),
            _ => Err(SandboxError::NotReady {
                timeout,
                stderr_tail: self.stderr_tail(),
            }),
        }
    }

    /// Builds `Exited`, giving the stderr reader a moment to drain what the process wrote last.
    async fn exited_error(&mut self) -> SandboxError {
        if let Some(mut r) = self.reader.take() {
            // A finished handle must not be polled again; an unfinished one is kept.
            if tokio::time::timeout(Duration::from_millis(200), &mut r)
                .await
                .is_err()
            {
                self.reader = Some(r);
            }
        }
        SandboxError::Exited {
            code: self.exited.and_then(|e| e.code),
            stderr_tail: self.stderr_tail(),
        }
    }

    /// Non-blocking: `Some` once the process has ended (or the sandbox was killed).
    pub fn try_exited(&mut self) -> Option<ExitInfo> {
        if self.exited.is_none() {
            if let Some(p) = self.parts.as_mut() {
                if let Ok(Some(s)) = p.child.try_wait() {
                    self.exited = Some(exit_info(s));
                }
            }
        }
        self.exited
    }

    /// SIGKILLs every process of the sandbox, reaps it, removes its cgroup and its dir.
    /// Idempotent.
    pub async fn kill(&mut self) {
        let Some(mut parts) = self.parts.take() else {
            return;
        };
        parts.signal();
        let reaped = tokio::time::timeout(Duration::from_secs(5), parts.child.wait()).await;
        let killed = ExitInfo {
            code: None,
            signal: Some(libc::SIGKILL),
        };
        let info = reaped.ok().and_then(Result::ok).map_or(killed, exit_info);
        self.exited.get_or_insert(info);
        if let Some(cg) = &parts.cgroup {
            for _ in 0..200 {
                cg.kill_all();
                if cg.remove() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        let dir = parts.dir.clone();
        let _ = tokio::task::spawn_blocking(move || remove_dir(&dir)).await;
    }
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove sandbox dir");
        }
    }
}

impl Parts {
    /// SIGKILL to the process group (while the leader is unreaped, so the id is still ours),
    /// the leader, and everything in the cgroup.
    fn signal(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on our own unreaped child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.start_kill();
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    /// Synchronous best-effort teardown for Drop: waits up to ~50 ms for the processes to go,
    /// then removes the dir; a cgroup still busy by then is left to a background task when a
    /// runtime is at hand.
    fn teardown_now(mut self) {
        self.signal();
        let mut cgroup_gone = self.cgroup.is_none();
        for _ in 0..10 {
            let reaped = matches!(self.child.try_wait(), Ok(Some(_)));
            if let Some(cg) = &self.cgroup {
                cg.kill_all();
                cgroup_gone = cg.remove();
            }
            if reaped && cgroup_gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        remove_dir(&self.dir);
        let Some(cg) = self.cgroup.take().filter(|_| !cgroup_gone) else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for _ in 0..500 {
                    cg.kill_all();
                    if cg.remove() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tracing::warn!(cgroup = ?cg.dirs(), "cannot remove a dropped sandbox's cgroup");
            });
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        if let Some(parts) = self.parts.take() {
            parts.teardown_now();
        }
    }
}
