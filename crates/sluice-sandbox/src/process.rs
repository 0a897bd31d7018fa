//! A running sandbox: the process the launcher started (the isolation wrapper, or the function
//! itself for a plain process), its captured output (`output`: stdout and stderr), readiness with
//! fail-fast on early exit, the host-side path of its socket, and teardown — SIGKILL to its
//! session and everything in its cgroup (without one, to the leader's descendants, waiting until
//! they are gone), reap, stop its network helper, remove its cgroup and directory, give its user
//! back.

use crate::cgroup::Cgroup;
use crate::family::{self, Member};
use crate::network::Slirp;
use crate::output::Output;
use crate::users::UserLease;
use crate::{Isolation, SandboxError};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::Child;
use tokio::task::JoinHandle;

/// Longest usable Unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

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

/// A running function process.
pub struct Sandbox {
    id: u64,
    isolation: Isolation,
    pid: Option<u32>,
    socket_dir: PathBuf,
    /// Keeps the socket directory reachable by a short path when its own is too long.
    socket_dir_fd: OwnedFd,
    /// The function's socket itself, once it is ready (see [`Sandbox::socket`]).
    pinned: Option<OwnedFd>,
    user: UserLease,
    output: Output,
    /// The tasks reading stdout and stderr.
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitInfo>,
    /// `None` once torn down.
    parts: Option<Parts>,
}

/// What teardown releases.
pub(crate) struct Parts {
    pub child: Child,
    pub cgroup: Option<Cgroup>,
    pub dir: PathBuf,
    pub network: Option<Slirp>,
    /// The OCI runtime's container, deleted at teardown.
    pub oci: Option<crate::oci::Teardown>,
}

/// What [`Sandbox::start`] needs besides the parts.
pub(crate) struct Started {
    pub id: u64,
    pub isolation: Isolation,
    pub socket_dir: PathBuf,
    pub socket_dir_fd: OwnedFd,
    pub user: UserLease,
}

impl Started {
    /// The start of sandbox `id` whose socket directory is `socket_dir`, pinned by an `O_PATH`
    /// descriptor (so that a symlink swapped in later cannot redirect the worker).
    pub(crate) fn open(
        id: u64,
        isolation: Isolation,
        socket_dir: PathBuf,
        user: UserLease,
    ) -> Result<Started, crate::SandboxError> {
        use std::os::unix::fs::OpenOptionsExt;
        let socket_dir_fd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&socket_dir)
            .map_err(crate::launch::io(format!(
                "opening {}",
                socket_dir.display()
            )))?
            .into();
        Ok(Started {
            id,
            isolation,
            socket_dir,
            socket_dir_fd,
            user,
        })
    }
}

fn exit_info(s: ExitStatus) -> ExitInfo {
    ExitInfo {
        code: s.code(),
        signal: s.signal(),
    }
}

impl Sandbox {
    pub(crate) fn start(s: Started, mut parts: Parts) -> Sandbox {
        let (stdout, stderr) = (parts.child.stdout.take(), parts.child.stderr.take());
        let (output, readers) = Output::capture(stdout, stderr);
        Sandbox {
            id: s.id,
            isolation: s.isolation,
            pid: parts.child.id(),
            socket_dir: s.socket_dir,
            socket_dir_fd: s.socket_dir_fd,
            pinned: None,
            user: s.user,
            output,
            readers,
            exited: None,
            parts: Some(parts),
        }
    }

    /// The id it was started with.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Pid (in the launcher's namespace) of the process the launcher started: the function
    /// itself for [`Isolation::Plain`], the isolation wrapper otherwise.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Its isolation.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The host user it runs as.
    pub fn user(&self) -> &UserLease {
        &self.user
    }

    /// A host-side path of `name` in the sandbox's socket directory that this process can
    /// connect to: the real path, or one through `/proc/self/fd` when that is longer than a
    /// socket address holds.
    pub fn host_path(&self, name: &str) -> PathBuf {
        let real = self.socket_dir.join(name);
        if real.as_os_str().len() <= MAX_SOCKET_PATH {
            return real;
        }
        Path::new("/proc/self/fd")
            .join(self.socket_dir_fd.as_raw_fd().to_string())
            .join(name)
    }

