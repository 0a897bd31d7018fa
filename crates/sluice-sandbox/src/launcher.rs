//! [`Launcher`]: made once from a [`LauncherConfig`]. It decides the isolation (auto detection
//! tries bubblewrap, then unshare with a helper, and never falls back to a plain process; plain
//! needs `allow_unisolated` and is logged loudly), the cgroup hierarchy, the users sandboxes run
//! as, and what sandboxes may never see; it sweeps leftovers and starts sandboxes.

use crate::cgroup::{self, CgroupMode};
use crate::gpu::GpuPlan;
use crate::unshare::Helper;
use crate::users::{UidPool, UidRange, UserLease};
use crate::{bwrap, launch, sweep, unshare, Isolation, Sandbox, SandboxError, SandboxSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which isolation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationChoice {
    /// bubblewrap where it works, else unshare; an error if neither works.
    Auto,
    /// Exactly this one (an error if it does not work here).
    Only(Isolation),
}

/// How to make a launcher.
#[derive(Clone, Debug)]
pub struct LauncherConfig {
    /// The isolation.
    pub isolation: IsolationChoice,
    /// Required for [`Isolation::Plain`]: the operator accepts running unisolated code.
    pub allow_unisolated: bool,
    /// Where sandbox directories go (`<root>/w<pid>-<id>`), created if missing.
    pub sandbox_root: PathBuf,
    /// Paths no sandbox may have bound (the data directory, the configuration…); the sandbox
    /// root is always hidden.
    pub hidden: Vec<PathBuf>,
    /// Host uids for sandboxes when the launcher runs as root.
    pub uids: UidRange,
    /// The program whose init mode builds unshare sandboxes (default: this executable, when it
    /// is one).
    pub helper: Option<PathBuf>,
    /// The cgroup file system (default `/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Where the host's CDI specs are looked for, for GPU sandboxes on image roots (default
    /// [`gpu::CDI_DIRS`](crate::gpu::CDI_DIRS)).
    pub cdi_dirs: Vec<PathBuf>,
}

impl LauncherConfig {
    /// Auto isolation, no unisolated code, sandboxes under `sandbox_root`.
    pub fn new(sandbox_root: PathBuf) -> LauncherConfig {
        LauncherConfig {
            isolation: IsolationChoice::Auto,
            allow_unisolated: false,
            sandbox_root,
            hidden: Vec::new(),
            uids: UidRange::default(),
            helper: None,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cdi_dirs: crate::gpu::CDI_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Inner {
    pub isolation: Isolation,
    pub cgroups: CgroupMode,
    pub cgroup_root: PathBuf,
    pub sandbox_root: PathBuf,
    pub hidden: Vec<PathBuf>,
    pub users: UidPool,
    pub root: bool,
    pub helper: Option<PathBuf>,
    pub path_var: String,
    pub seccomp: Vec<u8>,
    pub cdi_dirs: Vec<PathBuf>,
    /// `bwrap` found in the launcher's `PATH` (the sandbox's own `PATH` may not have it).
    pub bwrap: PathBuf,
    /// The host's GPU driver plan for image roots, found on first use.
    pub gpu: Arc<std::sync::OnceLock<Arc<GpuPlan>>>,
}

impl Inner {
    /// The host's GPU driver plan for image roots (found once: CDI specs, else `ldconfig -p`).
    pub(crate) fn gpu_plan(&self) -> Arc<GpuPlan> {
        self.gpu
            .get_or_init(|| {
                let plan = GpuPlan::discover(&self.cdi_dirs);
                tracing::info!(source = ?plan.source, libraries = plan.libs.len(),
                    devices = plan.devices.len(), ignored = ?plan.ignored,
                    "GPU driver files for image roots");
                Arc::new(plan)
            })
            .clone()
    }
}

/// A limit or protection a launcher cannot apply on this host (see
/// [`Launcher::limits_not_enforced`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotEnforced {
    /// A short, stable name: `memory`, `cpu`, `pids`, `separate_users` or `isolation`.
    pub what: &'static str,
    /// Why, in words.
    pub why: String,
}

/// Starts sandboxes with one isolation, cgroup mode and user policy; cheap to clone.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub(crate) inner: Arc<Inner>,
}

fn helper(cfg: &LauncherConfig) -> Option<PathBuf> {
    match &cfg.helper {
        Some(p) => Helper::works(p).then(|| p.clone()),
        None => Helper::current_exe().map(|h| h.program),
    }
}

impl Launcher {
    /// Whether `isolation` works on this host (trial runs); unshare also needs a helper.
    pub fn available(isolation: Isolation, helper_program: Option<&Path>) -> bool {
        match isolation {
            Isolation::Bubblewrap => bwrap::works(),
            Isolation::Unshare => {
                let h =
                    helper_program.map_or_else(|| Helper::current_exe().is_some(), Helper::works);
                h && unshare::works()
            }
            Isolation::Oci(r) => crate::oci::works(r),
            Isolation::Plain => true,
        }
    }

    /// A launcher for `cfg`, or why none can be made.
    pub fn new(cfg: LauncherConfig) -> Result<Launcher, SandboxError> {
        let helper = helper(&cfg);
        let isolation = match cfg.isolation {
            IsolationChoice::Auto => {
                if bwrap::works() {
                    Isolation::Bubblewrap
                } else if helper.is_some() && unshare::works() {
                    Isolation::Unshare
                } else {
                    return Err(SandboxError::Config(
                        "neither bubblewrap nor unshare can create a sandbox here; install \
                         bubblewrap, or set isolation = \"plain\" and allow_unisolated = true to \
                         run functions unisolated"
                            .into(),
                    ));
                }
            }
            IsolationChoice::Only(Isolation::Plain) if !cfg.allow_unisolated => {
                return Err(SandboxError::Config(
                    "isolation \"plain\" runs untrusted code unisolated: it needs \
                     allow_unisolated = true"
                        .into(),
                ))
            }
            IsolationChoice::Only(Isolation::Unshare) if helper.is_none() => {
                return Err(SandboxError::Config(
                    "unshare isolation needs the sandbox helper (this executable does not serve \
                     as one)"
                        .into(),
                ))
            }
            IsolationChoice::Only(i) => {
                if !Launcher::available(i, helper.as_deref()) {
                    return Err(SandboxError::Config(format!(
                        "{i} does not work on this host"
                    )));
                }
                i
            }
        };
        if isolation == Isolation::Plain {
            tracing::warn!(
                "SANDBOXES ARE PLAIN PROCESSES: functions run UNISOLATED (no namespaces, no \
                 minimal root, no seccomp); allowed by allow_unisolated"
            );
        }
        std::fs::create_dir_all(&cfg.sandbox_root).map_err(|source| SandboxError::Io {
            what: format!("creating {}", cfg.sandbox_root.display()),
            source,
        })?;
        let sandbox_root =
            std::fs::canonicalize(&cfg.sandbox_root).map_err(|source| SandboxError::Io {
                what: format!("resolving {}", cfg.sandbox_root.display()),
                source,
            })?;
        let mut hidden: Vec<PathBuf> = cfg
            .hidden
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        hidden.push(sandbox_root.clone());
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            // Sandbox users reach their own directories through it, and list nothing.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&sandbox_root, std::fs::Permissions::from_mode(0o711));
        }
        let seccomp = crate::seccomp::program()
            .map(|p| crate::seccomp::to_bytes(&p))
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let cgroups = cgroup::detect(&cfg.cgroup_root);
        let l = Launcher {
            inner: Arc::new(Inner {
                isolation,
                cgroups,
                cgroup_root: cfg.cgroup_root.clone(),
                sandbox_root,
                hidden,
                users: UidPool::new(cfg.uids, root),
                root,
                helper: helper.filter(|_| isolation == Isolation::Unshare),
                path_var: std::env::var("PATH")
                    .unwrap_or_else(|_| crate::rootfs::DEFAULT_PATH.into()),
                seccomp,
                cdi_dirs: cfg.cdi_dirs.clone(),
                bwrap: std::env::var("PATH")
                    .ok()
                    .and_then(|p| crate::resolve::resolve(bwrap::PROGRAM, &p))
                    .map_or_else(|| PathBuf::from(bwrap::PROGRAM), |p| p.path),
                gpu: Arc::default(),
            }),
        };
        tracing::info!(isolation = %isolation, cgroups = %cgroups, root, "sandbox launcher");
        Ok(l)
    }

    /// What this launcher cannot enforce on this host, each with why, for its caller to report
    /// once: without usable cgroups the `memory`, `cpu` and `pids` limits (and `/tmp` counting
    /// against memory); without root, `separate_users` (every sandbox runs as the launcher's
    /// own user); with plain processes, `isolation`. Empty when everything is enforced.
    pub fn limits_not_enforced(&self) -> Vec<NotEnforced> {
        let inner = &self.inner;
        let mut out = Vec::new();
        if inner.cgroups == CgroupMode::None {
            let why = format!(
                "no writable cgroup hierarchy under {} (needs root or a delegated cgroup)",
                inner.cgroup_root.display()
            );
            for what in ["memory", "cpu", "pids"] {
                out.push(NotEnforced {
                    what,
                    why: why.clone(),
                });
            }
        }
        if !inner.root {
            // SAFETY: geteuid has no preconditions.
            let uid = unsafe { libc::geteuid() };
            out.push(NotEnforced {
                what: "separate_users",
                why: format!(
                    "not root: every sandbox runs as uid {uid}, so sandboxes can read each \
                     other's files"
                ),
            });
        }
        if inner.isolation == Isolation::Plain {
            out.push(NotEnforced {
                what: "isolation",
                why: "plain processes: no namespaces, minimal root or seccomp".into(),
            });
        }
        out
    }

    /// Overrides the detected cgroup mode (`CgroupMode::None` runs without limits).
    pub fn with_cgroups(self, mode: CgroupMode) -> Launcher {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.cgroups = mode;
        Launcher {
            inner: Arc::new(inner),
        }
    }

    /// The isolation in use.
    pub fn isolation(&self) -> Isolation {
        self.inner.isolation
    }

    /// The cgroup hierarchy in use.
    pub fn cgroups(&self) -> CgroupMode {
        self.inner.cgroups
    }

    /// Where sandbox directories go.
    pub fn sandbox_root(&self) -> &Path {
        &self.inner.sandbox_root
    }

    /// A user to share between sandboxes (a pipeline group, all MPS clients); `None` when the
    /// uid range is used up.
    pub fn lease_user(&self) -> Option<UserLease> {
        self.inner.users.lease()
    }

    /// The socket directory of sandbox `id` as the function sees it (for environment values
    /// that name sockets in it): [`crate::SOCKET_DIR`], or the host path for plain processes.
    pub fn inner_socket_dir(&self, id: u64) -> PathBuf {
        match self.inner.isolation {
            Isolation::Plain => launch::socket_dir(&self.inner.sandbox_root, id),
            _ => PathBuf::from(crate::SOCKET_DIR),
        }
    }

    /// Removes what a launcher killed without cleanup left behind: the `sluice/w<pid>-*` cgroups
    /// whose launcher process is gone, after SIGKILLing any sandbox process still in them, and
    /// such sandbox directories (a live launcher's are spared). Call once at start. Returns how
    /// many went.
    pub fn sweep_stale(&self) -> usize {
        let n = cgroup::sweep(self.inner.cgroups, &self.inner.cgroup_root)
            + sweep::sandbox_dirs(&self.inner.sandbox_root);
        if n > 0 {
            tracing::info!(removed = n, "removed stale sandbox cgroups and directories");
        }
        n
    }

    /// Starts a sandbox; the caller then waits for [`Sandbox::wait_ready`]. Its directory is
    /// removed by kill, drop, or a failed start.
    pub async fn spawn(&self, spec: SandboxSpec) -> Result<Sandbox, SandboxError> {
        launch::spawn(self.inner.clone(), spec).await
    }
}
