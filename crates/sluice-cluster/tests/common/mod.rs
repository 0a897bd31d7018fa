//! Shared helpers of the cluster integration tests: real etcd, nats-server, workers and routers
//! as processes on loopback ports with temporary data ([`procs`]), and a minimal blocking
//! HTTP/1.1 client ([`http`]). Every wait is bounded.

#![allow(dead_code)]

pub mod http;
pub mod procs;

#[allow(unused_imports)]
pub use http::{call, wait_for};
#[allow(unused_imports)]
pub use procs::{Cluster, Etcd, Nats, Proc, RouterProc, WorkerProc};

use serde_json::{json, Value};
use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `sluice` binary: `$SLUICE_BIN`, else `sluice` beside this test's `deps/` folder (built
/// by `cargo build -p sluice-cli`, or by `cargo test --workspace`).
pub fn sluice_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let bin = dir.join("sluice");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p sluice-cli` first (or set SLUICE_BIN)",
        bin.display()
    );
    bin
}

/// A fresh temporary directory (removed by the caller's `TempDir`).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sluice-cluster-it-")
        .tempdir()
        .expect("temporary directory")
}

/// A spec running the Python test function (`crates/sluice-cli/tests/fixtures/functions/
/// behaviours.py`): `{"do": "sleep", "seconds": S}`, `{"do": "pid"}`, echo otherwise.
pub fn function(name: &str) -> Value {
    let script = repo().join("crates/sluice-cli/tests/fixtures/functions/behaviours.py");
    json!({"name": name, "command": ["python3", script.display().to_string()],
           "env": {"SLUICE_SDK": repo().join("sdk/python").display().to_string()},
           "resources": {"memory_mb": 256}})
}

/// Whether the tests run as root (network namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
