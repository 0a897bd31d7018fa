//! Starting a sandbox: its directory (`<root>/w<pid>-<id>`, owned by the sandbox's user, with the
//! socket directory `run/`), the plan, the cgroup, the isolation's command with its inherited
//! descriptors and what the new process does before exec (`preexec`), then the network, when
//! asked. Also the trial runs the launcher's detection relies on.

use crate::cgroup::Cgroup;
use crate::init::{InitPlan, NET_GO_FD, NET_READY_FD, PLAN_FD};
use crate::launcher::Inner;
use crate::network::{self, pipe, read_within};
use crate::plan::{Mount, Plan};
use crate::preexec::{last_cap, Inherit, PreExec};
use crate::process::{remove_dir, Parts, Sandbox, Started};
use crate::reveal::{self, Reveal};
use crate::rootfs::{self, Context, DEFAULT_PATH};
use crate::spec::Root;
use crate::users::UserLease;
use crate::{
    bwrap, cgroup, image_root, unshare, Isolation, SandboxError, SandboxSpec, SOCKET_NAME,
};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a networked sandbox may take to create its namespaces.
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket directory of sandbox `id` on the host.
pub(crate) fn socket_dir(root: &Path, id: u64) -> PathBuf {
    root.join(cgroup::name(id)).join("run")
}

/// Maps an I/O error to [`SandboxError::Io`] saying what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// A directory of the sandbox's own (mode 0700, owned by its user).
pub(crate) fn own_dir(p: &Path, user: &UserLease) -> Result<(), SandboxError> {
    std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("chmod {}", p.display())))?;
    user.chown(p).map_err(io(format!("chown {}", p.display())))
}

/// A pipe holding `data` (read end returned; the data must fit the pipe buffer).
fn data_pipe(data: &[u8]) -> Result<OwnedFd, SandboxError> {
    let (r, w) = pipe().map_err(io("pipe"))?;
    File::from(w)
        .write_all(data)
        .map_err(io("writing a pipe"))?;
    Ok(r)
}

/// The command for the isolation, with the descriptors it inherits.
struct Prepared {
    cmd: Command,
    inherit: Inherit,
    /// Descriptors the parent keeps until the child has started, then drops.
    child_ends: Vec<OwnedFd>,
    /// Network sync: read from `ready`, then write to `go`.
    net: Option<(OwnedFd, OwnedFd)>,
    /// Host paths the sandbox's user must be able to reach.
    trusted: Vec<PathBuf>,
}

fn bubblewrap(plan: &Plan, inner: &Inner, network: bool) -> Result<Prepared, SandboxError> {
    let mut child_ends = Vec::new();
    let seccomp = data_pipe(&inner.seccomp)?;
    let mut fds = bwrap::Fds {
        seccomp: Some(seccomp.as_raw_fd()),
        ..bwrap::Fds::default()
    };
    child_ends.push(seccomp);
    for m in &plan.mounts {
        if let Mount::File { data, .. } = m {
            let r = data_pipe(data.as_bytes())?;
            fds.files.push(r.as_raw_fd());
            child_ends.push(r);
        }
    }
    let mut net = None;
    if network {
        let (info_r, info_w) = pipe().map_err(io("pipe"))?;
        let (block_r, block_w) = pipe().map_err(io("pipe"))?;
        fds.info = Some(info_w.as_raw_fd());
        fds.block = Some(block_r.as_raw_fd());
        child_ends.extend([info_w, block_r]);
        net = Some((info_r, block_w));
    }
    let inherit = child_ends.iter().map(|f| (f.as_raw_fd(), None)).collect();
    // Found in the launcher's PATH: the environment below is the sandbox's.
    let mut cmd = Command::new(&inner.bwrap);
    cmd.args(bwrap::args(plan, &fds))
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)));
    Ok(Prepared {
        cmd,
        inherit,
        child_ends,
        net,
        trusted: plan.trusted.clone(),
    })
}

fn unshare_mode(plan: &Plan, helper: &Path, network: bool) -> Result<Prepared, SandboxError> {
    let init = InitPlan {
        plan: plan.clone(),
        network,
    };
    let json = serde_json::to_vec(&init).map_err(|e| SandboxError::BadSpec(e.to_string()))?;
    let trusted = plan.trusted.clone();
    let plan_r = data_pipe(&json)?;
    let mut inherit = vec![(plan_r.as_raw_fd(), Some(PLAN_FD))];
    let mut child_ends = vec![plan_r];
    let mut net = None;
    if network {
        let (ready_r, ready_w) = pipe().map_err(io("pipe"))?;
        let (go_r, go_w) = pipe().map_err(io("pipe"))?;
        inherit.push((ready_w.as_raw_fd(), Some(NET_READY_FD)));
        inherit.push((go_r.as_raw_fd(), Some(NET_GO_FD)));
        child_ends.extend([ready_w, go_r]);
        net = Some((ready_r, go_w));
    }
    let mut cmd = Command::new(unshare::PROGRAM);
    cmd.args(unshare::args(helper, plan.inner_ids()))
        .env_clear()
        .env("PATH", DEFAULT_PATH);
    Ok(Prepared {
        cmd,
        inherit,
        child_ends,
        net,
        trusted,
    })
}

