//! OCI runtime mode (`runc` or `crun`, rootful): the same mount `Plan` as bubblewrap and
//! unshare carry out, written as an OCI bundle — a `config.json` generated with the `oci-spec`
//! crate and a scratch `rootfs/` in the sandbox's directory holding the plan's symlinks and
//! directories (the runtime creates the mount points in it; a cached image root is only ever
//! bound, never written) — then `<runtime> --root <dir>/state run --bundle <dir>/bundle <id>`,
//! torn down with `delete --force`. The config: root read-only, the plan's binds, tmpfs, proc
//! and a fresh `/dev`; new PID, IPC, UTS, mount, network and cgroup namespaces; the process as
//! the sandbox's unprivileged host uid and gid (no user namespace: a rootful runtime would need a
//! mapped root in it, which a single host uid cannot give; so the image's `User` is not
//! honoured and root of an image is still that uid), no capabilities, `noNewPrivileges`, the
//! default masked and read-only `/proc` paths; memory, CPU and pids limits on `cgroupsPath`
//! `/sluice/w<pid>-<id>` (the launcher's own cgroup, so the stale-cgroup sweep still applies);
//! and the launcher's seccomp filter as an OCI profile (`profile`): the same denied calls
//! (EPERM), `clone` with namespace flags, `personality` beyond plain Linux, `ioctl(TIOCSTI,
//! TIOCLINUX)`, and `clone3` answering ENOSYS; only x86-64 calls are allowed (libseccomp refuses
//! calls of other architectures, the x32 ABI included). GPU and networked sandboxes are refused
//! in this mode.

use crate::plan::{Mount, Plan};
use crate::seccomp::{denied, CLONE_NS_FLAGS, PERSONALITY_OK};
use crate::{Limits, SandboxError};
use oci_spec::runtime::{
    Arch, Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::path::{Path, PathBuf};

/// Which OCI runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// `runc`.
    Runc,
    /// `crun`.
    Crun,
}

