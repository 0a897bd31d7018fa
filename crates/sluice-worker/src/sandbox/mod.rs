//! The worker's side of sandboxes, a thin adapter over `sluice_sandbox` (the one launcher for
//! all user code): [`sandbox_spec`] turns a registered [`FunctionSpec`] and the worker's extra
//! environment into a launcher spec — the one place functions, pipeline stage instances and
//! `sluice profile` all go through — and [`Sandbox`] pairs a running sandbox with the function
//! protocol's client on its socket. A sandbox that does not start says why in a [`StartError`],
//! with its stderr and, for a missing Python module, a hint ([`StartError::hint`]).

use crate::function::FunctionSpec;
use crate::protocol::FunctionClient;
use sluice_sandbox::{ImageRoot, Limits, OutputSink, Root, SandboxSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use sluice_sandbox::{
    CgroupMode, ExitInfo, Isolation, IsolationChoice, Launcher, LauncherConfig, NotEnforced,
    Output, SandboxError, UserLease, SOCKET_DIR, STDERR_TAIL,
};

/// Why a sandbox did not start: the launcher's or the readiness check's reason, and the end of
/// what the function wrote to stderr (`reason; stderr: …`, or the reason alone).
#[derive(Debug, Clone, PartialEq)]
pub struct StartError {
    /// What failed.
    pub reason: String,
    /// The end of the function's stderr (empty if it wrote none).
    pub stderr_tail: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stderr_tail.as_str() {
            "" => f.write_str(&self.reason),
            tail => write!(f, "{}; stderr: {tail}", self.reason),
        }
    }
}

impl std::error::Error for StartError {}

impl StartError {
    /// Advice for a failure the stderr explains: a Python module that is not installed.
    pub fn hint(&self) -> Option<&'static str> {
        python_hint(&self.stderr_tail)
    }
}

/// `text` on one log line: its lines joined by ` | `.
pub fn one_line(text: &str) -> String {
    text.trim_end().replace('\n', " | ")
}

/// Advice when `stderr` shows a Python module missing (`ModuleNotFoundError`).
pub fn python_hint(stderr: &str) -> Option<&'static str> {
    stderr.contains("ModuleNotFoundError").then_some(
        "a Python package is missing: scripts/install-python-deps.sh installs the example \
         functions' packages (into the python3 the worker finds; docs/packaging.md says where \
         a function's packages come from)",
    )
}

