//! The sandbox's first process in unshare mode (`<helper> __sandbox-init`, run by util-linux
//! `unshare` inside the new namespaces, as [`crate::users::INNER_UID`] with capabilities in its
//! user namespace only): reads the [`Plan`] from fd 3, builds the root on a tmpfs (the old root
//! reached through `/.old` until it is detached), makes it read-only, waits for the network when
//! asked, drops every capability, sets `no_new_privs`, installs the seccomp filter and execs
//! the function. What bubblewrap does in bubblewrap mode, from the same plan.

use crate::plan::{Mount, Plan};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// How init's own failures begin on stderr.
pub(crate) const FAILURE_PREFIX: &str = "sluice sandbox init: ";

/// The descriptor the plan arrives on.
pub(crate) const PLAN_FD: i32 = 3;
/// The descriptor init writes one byte to once the namespaces exist (networked sandboxes).
pub(crate) const NET_READY_FD: i32 = 4;
/// The descriptor init reads one byte from before it runs the command (networked sandboxes).
pub(crate) const NET_GO_FD: i32 = 5;

/// What init is handed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitPlan {
    /// The sandbox.
    pub plan: Plan,
    /// Wait for the network on [`NET_READY_FD`]/[`NET_GO_FD`].
    pub network: bool,
}

const OLD: &str = "/.old";

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn ctx(what: &str, p: &Path) -> impl FnOnce(io::Error) -> io::Error {
    let what = format!("{what} {}", p.display());
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let dst_c = cstr(dst)?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string alive for the call.
    let r = unsafe {
        libc::mount(
            ptr(&src),
            dst_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    check(r).map_err(ctx("mount", dst))
}

/// The per-mount flags a read-only remount must keep (a user namespace may not clear them).
fn locked_flags(p: &Path) -> io::Result<libc::c_ulong> {
    let c = cstr(p)?;
    // SAFETY: statvfs fills a zeroed struct through a valid pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a valid out-pointer.
    check(unsafe { libc::statvfs(c.as_ptr(), &mut st) }).map_err(ctx("statvfs", p))?;
    let map = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(map
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms))
}

fn remount_ro(p: &Path) -> io::Result<()> {
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked_flags(p)?;
    mount(None, p, None, flags, None)
}

/// Creates the mount point `dst` for a source of `src`'s kind.
fn mount_point(src: &Path, dst: &Path) -> io::Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dst).map_err(ctx("mkdir", dst))
    } else {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(ctx("mkdir", parent))?;
        }
        if !dst.exists() {
            std::fs::write(dst, b"").map_err(ctx("create", dst))?;
        }
        Ok(())
    }
}

fn old(p: &Path) -> PathBuf {
    Path::new(OLD).join(p.strip_prefix("/").unwrap_or(p))
}

fn bind(src: &Path, dst: &Path, read_only: bool, devices: bool) -> io::Result<()> {
    let src = old(src);
    mount_point(&src, dst)?;
    mount(Some(&src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    if read_only {
        remount_ro(dst)?;
    } else if !devices {
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | locked_flags(dst)?;
        mount(None, dst, None, flags, None)?;
    }
    Ok(())
}

fn dev(dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst).map_err(ctx("mkdir", dst))?;
    mount(
        Some(Path::new("tmpfs")),
        dst,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=0755,size=65536"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        bind(&Path::new("/dev").join(node), &dst.join(node), false, true)?;
    }
    let shm = dst.join("shm");
    std::fs::create_dir(&shm).map_err(ctx("mkdir", &shm))?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;
    let pts = dst.join("pts");
    std::fs::create_dir(&pts).map_err(ctx("mkdir", &pts))?;
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    // Needs uid 0 mapped in the user namespace; without it there are no pseudo-terminals.
    if mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        flags,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .is_ok()
    {
        std::os::unix::fs::symlink("pts/ptmx", dst.join("ptmx"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dst.join(name))?;
    }
    Ok(())
}

fn proc(dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst).map_err(ctx("mkdir", dst))?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(Some(Path::new("proc")), dst, Some("proc"), flags, None)?;
    for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
        let p = dst.join(sub);
        if p.exists() {
            mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)?;
            remount_ro(&p)?;
        }
    }
    Ok(())
}

fn detach_old() -> io::Result<()> {
    let o = Path::new(OLD);
    let c = cstr(o)?;
    // SAFETY: c is a NUL-terminated path.
    check(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }).map_err(ctx("umount", o))?;
    std::fs::remove_dir(o).map_err(ctx("rmdir", o))
}