fn plain(
    spec: &SandboxSpec,
    dir: &Path,
    socket: &Path,
    path_var: &str,
) -> Result<Prepared, SandboxError> {
    let Some(program) = spec.command.first().filter(|p| !p.is_empty()) else {
        return Err(SandboxError::BadSpec("command names no program".into()));
    };
    let tmp = dir.join("tmp");
    let mut cmd = Command::new(program);
    cmd.args(&spec.command[1..])
        .current_dir(spec.workdir.as_deref().unwrap_or(&tmp))
        .env_clear()
        .env("PATH", path_var)
        .env("HOME", &tmp)
        .env("TMPDIR", &tmp)
        .env("LANG", "C.UTF-8")
        .envs(spec.env.iter().chain(&spec.extra_env).map(|(k, v)| (k, v)))
        .env("SLUICE_SOCKET", socket);
    Ok(Prepared {
        cmd,
        inherit: Vec::new(),
        child_ends: Vec::new(),
        net: None,
        trusted: Vec::new(),
    })
}

/// Prepares everything and starts the process; `dir` is removed on failure.
pub(crate) async fn spawn(inner: Arc<Inner>, spec: SandboxSpec) -> Result<Sandbox, SandboxError> {
    let user = match spec.user.clone() {
        Some(u) => u,
        None => inner.users.lease().ok_or_else(|| {
            SandboxError::BadSpec("every sandbox uid of the range is in use".into())
        })?,
    };
    let dir = inner.sandbox_root.join(cgroup::name(spec.id));
    if dir.exists() {
        return Err(SandboxError::BadSpec(format!(
            "sandbox {} already exists",
            spec.id
        )));
    }
    let started = start(&inner, &spec, &dir, user).await;
    if started.is_err() {
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || remove_dir(&d)).await;
    }
    started
}

async fn start(
    inner: &Inner,
    spec: &SandboxSpec,
    dir: &Path,
    user: UserLease,
) -> Result<Sandbox, SandboxError> {
    if let Isolation::Oci(rt) = inner.isolation {
        return crate::oci_launch::start(inner, spec, dir, user, rt).await;
    }
    own_dir(dir, &user)?;
    let run = dir.join("run");
    own_dir(&run, &user)?;
    let separate = inner.root && user.is_separate();
    let ids = (user.uid(), user.gid());
    let prepared = match inner.isolation {
        Isolation::Plain if matches!(spec.root, Root::Image(_)) => {
            return Err(SandboxError::BadSpec(
                "a function from an image needs an isolated sandbox (bubblewrap or unshare), \
                 not a plain process"
                    .into(),
            ))
        }
        Isolation::Plain => {
            own_dir(&dir.join("tmp"), &user)?;
            plain(spec, dir, &run.join(SOCKET_NAME), &inner.path_var)?
        }
        iso => {
            let cx = Context {
                socket_dir: &run,
                hidden: &inner.hidden,
                user: separate.then_some(ids),
                path_var: &inner.path_var,
            };
            let mut plan = match &spec.root {
                Root::HostMinimal => rootfs::plan(spec, &cx)?,
                Root::Image(image) => {
                    let gpu = spec.gpu.then(|| inner.gpu_plan());
                    image_root::plan(spec, image, &cx, gpu.as_deref())?
                }
            };
            if iso == Isolation::Bubblewrap {
                bubblewrap(&plan, inner, spec.network)?
            } else {
                let helper = inner
                    .helper
                    .as_deref()
                    .ok_or_else(|| SandboxError::Config("unshare mode without a helper".into()))?;
                plan.trusted.push(helper.to_path_buf());
                unshare_mode(&plan, helper, spec.network)?
            }
        }
    };
    let reveal = if separate {
        reveal::prepare(&prepared.trusted, ids.0, ids.1)
            .map_err(io("preparing what the sandbox's user may reach"))?
    } else {
        Reveal::default()
    };
    let cgroup = Cgroup::create(inner.cgroups, &inner.cgroup_root, spec.id, &spec.limits)?;
    let procs: Vec<File> = match cgroup.as_ref().map(Cgroup::open_procs).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(source) => {
            let path = cgroup.as_ref().and_then(|c| c.dirs().first().cloned());
            if let Some(c) = &cgroup {
                c.remove();
            }
            return Err(SandboxError::Cgroup {
                path: path.unwrap_or_default(),
                source,
            });
        }
    };
    let pre = PreExec {
        cgroup_procs: procs.iter().map(|f| f.as_raw_fd()).collect(),
        reveal: reveal.ops,
        inherit: prepared.inherit.clone(),
        drop_to: separate.then_some(ids),
        last_cap: last_cap(),
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
    };
    let mut cmd = prepared.cmd;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: `PreExec::run` only makes system calls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || pre.run());
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let launched = tokio::process::Command::from(cmd).spawn();
    drop((procs, prepared.child_ends));
    let mut child = match launched {
        Ok(c) => c,
        Err(source) => {
            if let Some(c) = &cgroup {
                c.remove();
            }
            return Err(SandboxError::Launch { program, source });
        }
    };
    let network = match prepared.net {
        None => None,
        Some((ready, go)) => {
            let pid = child.id().unwrap_or(0);
            let iso = inner.isolation;
            let log = dir.join("network.log");
            let up = tokio::task::spawn_blocking(move || connect(iso, pid, ready, go, &log)).await;
            match up {
                Ok(Ok(n)) => Some(n),
                Ok(Err(e)) => {
                    let e = ended_while_connecting(&mut child, e).await;
                    if let Some(c) = &cgroup {
                        c.remove();
                    }
                    return Err(e);
                }
                Err(e) => {
                    let _ = child.start_kill();
                    return Err(SandboxError::Io {
                        what: "network".into(),
                        source: std::io::Error::other(e),
                    });
                }
            }
        }
    };
    let started = Started::open(spec.id, inner.isolation, run, user)?;
    let parts = Parts {
        child,
        cgroup,
        dir: dir.to_path_buf(),
        network,
        oci: None,
    };
    Ok(Sandbox::start(started, parts))
}

