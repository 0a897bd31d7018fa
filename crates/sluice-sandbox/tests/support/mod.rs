//! Helpers of the launcher's integration tests: a launcher per isolation (skipped loudly where
//! the host lacks it), the probe function (`fixtures/probe.py`) in a sandbox, a minimal HTTP/1.1
//! client over the sandbox's socket, and bounded waits.

#![allow(dead_code)]

use serde_json::Value;
use sluice_sandbox::{
    Isolation, IsolationChoice, Launcher, LauncherConfig, Limits, Sandbox, SandboxError,
    SandboxSpec,
};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const READY: Duration = Duration::from_secs(15);
pub const ALL: [Isolation; 3] = [Isolation::Bubblewrap, Isolation::Unshare, Isolation::Plain];
pub const ISOLATED: [Isolation; 2] = [Isolation::Bubblewrap, Isolation::Unshare];

pub fn probe_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/probe.py")
}

pub fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice-sandbox-exec"))
}

/// Whether slirp4netns can create its tap device here (`/dev/net/tun` is often 0600 root, so
/// only a root launcher gets networked sandboxes then); said loudly when not.
pub fn network_usable() -> bool {
    let installed = std::process::Command::new("slirp4netns")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("SKIPPING networked sandboxes: slirp4netns is not installed (apt-get install slirp4netns)");
        return false;
    }
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok();
    if !ok {
        eprintln!("SKIPPING networked sandboxes: /dev/net/tun cannot be opened by this user");
    }
    ok
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A launcher with `iso` whose sandboxes go under `root`, or `None` (said loudly) when this
/// host cannot isolate that way. As root, bubblewrap and unshare must work.
pub fn launcher_in(iso: Isolation, root: &Path) -> Option<Launcher> {
    if !Launcher::available(iso, Some(&helper())) {
        assert!(
            iso == Isolation::Plain || !is_root(),
            "{iso} must work as root here"
        );
        eprintln!("SKIPPING {iso}: this host cannot create such sandboxes (not root, no user namespaces?)");
        return None;
    }
    let mut cfg = LauncherConfig::new(root.to_path_buf());
    cfg.isolation = IsolationChoice::Only(iso);
    cfg.allow_unisolated = iso == Isolation::Plain;
    cfg.helper = Some(helper());
    Some(Launcher::new(cfg).unwrap_or_else(|e| panic!("{iso}: {e}")))
}

/// A launcher with its sandbox root in a fresh temp dir (kept alive by the returned guard).
pub fn launcher(iso: Isolation) -> Option<(Launcher, tempfile::TempDir)> {
    let t = tempfile::tempdir().expect("tempdir");
    let l = launcher_in(iso, &t.path().join("sandboxes"))?;
    Some((l, t))
}

pub fn next_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    (u64::from(std::process::id()) << 20) | N.fetch_add(1, Ordering::Relaxed)
}

pub fn limits() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        cpus: 0.5,
        pids: 64,
        tmp_bytes: 32 << 20,
    }
}

/// A spec running the probe with `args`.
pub fn spec(args: &[&str]) -> SandboxSpec {
    let mut command = vec!["python3".to_string(), probe_py().display().to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    SandboxSpec {
        id: next_id(),
        command,
        env: vec![("FROM_SPEC".into(), "1".into())],
        extra_env: vec![("EXTRA".into(), "2".into())],
        limits: limits(),
        ..SandboxSpec::default()
    }
}

/// One HTTP/1.1 exchange over the socket (blocking, bounded).
pub fn http(socket: &Path, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, rest.to_string()))
}

pub async fn ready_check(socket: PathBuf) -> Result<(), std::io::Error> {
    loop {
        let s = socket.clone();
        let r = tokio::task::spawn_blocking(move || http(&s, "GET", "/ready", "")).await;
        if matches!(r, Ok(Ok((200, _)))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_ready(sb: &mut Sandbox, timeout: Duration) -> Result<(), SandboxError> {
    let socket = sb.socket();
    sb.wait_ready(ready_check(socket), timeout).await
}

pub async fn start(l: &Launcher, spec: SandboxSpec) -> Sandbox {
    let iso = l.isolation();
    let mut sb = l
        .spawn(spec)
        .await
        .unwrap_or_else(|e| panic!("{iso}: spawn: {e}"));
    if let Err(e) = wait_ready(&mut sb, READY).await {
        panic!("{iso}: not ready: {e}; stderr: {}", sb.stderr_tail());
    }
    sb
}

pub async fn call(sb: &Sandbox, v: Value) -> Result<Value, String> {
    let socket = sb.socket();
    let body = v.to_string();
    let r = tokio::task::spawn_blocking(move || http(&socket, "POST", "/invoke", &body))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    match r {
        (200, b) => serde_json::from_str(&b).map_err(|e| format!("{e}: {b}")),
        (s, b) => Err(format!("status {s}: {}", &b[..b.len().min(200)])),
    }
}

pub async fn within(mut cond: impl FnMut() -> bool, secs: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