fn step(m: &Mount) -> io::Result<()> {
    match m {
        Mount::RoBind { src, dst } => bind(src, dst, true, false),
        Mount::Bind { src, dst } => bind(src, dst, false, false),
        Mount::DevBind { src, dst } => bind(src, dst, false, true),
        Mount::Tmpfs { dst, size, mode } => {
            std::fs::create_dir_all(dst).map_err(ctx("mkdir", dst))?;
            let data = format!("mode={mode:o},size={size}");
            mount(
                Some(Path::new("tmpfs")),
                dst,
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some(&data),
            )
        }
        Mount::Proc { dst } => proc(dst),
        Mount::Dir { dst } => std::fs::create_dir_all(dst).map_err(ctx("mkdir", dst)),
        Mount::Dev { dst } => dev(dst),
        Mount::Symlink { target, dst } => {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(ctx("mkdir", parent))?;
            }
            std::os::unix::fs::symlink(target, dst).map_err(ctx("symlink", dst))
        }
        Mount::File { dst, data } => {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(ctx("mkdir", parent))?;
            }
            std::fs::write(dst, data).map_err(ctx("write", dst))
        }
        Mount::RemountRo { dst } => {
            if dst == Path::new("/") {
                detach_old()?;
            }
            remount_ro(dst)
        }
    }
}

/// Builds the root: a tmpfs pivoted to `/`, the old root under [`OLD`] while the plan runs.
fn build(plan: &Plan) -> io::Result<()> {
    let base = Path::new("/tmp");
    mount(
        Some(Path::new("sluice-root")),
        base,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    std::env::set_current_dir(base)?;
    std::fs::create_dir(".old")?;
    let (dot, put_old) = (CString::new(".")?, CString::new(".old")?);
    // SAFETY: both are NUL-terminated paths; pivot_root has no wrapper in libc.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), put_old.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    std::env::set_current_dir("/")?;
    for m in &plan.mounts {
        step(m)?;
    }
    if Path::new(OLD).exists() {
        detach_old()?;
    }
    Ok(())
}

/// Drops every capability (effective, permitted, inheritable, ambient, bounding) and sets
/// `no_new_privs`.
fn drop_privileges() -> io::Result<()> {
    // SAFETY: prctl calls with constant arguments.
    unsafe {
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ))?;
        let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
            .unwrap_or(63);
        for cap in 0..=last {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset with a v3 header and the two data words it reads.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: prctl with constant arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

fn wait_for_network() -> io::Result<()> {
    // SAFETY: the launcher passed these descriptors to this process; each is owned once here.
    let (mut ready, mut go) = unsafe {
        (
            std::fs::File::from_raw_fd(NET_READY_FD),
            std::fs::File::from_raw_fd(NET_GO_FD),
        )
    };
    ready.write_all(b"r")?;
    drop(ready);
    let mut b = [0u8; 1];
    go.read_exact(&mut b)
        .map_err(|e| io::Error::new(e.kind(), format!("waiting for the network: {e}")))
}

/// Brings the new network namespace's loopback up (unshare leaves it down).
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket used only for the two interface ioctls below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is fresh and owned here.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) };
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed ifreq is a valid request; the name fits its buffer.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq passed by pointer.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs init; returns only on failure.
pub(crate) fn run() -> io::Error {
    // SAFETY: fd 3 was set up by the launcher for this process alone.
    let mut input = unsafe { std::fs::File::from_raw_fd(PLAN_FD) };
    let mut text = String::new();
    if let Err(e) = input.read_to_string(&mut text) {
        return e;
    }
    drop(input);
    let init: InitPlan = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(e) => return io::Error::new(io::ErrorKind::InvalidData, e),
    };
    let plan = init.plan;
    let result = (|| -> io::Result<()> {
        let name = CString::new("sluice")?;
        // SAFETY: a valid buffer and its length.
        check(unsafe { libc::sethostname(name.as_ptr(), 6) })?;
        loopback_up()?;
        build(&plan)?;
        std::env::set_current_dir(&plan.chdir).map_err(ctx("chdir", &plan.chdir))?;
        if init.network {
            wait_for_network()?;
        }
        drop_privileges()?;
        let prog = crate::seccomp::program().map_err(io::Error::other)?;
        crate::seccomp::apply(&prog).map_err(io::Error::other)
    })();
    if let Err(e) = result {
        return e;
    }
    let Some(program) = plan.command.first() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "empty command");
    };
    std::process::Command::new(program)
        .args(&plan.command[1..])
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .exec()
}