impl Runtime {
    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

fn bad(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::BadSpec(format!("OCI config: {e}"))
}

use crate::launch::io;

/// The launcher's seccomp filter as an OCI profile.
pub(crate) fn profile() -> Result<LinuxSeccomp, SandboxError> {
    let eperm = libc::EPERM as u32;
    let errno =
        |names: Vec<String>, ret: u32, args: Vec<(usize, u64, u64, LinuxSeccompOperator)>| {
            let mut b = LinuxSyscallBuilder::default()
                .names(names)
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(ret);
            if !args.is_empty() {
                let args = args
                    .into_iter()
                    .map(|(index, value, value_two, op)| {
                        let mut a = LinuxSeccompArgBuilder::default()
                            .index(index)
                            .value(value)
                            .op(op);
                        if op == LinuxSeccompOperator::ScmpCmpMaskedEq {
                            a = a.value_two(value_two);
                        }
                        a.build().map_err(bad)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                b = b.args(args);
            }
            b.build().map_err(bad)
        };
    let mut calls: Vec<LinuxSyscall> = vec![errno(
        denied().iter().map(|(n, _)| n.to_string()).collect(),
        eperm,
        Vec::new(),
    )?];
    calls.push(errno(
        vec!["clone3".into()],
        libc::ENOSYS as u32,
        Vec::new(),
    )?);
    for f in CLONE_NS_FLAGS {
        // libseccomp's masked equality: value is the mask, value_two the datum.
        calls.push(errno(
            vec!["clone".into()],
            eperm,
            vec![(0, f, f, LinuxSeccompOperator::ScmpCmpMaskedEq)],
        )?);
    }
    let odd: Vec<_> = PERSONALITY_OK
        .iter()
        .map(|&p| (0, p, 0, LinuxSeccompOperator::ScmpCmpNe))
        .collect();
    calls.push(errno(vec!["personality".into()], eperm, odd)?);
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    for req in [libc::TIOCSTI as u64, libc::TIOCLINUX as u64] {
        calls.push(errno(
            vec!["ioctl".into()],
            eperm,
            vec![(1, 0xffff_ffff, req, LinuxSeccompOperator::ScmpCmpMaskedEq)],
        )?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![Arch::ScmpArchX86_64])
        .syscalls(calls)
        .build()
        .map_err(bad)
}

/// What the bundle needs besides the plan.
pub(crate) struct Bundle<'a> {
    /// The sandbox's directory (the bundle goes to `<dir>/bundle`).
    pub dir: &'a Path,
    /// The sandbox's host uid and gid.
    pub ids: (u32, u32),
    /// Its limits.
    pub limits: &'a Limits,
    /// Its cgroup, relative to each hierarchy's root (`/sluice/w<pid>-<id>`).
    pub cgroup: String,
}

fn options(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn oci_mount(
    dst: &Path,
    kind: &str,
    src: &Path,
    opts: Vec<String>,
) -> Result<oci_spec::runtime::Mount, SandboxError> {
    MountBuilder::default()
        .destination(dst)
        .typ(kind)
        .source(src)
        .options(opts)
        .build()
        .map_err(bad)
}

/// Where `dst` (inside) lies in the scratch root.
fn scratch(rootfs: &Path, dst: &Path) -> PathBuf {
    rootfs.join(dst.strip_prefix("/").unwrap_or(dst))
}

/// The OCI mounts of `plan`, making its symlinks, directories and small files in the bundle;
/// also whether the root ends read-only.
fn mounts(
    plan: &Plan,
    bundle: &Path,
) -> Result<(Vec<oci_spec::runtime::Mount>, bool), SandboxError> {
    let rootfs = bundle.join("rootfs");
    let mut out = Vec::new();
    let mut read_only = false;
    let ro = options(&["rbind", "ro", "nosuid", "nodev"]);
    for (n, m) in plan.mounts.iter().enumerate() {
        match m {
            Mount::RoBind { src, dst } => out.push(oci_mount(dst, "bind", src, ro.clone())?),
            Mount::Bind { src, dst } => out.push(oci_mount(
                dst,
                "bind",
                src,
                options(&["rbind", "rw", "nosuid", "nodev"]),
            )?),
            Mount::DevBind { .. } => {
                return Err(SandboxError::BadSpec(
                    "gpu: GPU sandboxes are not supported under runc or crun".into(),
                ))
            }
            Mount::Tmpfs { dst, size, mode } => out.push(oci_mount(
                dst,
                "tmpfs",
                Path::new("tmpfs"),
                vec![
                    "nosuid".into(),
                    "nodev".into(),
                    format!("mode={mode:o}"),
                    format!("size={size}"),
                ],
            )?),
            Mount::Proc { dst } => out.push(oci_mount(
                dst,
                "proc",
                Path::new("proc"),
                options(&["nosuid", "noexec", "nodev"]),
            )?),
            Mount::Dev { dst } => {
                out.push(oci_mount(
                    dst,
                    "tmpfs",
                    Path::new("tmpfs"),
                    options(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
                )?);
                out.push(oci_mount(
                    &dst.join("pts"),
                    "devpts",
                    Path::new("devpts"),
                    options(&[
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=0620",
                    ]),
                )?);
                out.push(oci_mount(
                    &dst.join("shm"),
                    "tmpfs",
                    Path::new("shm"),
                    options(&["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                )?);
            }
            Mount::Dir { dst } => {
                let p = scratch(&rootfs, dst);
                std::fs::create_dir_all(&p).map_err(io(format!("mkdir {}", p.display())))?;
            }
            Mount::Symlink { target, dst } => {
                let p = scratch(&rootfs, dst);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io(format!("mkdir {}", parent.display())))?;
                }
                std::os::unix::fs::symlink(target, &p)
                    .map_err(io(format!("symlink {}", p.display())))?;
            }
            Mount::File { dst, data } => {
                let f = bundle.join("files").join(n.to_string());
                std::fs::create_dir_all(bundle.join("files")).map_err(io("mkdir files"))?;
                std::fs::write(&f, data).map_err(io(format!("write {}", f.display())))?;
                out.push(oci_mount(dst, "bind", &f, ro.clone())?);
            }
            Mount::RemountRo { dst } if dst == Path::new("/") => read_only = true,
            Mount::RemountRo { dst } => {
                return Err(SandboxError::BadSpec(format!(
                    "{}: a read-only tmpfs cannot be expressed under runc or crun",
                    dst.display()
                )))
            }
        }
    }
    Ok((out, read_only))
}

/// The runtime config of `plan`.
pub(crate) fn spec(plan: &Plan, b: &Bundle<'_>) -> Result<Spec, SandboxError> {
    let bundle = b.dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs"))
        .map_err(io(format!("mkdir {}", bundle.display())))?;
    let (mounts, read_only) = mounts(plan, &bundle)?;
    let none: Capabilities = Default::default();
    let caps = LinuxCapabilitiesBuilder::default()
        .bounding(none.clone())
        .effective(none.clone())
        .inheritable(none.clone())
        .permitted(none.clone())
        .ambient(none)
        .build()
        .map_err(bad)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(b.ids.0)
                .gid(b.ids.1)
                .build()
                .map_err(bad)?,
        )
        .args(plan.command.clone())
        .env(
            plan.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(plan.chdir.clone())
        .capabilities(caps)
        .no_new_privileges(true)
        .build()
        .map_err(bad)?;
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build().map_err(bad))
    .collect::<Result<Vec<_>, _>>()?;
    let l = b.limits;
    let memory = i64::try_from(l.memory_bytes).unwrap_or(i64::MAX);
    let quota = ((l.cpus * 100_000.0).round() as i64).max(1000);
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(memory)
                .swap(memory)
                .build()
                .map_err(bad)?,
        )
        .cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(100_000u64)
                .build()
                .map_err(bad)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(i64::from(l.pids))
                .build()
                .map_err(bad)?,
        )
        .build()
        .map_err(bad)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .cgroups_path(PathBuf::from(&b.cgroup))
        .seccomp(profile()?)
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(bad)?;
    SpecBuilder::default()
        .version("1.0.2")
        .hostname("sluice")
        .root(
            RootBuilder::default()
                .path(bundle.join("rootfs"))
                .readonly(read_only)
                .build()
                .map_err(bad)?,
        )
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(bad)
}

/// Writes `<dir>/bundle/config.json` for `plan`.
pub(crate) fn write_bundle(plan: &Plan, b: &Bundle<'_>) -> Result<PathBuf, SandboxError> {
    let spec = spec(plan, b)?;
    let bundle = b.dir.join("bundle");
    spec.save(bundle.join("config.json")).map_err(bad)?;
    Ok(bundle)
}

/// The runtime's state of one container, to delete it.
#[derive(Debug)]
pub(crate) struct Teardown {
    pub program: PathBuf,
    pub state: PathBuf,
    pub id: String,
}

impl Teardown {
    /// `<runtime> --root <state> delete --force <id>` (bounded; its failure is only logged: the
    /// cgroup and the directory go anyway).
    pub(crate) fn delete(&self) {
        let mut c = std::process::Command::new(&self.program);
        c.arg("--root")
            .arg(&self.state)
            .args(["delete", "--force", &self.id]);
        if !crate::launch::trial(c) {
            tracing::debug!(id = %self.id, "runtime delete failed (the container may be gone)");
        }
    }
}

/// Whether `runtime` is installed and this process is root (the mode is rootful); crun also
/// refuses hosts whose cgroups are "hybrid" with a controller in the v2 hierarchy (v1 controllers
/// plus, say, `hugetlb` in `/sys/fs/cgroup/unified`), which it cannot manage.
pub(crate) fn works(runtime: Runtime) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = std::process::Command::new(runtime.program());
    c.arg("--version");
    if runtime == Runtime::Crun && hybrid_with_v2_controllers(Path::new("/sys/fs/cgroup")) {
        tracing::warn!(
            "crun cannot run here: cgroups are hybrid with controllers in the v2 hierarchy"
        );
        return false;
    }
    root && crate::launch::trial(c)
}

/// Whether `root` is a cgroup v1 hierarchy whose `unified` (v2) mount has controllers.
fn hybrid_with_v2_controllers(root: &Path) -> bool {
    root.join("memory").is_dir()
        && std::fs::read_to_string(root.join("unified/cgroup.controllers"))
            .is_ok_and(|c| !c.trim().is_empty())
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