    /// The socket `name` in the sandbox's socket directory, pinned: opened without following a
    /// symlink and checked to be a socket, so that a function cannot point the worker at another
    /// sandbox's socket by replacing its own with a symlink. Connect to the returned path
    /// (`/proc/self/fd/N`) while the descriptor is held.
    pub fn pin(&self, name: &str) -> std::io::Result<(OwnedFd, PathBuf)> {
        use std::os::fd::FromRawFd;
        use std::os::unix::fs::FileTypeExt;
        let c = std::ffi::CString::new(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: openat on a directory descriptor we own with a NUL-terminated name.
        let fd = unsafe { libc::openat(self.socket_dir_fd.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = std::fs::File::from(fd);
        if !file.metadata()?.file_type().is_socket() {
            return Err(std::io::Error::other(format!("{name} is not a socket")));
        }
        let fd = OwnedFd::from(file);
        let path = Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string());
        Ok((fd, path))
    }

    /// The path to connect to the function's socket: once the sandbox is ready, its pinned
    /// socket ([`Sandbox::pin`]); before, the host path (see [`Sandbox::host_path`]).
    pub fn socket(&self) -> PathBuf {
        match &self.pinned {
            Some(fd) => Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string()),
            None => self.host_path(crate::SOCKET_NAME),
        }
    }

    /// The socket directory on the host.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cgroup directories holding the sandbox (empty without cgroups or after kill).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.parts
            .as_ref()
            .and_then(|p| p.cgroup.as_ref())
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    /// The sandbox directory (removed by [`Sandbox::kill`]).
    pub fn dir(&self) -> Option<&Path> {
        self.parts.as_ref().map(|p| p.dir.as_path())
    }

    /// The last ~4 KiB of the function's stderr.
    pub fn stderr_tail(&self) -> String {
        self.output.stderr_tail()
    }

    /// Its stdout and stderr (see [`Output`]); stays readable after the sandbox is gone.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Waits until `ready` (the caller's readiness check, e.g. `GET /ready` answering 200)
    /// resolves `Ok`, then pins the function's socket; fails fast with [`SandboxError::Exited`]
    /// if the process ends first, [`SandboxError::NotReady`] when `ready` fails or `timeout`
    /// passes, [`SandboxError::Io`] when the socket is not one (a symlink, say).
    pub async fn wait_ready<E>(
        &mut self,
        ready: impl std::future::Future<Output = Result<(), E>>,
        timeout: Duration,
    ) -> Result<(), SandboxError> {
        if self.try_exited().is_some() {
            return Err(self.exited_error().await);
        }
        let Some(parts) = self.parts.as_mut() else {
            return Err(self.exited_error().await);
        };
        let waited = tokio::select! {
            r = tokio::time::timeout(timeout, ready) => Ok(r),
            s = parts.child.wait() => Err(s),
        };
        match waited {
            Ok(Ok(Ok(()))) => {
                let (fd, _) = self
                    .pin(crate::SOCKET_NAME)
                    .map_err(|source| SandboxError::Io {
                        what: "the function's socket".into(),
                        source,
                    })?;
                self.pinned = Some(fd);
                Ok(())
            }
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

    /// Builds `Exited`, giving the readers a moment to drain what the process wrote last.
    async fn exited_error(&mut self) -> SandboxError {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut unfinished = Vec::new();
        for mut r in std::mem::take(&mut self.readers) {
            // A finished handle must not be polled again; an unfinished one is kept.
            if tokio::time::timeout_at(deadline, &mut r).await.is_err() {
                unfinished.push(r);
            }
        }
        self.readers = unfinished;
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

    /// SIGKILLs every process of the sandbox, reaps it, stops its network, removes its
    /// cgroup and its directory. Idempotent.
    pub async fn kill(&mut self) {
        let Some(mut parts) = self.parts.take() else {
            return;
        };
        let family = parts.signal();
        let reaped = tokio::time::timeout(Duration::from_secs(5), parts.child.wait()).await;
        let killed = ExitInfo {
            code: None,
            signal: Some(libc::SIGKILL),
        };
        let info = reaped.ok().and_then(Result::ok).map_or(killed, exit_info);
        self.exited.get_or_insert(info);
        // Without a cgroup, until everything the function started is gone (bounded).
        for _ in 0..400 {
            if family.iter().all(Member::gone) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(cg) = &parts.cgroup {
            for _ in 0..200 {
                cg.kill_all();
                if cg.remove() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for r in self.readers.drain(..) {
            r.abort();
        }
        let dir = parts.dir.clone();
        let network = parts.network.take();
        let oci = parts.oci.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(n) = network {
                n.stop();
            }
            if let Some(o) = oci {
                o.delete();
            }
            remove_dir(&dir)
        })
        .await;
    }
}

pub(crate) fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove sandbox dir");
        }
    }
}

impl Parts {
    /// SIGKILL to the session (while the leader is unreaped, so the id is still ours), the
    /// leader, and everything in the cgroup; without a cgroup, to each of the leader's
    /// descendants too, which it returns (see [`family`](crate::family)).
    fn signal(&mut self) -> Vec<Member> {
        let family = match (&self.cgroup, self.child.id()) {
            (None, Some(pid)) => family::descendants(pid),
            _ => Vec::new(),
        };
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on our own unreaped child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.start_kill();
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        for m in &family {
            m.kill();
        }
        family
    }

    /// Synchronous best-effort teardown for Drop: waits up to ~50 ms for the processes to go,
    /// then removes the dir; a cgroup still busy by then is left to a background task when a
    /// runtime is at hand.
    fn teardown_now(mut self) {
        let family = self.signal();
        let mut cgroup_gone = self.cgroup.is_none();
        for _ in 0..10 {
            let reaped =
                matches!(self.child.try_wait(), Ok(Some(_))) && family.iter().all(Member::gone);
            if let Some(cg) = &self.cgroup {
                cg.kill_all();
                cgroup_gone = cg.remove();
            }
            if reaped && cgroup_gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(n) = self.network.take() {
            n.stop();
        }
        if let Some(o) = self.oci.take() {
            o.delete();
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
        for r in self.readers.drain(..) {
            r.abort();
        }
        if let Some(parts) = self.parts.take() {
            parts.teardown_now();
        }
    }
}
