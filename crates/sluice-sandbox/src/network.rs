//! The network of a sandbox that asks for one: its own network namespace (created with the
//! sandbox) reaches out through `slirp4netns`, a user-mode TCP/IP stack started against that
//! namespace with `--disable-host-loopback`, so nothing in the sandbox reaches the host's
//! loopback (the worker's API on 127.0.0.1 included). The helper is found through the
//! namespace itself (its owning user namespace by `NS_GET_USERNS`), runs in its own sandbox
//! (`--enable-sandbox --enable-seccomp`), exits when the launcher's end of its exit pipe closes
//! (the launcher's death included) and is killed with the sandbox.

use crate::SandboxError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The program.
pub(crate) const PROGRAM: &str = "slirp4netns";
/// How long the helper may take to configure the interface.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `slirp4netns`.
#[derive(Debug)]
pub(crate) struct Slirp {
    child: Child,
    /// Closing it tells the helper to exit.
    _exit: OwnedFd,
}

fn err(what: &str, e: std::io::Error) -> SandboxError {
    SandboxError::Io {
        what: format!("network: {what}"),
        source: e,
    }
}

pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads from `fd` within `timeout`: everything up to end of file, or (`one` set) the first
/// byte(s) to arrive.
pub(crate) fn read_within(
    fd: &OwnedFd,
    timeout: Duration,
    one: bool,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut chunk = [0u8; 512];
        // SAFETY: reading into a valid buffer from an open descriptor.
        let got = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if got <= 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..got as usize]);
        if one {
            return Ok(());
        }
    }
}

/// Waits until the loopback of process `pid`'s network namespace is up (its `lo` has joined the
/// all-hosts group, which the kernel does when an interface with IPv4 comes up), polling
/// `/proc/<pid>/net/igmp`. Fails if the process is gone or `timeout` passes; returns at once on
/// a kernel without that table.
pub(crate) fn wait_for_loopback(pid: u32, timeout: Duration) -> std::io::Result<()> {
    let path = format!("/proc/{pid}/net/igmp");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match std::fs::read_to_string(&path) {
            Ok(table) if loopback_up(&table) => return Ok(()),
            Ok(_) => {}
            // A kernel without IPv4 multicast has no such table: nothing to wait on (a failed
            // setup is then tried once more, `SandboxError::is_setup_failure`).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::path::Path::new(&format!("/proc/{pid}")).exists() =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "its loopback did not come up",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a `/proc/net/igmp` table lists `lo` (one row per interface that is up, each starting
/// with its index, then its name).
fn loopback_up(igmp: &str) -> bool {
    igmp.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next().is_some_and(|i| i.parse::<u32>().is_ok()) && f.next() == Some("lo")
    })
}

/// Starts `slirp4netns` for the network namespace of process `pid` and waits until the
/// sandbox's interface is up; its messages go to `log`.
pub(crate) fn start(pid: u32, log: &std::path::Path) -> Result<Slirp, SandboxError> {
    let netns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| err("opening the sandbox's namespace", e))?
        .into();
    // SAFETY: NS_GET_USERNS on a namespace descriptor returns a new descriptor or -1.
    let userns = unsafe { libc::ioctl(netns.as_raw_fd(), libc::NS_GET_USERNS) };
    if userns < 0 {
        return Err(err(
            "finding its user namespace",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh descriptor owned here.
    let userns = unsafe { OwnedFd::from_raw_fd(userns) };
    let (ready_r, ready_w) = pipe().map_err(|e| err("pipe", e))?;
    let (exit_r, exit_w) = pipe().map_err(|e| err("pipe", e))?;
    let inherit = [
        netns.as_raw_fd(),
        userns.as_raw_fd(),
        ready_w.as_raw_fd(),
        exit_r.as_raw_fd(),
    ];
    let mut cmd = Command::new(PROGRAM);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
    ])
    .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
    .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
    .arg(format!(
        "--userns-path=/proc/self/fd/{}",
        userns.as_raw_fd()
    ))
    .arg("--netns-type=path")
    .arg(format!("/proc/self/fd/{}", netns.as_raw_fd()))
    .arg("tap0")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).map_err(|e| err("creating its log", e))?);
    // No parent-death signal: it would fire when the thread that forks here ends (an idle
    // blocking-pool thread, seconds later), not the launcher. The exit pipe covers the
    // launcher's death: the kernel closes its end, and the helper exits.
    // SAFETY: between fork and exec: fcntl only.
    unsafe {
        cmd.pre_exec(move || {
            for fd in inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| err("starting slirp4netns", e))?;
    drop((ready_w, exit_r, netns, userns));
    let mut got = Vec::new();
    let ready = read_within(&ready_r, READY_TIMEOUT, true, &mut got);
    if ready.is_err() || got.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        let msg = std::fs::read_to_string(log).unwrap_or_default();
        let why = ready
            .err()
            .map_or("it exited".to_string(), |e| e.to_string());
        return Err(SandboxError::Io {
            what: format!("network: slirp4netns did not start: {}", msg.trim()),
            source: std::io::Error::other(why),
        });
    }
    Ok(Slirp {
        child,
        _exit: exit_w,
    })
}

impl Slirp {
    /// Stops the helper.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_up;

    #[test]
    fn the_loopback_is_up_once_igmp_lists_it() {
        let header = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n";
        assert!(!loopback_up(header), "a namespace whose lo is down");
        let up = format!(
            "{header}1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
        );
        assert!(loopback_up(&up));
        let other = format!("{header}2\ttap0      :     1      V3\n");
        assert!(!loopback_up(&other), "another interface is not lo");
        assert!(!loopback_up("Idx lo\n"), "the header is not a row");
    }
}
