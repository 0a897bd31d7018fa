//! Shared helpers of the worker integration tests: start the real `sluice worker` binary on a
//! free port with a private data directory, a minimal blocking HTTP/1.1 client, and test
//! function specs.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
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
}

impl Worker {
    /// Starts a worker whose config is the defaults plus `extra` TOML lines.
    pub fn start(extra: &[&str]) -> Worker {
        let dir = std::env::temp_dir().join(format!(
            "sluice-it-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts a worker on an existing data directory (restart tests).
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Worker {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
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
        let cfg = format!(
            "listen = \"{addr}\"\ndata_dir = \"{}\"\nstart_timeout_ms = 20000\n{}\n[gpu]\nforce_simulated = true\n{}\n",
            dir.join("data").display(),
            top.join("\n"),
            tables.join("\n")
        );
        let cfg_path = dir.join("worker.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("worker.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["worker", "--config"])
            .arg(&cfg_path)
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the worker");
        let w = Worker {
            child: Some(child),
            addr,
            dir,
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() && http(&w, "GET", "/healthz", None).0 == 200 {
                return w;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("worker did not come up: {}", w.log());
    }

    pub fn clone_addr(&self) -> Worker {
        Worker {
            child: None,
            addr: self.addr,
            dir: self.dir.clone(),
            token: self.token.clone(),
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
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill9();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
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
    let mut s = TcpStream::connect(w.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
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
    (status, body, headers)
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
