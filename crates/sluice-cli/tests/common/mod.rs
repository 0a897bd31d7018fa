//! Shared helpers of the worker integration tests: start the real `sluice worker` binary on
//! port 0 with a private data directory and read back the address it bound (`listen.addr` in
//! its data directory), a minimal blocking HTTP/1.1 client, and test function specs.
//!
//! `SLUICE_TEST_WORKER=<path>` runs another build of the worker instead of this one (how
//! `scripts/chaos.sh` measures an older build); for builds that write no `listen.addr`, the
//! address is read from their start line.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A worker process (or, from `clone_addr`, just its address).
pub struct Worker {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub token: Option<String>,
    /// Whether this handle started a process in `dir` (not a `clone_addr`): see [`DIR_USERS`].
    uses_dir: bool,
}

/// How many started workers (running, killed or stopped) use each directory. Restart tests
/// start a second worker in the first one's directory while the first handle lives on, so the
/// directory is removed when the last of them is dropped, not when the first one is.
static DIR_USERS: std::sync::Mutex<std::collections::BTreeMap<PathBuf, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn dir_users(dir: &Path, change: impl FnOnce(&mut usize)) -> usize {
    let mut users = DIR_USERS.lock().unwrap_or_else(|e| e.into_inner());
    let n = users.entry(dir.to_path_buf()).or_insert(0);
    change(n);
    let left = *n;
    if left == 0 {
        users.remove(dir);
    }
    left
}

/// A worker that did not come up: why, its log, and its directory (left in place).
pub struct Refused {
    pub why: String,
    pub log: String,
    pub dir: PathBuf,
}

impl Worker {
    /// Starts a worker whose config is the defaults plus `extra` TOML lines.
    pub fn start(extra: &[&str]) -> Worker {
        Self::start_in(fresh_dir(), extra)
    }

    /// Starts a worker on an existing data directory (restart tests).
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Worker {
        match Self::spawn(dir, extra) {
            Ok(w) => w,
            Err(r) => panic!("worker did not come up: {}\n{}", r.why, r.log),
        }
    }

    /// Starts a worker and waits until it serves; on failure, why (for tests that expect a
    /// refusal).
    pub fn spawn(dir: PathBuf, extra: &[&str]) -> Result<Worker, Refused> {
        Self::spawn_env(dir, extra, &[])
    }