/// Kills a sandbox whose network could not be connected and says why: when the isolation itself
/// ended first and left its own message (bubblewrap's `bwrap: ...`, init's failure line), the
/// error is [`SandboxError::Exited`] with that message, which [`SandboxError::is_setup_failure`]
/// recognises as worth one more try; otherwise `e`.
async fn ended_while_connecting(
    child: &mut tokio::process::Child,
    e: SandboxError,
) -> SandboxError {
    let _ = child.start_kill();
    let status = child.wait().await.ok();
    let Some(mut stderr) = child.stderr.take() else {
        return e;
    };
    let mut text = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut text);
    // Descendants that outlive the kill may hold the pipe; what arrived by then is enough.
    let _ = tokio::time::timeout(Duration::from_millis(500), read).await;
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(crate::STDERR_TAIL)..]);
    let tail = text.trim();
    if tail.is_empty() {
        return e;
    }
    tracing::warn!("the sandbox ended while its network was connected ({e}): {tail}");
    SandboxError::Exited {
        code: status.and_then(|s| s.code()),
        stderr_tail: tail.to_string(),
    }
}

/// Connects a networked sandbox: learns a process inside its namespaces (bubblewrap's info
/// pipe, or init's ready byte, for which the `unshare` process itself stands), waits until the
/// sandbox has set up its own loopback, starts the network helper, and lets the sandbox go on.
///
/// The wait matters: `slirp4netns --configure` brings the namespace's `lo` up, which makes the
/// kernel give it 127.0.0.1; bubblewrap, still setting the sandbox up, then fails to add that
/// address itself (`loopback: Failed RTM_NEWADDR`). Our init brings `lo` up before it reports
/// ready, so only bubblewrap needs it.
fn connect(
    iso: Isolation,
    child: u32,
    ready: OwnedFd,
    go: OwnedFd,
    log: &Path,
) -> Result<network::Slirp, SandboxError> {
    let mut got = Vec::new();
    // bubblewrap closes its info pipe after the JSON; init writes one byte.
    let one = iso != Isolation::Bubblewrap;
    read_within(&ready, NAMESPACE_TIMEOUT, one, &mut got)
        .map_err(io("waiting for the sandbox's namespaces"))?;
    let pid = match iso {
        Isolation::Bubblewrap => {
            let info: serde_json::Value = serde_json::from_slice(&got)
                .map_err(|e| SandboxError::BadSpec(format!("bubblewrap's info: {e}")))?;
            let pid = info["child-pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| SandboxError::BadSpec("bubblewrap reported no child pid".into()))?;
            network::wait_for_loopback(pid, NAMESPACE_TIMEOUT)
                .map_err(io("waiting for the sandbox's loopback"))?;
            pid
        }
        _ if got.is_empty() => {
            return Err(SandboxError::BadSpec(
                "the sandbox ended before its network was up".into(),
            ))
        }
        _ => child,
    };
    let slirp = network::start(pid, log)?;
    File::from(go)
        .write_all(b"g")
        .map_err(io("releasing the sandbox"))?;
    Ok(slirp)
}

/// Runs a short trial command (output discarded); `true` if it exits 0 within 5 s.
pub(crate) fn trial(mut c: Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = c.spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}