/// One line naming what `missing` lists, grouped by reason:
/// `memory, cpu, pids (no writable cgroup hierarchy …); separate_users (not root: …)`.
pub fn describe_not_enforced(missing: &[NotEnforced]) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for m in missing {
        match groups.iter_mut().find(|(_, why)| *why == m.why) {
            Some((names, _)) => names.push(m.what),
            None => groups.push((vec![m.what], &m.why)),
        }
    }
    groups
        .iter()
        .map(|(names, why)| format!("{} ({why})", names.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The worker's environment entries that name directories a sandbox must share read-write:
/// the MPS pipe and log directories, a pipeline group's shared memory.
const SHARED_DIRS: [&str; 3] = [
    "CUDA_MPS_PIPE_DIRECTORY",
    "CUDA_MPS_LOG_DIRECTORY",
    "SLUICE_SHM_DIR",
];

/// What to start.
#[derive(Debug, Clone)]
pub struct SandboxRequest<'a> {
    /// Unique among live sandboxes of this host: names its directory and cgroup.
    pub id: u64,
    /// The function.
    pub spec: &'a FunctionSpec,
    /// The worker's environment: device placement (`CUDA_VISIBLE_DEVICES`, `CUDA_MPS_*`, the
    /// shim), the stage protocol.
    pub extra_env: Vec<(String, String)>,
    /// Host files the worker adds read-only (the shim library).
    pub read_only: Vec<PathBuf>,
    /// A user shared with other sandboxes (a pipeline group, MPS clients); default: its own.
    pub user: Option<UserLease>,
}

/// The launcher spec of `req`: a command on the host's minimal root, or an image function
/// (`spec.image`) on its image's root with the command, workdir, environment and user the
/// worker resolved. An image function that was never resolved gets a root that does not exist,
/// so it can never start on the host (see also [`Sandbox::start`]).
pub fn sandbox_spec(req: &SandboxRequest<'_>) -> SandboxSpec {
    let spec = req.spec;
    let mut s = host_spec(req);
    if spec.image.is_some() || spec.resolved.is_some() {
        let (root, user) = match &spec.resolved {
            Some(img) => (img.root.clone(), (img.user.uid, img.user.gid)),
            None => (PathBuf::new(), (0, 0)),
        };
        if let Some(img) = &spec.resolved {
            s.command = img.command.clone();
            s.env = img.env.clone();
            s.workdir = Some(img.workdir.clone());
        }
        s.files = Vec::new();
        s.root = Root::Image(ImageRoot { path: root, user });
    }
    s
}

fn host_spec(req: &SandboxRequest<'_>) -> SandboxSpec {
    let spec = req.spec;
    let r = &spec.resources;
    let env_dir = |k: &str| {
        req.extra_env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_dir())
    };
    SandboxSpec {
        id: req.id,
        command: spec.command.clone(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        extra_env: req.extra_env.clone(),
        workdir: spec.workdir.clone(),
        files: spec.files.clone(),
        read_only: req.read_only.clone(),
        read_write: SHARED_DIRS.iter().filter_map(|k| env_dir(k)).collect(),
        gpu: r.gpu,
        network: r.network,
        limits: Limits {
            memory_bytes: r.memory_mb.saturating_mul(1 << 20),
            cpus: r.cpus,
            pids: r.pids,
            tmp_bytes: r.tmp_mb.saturating_mul(1 << 20),
        },
        user: req.user.clone(),
        ..SandboxSpec::default()
    }
}

/// A running function: the sandbox and a client of its socket.
pub struct Sandbox {
    inner: sluice_sandbox::Sandbox,
    client: FunctionClient,
}

impl Sandbox {
    /// Starts `req` with `launcher`; the caller then waits for [`Sandbox::wait_ready`].
    pub async fn start(
        launcher: &Launcher,
        req: SandboxRequest<'_>,
    ) -> Result<Sandbox, SandboxError> {
        if req.spec.image.is_some() && req.spec.resolved.is_none() {
            return Err(SandboxError::BadSpec(format!(
                "function {}: its image is not resolved on this worker",
                req.spec.name
            )));
        }
        let inner = launcher.spawn(sandbox_spec(&req)).await?;
        let client = FunctionClient::new(inner.socket());
        Ok(Sandbox { inner, client })
    }

    /// Starts `req` and waits until it is ready; one that does not get ready is killed and its
    /// stderr is in the error. A sandbox whose isolation failed to set it up (bubblewrap's or
    /// init's own error, not the function's), whether before it was ready or while its network
    /// was connected, is started once more. `sink`, if given, gets the sandbox's output from its
    /// start on.
    pub async fn start_ready(
        launcher: &Launcher,
        req: SandboxRequest<'_>,
        timeout: Duration,
        sink: Option<Arc<dyn OutputSink>>,
    ) -> Result<Sandbox, StartError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut sandbox = match Sandbox::start(launcher, req.clone()).await {
                Ok(s) => s,
                Err(e) if tries == 1 && e.is_setup_failure() => {
                    tracing::warn!(id = req.id, "sandbox setup failed ({e:?}); trying again");
                    continue;
                }
                Err(e) => {
                    let stderr_tail = match &e {
                        SandboxError::Exited { stderr_tail, .. } => stderr_tail.clone(),
                        _ => String::new(),
                    };
                    return Err(StartError {
                        reason: e.to_string(),
                        stderr_tail,
                    });
                }
            };
            if let Some(sink) = &sink {
                sandbox.output().attach(sink.clone());
            }
            match sandbox.wait_ready(timeout).await {
                Ok(()) => return Ok(sandbox),
                Err(e) => {
                    let tail = sandbox.stderr_tail();
                    sandbox.kill().await;
                    if tries == 1 && e.is_setup_failure() {
                        tracing::warn!(id = req.id, "sandbox setup failed ({tail}); trying again");
                        continue;
                    }
                    return Err(StartError {
                        reason: e.to_string(),
                        stderr_tail: tail,
                    });
                }
            }
        }
    }

    /// The id it was started with.
    pub fn id(&self) -> u64 {
        self.inner.id()
    }

    /// Pid of the process the worker started (the isolation wrapper, or the function).
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid()
    }

    /// Its isolation.
    pub fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }

    /// The host user it runs as.
    pub fn user(&self) -> &UserLease {
        self.inner.user()
    }

    /// The client of the function's socket.
    pub fn client(&self) -> &FunctionClient {
        &self.client
    }

    /// The socket `name` in its socket directory, pinned (see `sluice_sandbox::Sandbox::pin`):
    /// connect to the path while holding the descriptor.
    pub fn pin(&self, name: &str) -> std::io::Result<(std::os::fd::OwnedFd, PathBuf)> {
        self.inner.pin(name)
    }

    /// Its directory on the host (removed by [`Sandbox::kill`]).
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir()
    }

    /// The cgroup directories holding it.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.inner.cgroup_dirs()
    }

    /// The last ~4 KiB of its stderr.
    pub fn stderr_tail(&self) -> String {
        self.inner.stderr_tail()
    }

    /// What it writes to stdout and stderr.
    pub fn output(&self) -> &Output {
        self.inner.output()
    }

    /// Waits until `/ready` answers 200; fails fast if the process ends first. From then on
    /// the client reaches the socket the function made, whatever later becomes of its path.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), SandboxError> {
        let client = self.client.clone();
        self.inner
            .wait_ready(client.wait_ready(timeout), timeout)
            .await?;
        self.client = FunctionClient::new(self.inner.socket());
        Ok(())
    }

    /// `Some` once the process has ended (or the sandbox was killed).
    pub fn try_exited(&mut self) -> Option<ExitInfo> {
        self.inner.try_exited()
    }

    /// Kills everything in it and removes its cgroup and directory. Idempotent.
    pub async fn kill(&mut self) {
        self.inner.kill().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_limits_and_the_worker_shares_only_existing_directories() {
        let t = tempfile::tempdir().expect("tempdir");
        let spec: FunctionSpec = serde_json::from_str(
            r#"{"name":"f","command":["python3","m.py"],"files":["/opt/m"],
                "resources":{"memory_mb":128,"tmp_mb":8,"pids":32,"network":true,"gpu":true}}"#,
        )
        .expect("spec");
        let req = SandboxRequest {
            id: 9,
            spec: &spec,
            extra_env: vec![
                (
                    "CUDA_MPS_PIPE_DIRECTORY".into(),
                    t.path().display().to_string(),
                ),
                ("SLUICE_SHM_DIR".into(), "/no/such/dir".into()),
            ],
            read_only: vec![],
            user: None,
        };
        let s = sandbox_spec(&req);
        assert_eq!(s.limits.memory_bytes, 128 << 20);
        assert_eq!(s.limits.tmp_bytes, 8 << 20);
        assert_eq!(s.limits.pids, 32);
        assert!(s.network && s.gpu);
        assert_eq!(s.read_write, vec![t.path().to_path_buf()]);
        assert_eq!(s.files, vec![PathBuf::from("/opt/m")]);
    }
}