    /// [`Worker::spawn`] with extra environment variables for the worker process.
    pub fn spawn_env(
        dir: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Worker, Refused> {
        let (top, tables): (Vec<&str>, Vec<&str>) = {
            let split = extra
                .iter()
                .position(|l| l.starts_with('['))
                .unwrap_or(extra.len());
            (extra[..split].to_vec(), extra[split..].to_vec())
        };
        let token = top.iter().find_map(|l| {
            l.strip_prefix("auth_token = \"")
                .map(|t| t.trim_end_matches('"').to_string())
        });
        let data = dir.join("data");
        // Simulated GPUs always; a `[gpu]` table among `extra` adds to that one.
        let tables = match tables.split_first() {
            Some((&"[gpu]", rest)) => rest.to_vec(),
            _ => tables,
        };
        let cfg = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nstart_timeout_ms = 20000\n{}\n[gpu]\nforce_simulated = true\n{}\n",
            data.display(),
            top.join("\n"),
            tables.join("\n")
        );
        let cfg_path = dir.join("worker.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let _ = std::fs::remove_file(data.join("listen.addr"));
        let log_path = dir.join("worker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let log_start = log.metadata().map_or(0, |m| m.len());
        let bin = std::env::var_os("SLUICE_TEST_WORKER").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_sluice")),
            PathBuf::from,
        );
        let child = Command::new(bin)
            .args(["worker", "--config"])
            .arg(&cfg_path)
            .envs(env.iter().copied())
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the worker");
        dir_users(&dir, |n| *n += 1);
        let mut w = Worker {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            token,
            uses_dir: true,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = w.child.as_mut().map(Child::try_wait) {
                w.child = None;
                return Err(w.refused(format!("it exited ({status})")));
            }
            if let Some(addr) = bound_address(&data, &log_path, log_start) {
                w.addr = addr;
                if http(&w, "GET", "/healthz", None).0 == 200 {
                    return Ok(w);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        w.kill9();
        Err(w.refused("no answer within 30 s".into()))
    }

    /// What a worker that did not come up leaves: its directory stays (the caller removes it).
    fn refused(mut self, why: String) -> Refused {
        dir_users(&self.dir, |n| *n = n.saturating_sub(1));
        self.uses_dir = false;
        Refused {
            why,
            log: self.log(),
            dir: self.dir.clone(),
        }
    }

    pub fn clone_addr(&self) -> Worker {
        Worker {
            child: None,
            addr: self.addr,
            dir: self.dir.clone(),
            token: self.token.clone(),
            uses_dir: false,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
    }

    /// SIGKILLs the worker process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the worker and waits for it to exit (SIGKILL after `limit`); true if it exited
    /// on its own in time.
    pub fn term(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        // Our own unreaped child (we hold its `Child`), so the pid is still its.
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// The worker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The address a starting worker bound: its `listen.addr`, or (older builds) its start line
/// written to the log after `log_start`.
fn bound_address(data: &Path, log: &Path, log_start: u64) -> Option<SocketAddr> {
    if let Ok(text) = std::fs::read_to_string(data.join("listen.addr")) {
        return text.trim().parse().ok();
    }
    let text = std::fs::read(log).ok()?;
    let fresh = String::from_utf8_lossy(text.get(log_start as usize..)?);
    let rest = fresh.split("sluice worker on http://").nth(1)?;
    rest.split_whitespace()
        .next()?
        .trim_end_matches(':')
        .parse()
        .ok()
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
        if self.uses_dir && dir_users(&self.dir, |n| *n = n.saturating_sub(1)) == 0 {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where `w` keeps pipelines' shared-memory groups, by the worker's own rule (`shm_root` in
/// sluice-worker's server.rs): `/dev/shm/sluice` as root, `/dev/shm/sluice-<uid>` as any other
/// user (a root worker's directory is not writable to it), `<data_dir>/shm` without `/dev/shm`.
/// Tests that look for leftover segments must look there, or a run as another user finds none
/// and proves nothing.
pub fn shm_root(w: &Worker) -> PathBuf {
    let dev_shm = Path::new("/dev/shm");
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and always succeeds.
    let uid = unsafe { libc::geteuid() };
    match (dev_shm.is_dir(), uid) {
        (true, 0) => dev_shm.join("sluice"),
        (true, uid) => dev_shm.join(format!("sluice-{uid}")),
        (false, _) => w.dir.join("data").join("shm"),
    }
}

/// `w`'s shared-memory group directories of `pipeline`.
pub fn shm_groups(w: &Worker, pipeline: &str) -> Vec<PathBuf> {
    let needle = format!("-{pipeline}-g");
    std::fs::read_dir(shm_root(w))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().contains(&needle))
        .map(|d| d.path())
        .collect()
}

/// A new, empty directory for one worker's config, log and data.
pub fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-it-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// A spec running tests/fixtures/functions/behaviours.py with extra `env`.
pub fn function(name: &str, env: Value) -> Value {
    let mut e = json!({"SLUICE_SDK": repo().join("sdk/python").display().to_string()});
    if let (Some(dst), Some(src)) = (e.as_object_mut(), env.as_object()) {
        dst.extend(src.clone());
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions/behaviours.py");
    json!({"name": name, "command": ["python3", script.display().to_string()], "env": e,
           "resources": {"memory_mb": 256}})
}

/// One request with the worker's token; returns status, body and lower-case headers.
pub fn http(
    w: &Worker,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, HashMap<String, String>) {
    http_with(w, method, path, body, w.token.as_deref())
}

pub fn http_with(
    w: &Worker,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String, HashMap<String, String>) {
    try_http_with(w, method, path, body, token).expect("connect to the worker")
}

/// One request with the worker's token; `Err` if the worker cannot be reached (it was killed).
pub fn try_http(
    w: &Worker,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String, HashMap<String, String>)> {
    try_http_with(w, method, path, body, w.token.as_deref())
}

fn try_http_with(
    w: &Worker,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String, HashMap<String, String>)> {
    let mut s = TcpStream::connect(w.addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body, headers))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not met within {limit:?}");
}

/// The worker's `/v1/status`.
pub fn status(w: &Worker) -> Value {
    let (_, body, _) = http(w, "GET", "/v1/status", None);
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Processes below `pid` that still run (zombies, which have exited, are not counted): a
/// worker's sandboxes and what runs in them.
pub fn live_descendants(pid: u32) -> usize {
    // (pid, parent, exited) of every process.
    let procs: Vec<(u32, u32, bool)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // Fields after the command (which may hold spaces) start after the last ')'.
            let mut rest = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
            let state = rest.next()?;
            let parent = rest.next()?.parse().ok()?;
            Some((p, parent, state == "Z"))
        })
        .collect();
    let mut below = vec![pid];
    let mut count = 0;
    while let Some(parent) = below.pop() {
        for &(p, pp, exited) in &procs {
            if pp == parent {
                below.push(p);
                count += usize::from(!exited);
            }
        }
    }
    count
}

/// Polls an asynchronous invocation until it is done.
pub fn wait_done(w: &Worker, id: &str) -> Value {
    let mut last = Value::Null;
    wait_for(Duration::from_secs(30), || {
        let (_, b, _) = http(w, "GET", &format!("/v1/invocations/{id}"), None);
        last = serde_json::from_str(&b).unwrap_or(Value::Null);
        last["done"] == true
    });
    last
}
