//! Isolation through the real worker: the escape probe (`sluice-sandbox`'s fixture) registered as
//! a function beside a victim function, in bubblewrap mode and in unshare mode (whose init is the
//! `sluice` binary itself), with the network off and on: every attempt on the worker's store, its
//! config's neighbour, the victim's sandbox and socket and the worker's port must fail. Also: a
//! plain process is refused without `allow_unisolated`, a killed worker's sandbox directories go
//! at the next start, and the examples and `sluice profile` run from a copy under /tmp.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn probe_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sluice-sandbox/tests/fixtures/probe.py")
}

fn register(w: &Worker, name: &str, network: bool) {
    let spec = json!({"name": name, "command": ["python3", probe_py().display().to_string()],
                      "resources": {"memory_mb": 256, "pids": 64, "network": network}});
    let (s, b, _) = http(w, "POST", "/v1/functions", Some(&spec.to_string()));
    assert!(s == 201 || s == 200, "{b}");
}

fn probe(isolation: &str) {
    let w = Worker::start(&[&format!("isolation = \"{isolation}\"")]);
    let secret = w.dir.join("secret");
    std::fs::write(&secret, "s3cret").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    register(&w, "victim", false);
    let (s, b, _) = http(
        &w,
        "POST",
        "/v1/functions/victim/invoke",
        Some(r#"{"op":"echo"}"#),
    );
    assert_eq!(s, 200, "{b}\n{}", w.log());
    let sandboxes = w.dir.join("data/sandboxes");
    let victim = std::fs::read_dir(&sandboxes)
        .expect("sandboxes")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("the victim's sandbox");
    let socket = victim.join("run/sluice.sock");
    assert!(socket.exists(), "{}", socket.display());
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok();
    let slirp = Command::new("slirp4netns")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for network in [false, true] {
        if network && !(tun && slirp) {
            eprintln!(
                "SKIPPING the networked probe: slirp4netns missing or /dev/net/tun closed to this user"
            );
            continue;
        }
        let name = format!("probe-{network}");
        register(&w, &name, network);
        let targets = json!({
            "op": "probe",
            "secret": secret.display().to_string(),
            "store": w.dir.join("data/sluice.redb").display().to_string(),
            "other_tmp": victim.join("tmp").display().to_string(),
            "other_socket_dir": victim.join("run").display().to_string(),
            "other_socket": socket.display().to_string(),
            "port": w.addr.port(),
            "tmp_mb": 64, "pids": 64,
        });
        let path = format!("/v1/functions/{name}/invoke");
        let (s, b, _) = http(&w, "POST", &path, Some(&targets.to_string()));
        assert_eq!(s, 200, "{isolation}: {b}\n{}", w.log());
        let table: Value = serde_json::from_str(&b).expect("table");
        let rows = table.as_object().expect("rows");
        assert!(rows.len() >= 30, "{table}");
        // Without cgroups (a worker that is not root here) no pids limit holds.
        // SAFETY: geteuid has no preconditions.
        let limits = unsafe { libc::geteuid() } == 0;
        if !limits {
            eprintln!("NOT CHECKED: the pids limit (no cgroups for a non-root worker here)");
        }
        let escaped: Vec<&String> = rows
            .iter()
            .filter(|(k, r)| r["escaped"] == true && (limits || !k.starts_with("start more than")))
            .map(|(k, _)| k)
            .collect();
        assert!(
            escaped.is_empty(),
            "{isolation}, network {network}: escaped {escaped:?}\n{table}"
        );
    }
}

#[test]
fn every_escape_fails_through_the_worker_under_bubblewrap() {
    if !Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPING: bubblewrap is not installed");
        return;
    }
    probe("bubblewrap");
}

#[test]
fn every_escape_fails_through_the_worker_under_unshare() {
    probe("unshare");
}

#[test]
fn a_killed_workers_sandbox_directories_go_at_the_next_start() {
    let mut w = Worker::start(&["isolation = \"bubblewrap\""]);
    register(&w, "victim", false);
    let (s, b, _) = http(
        &w,
        "POST",
        "/v1/functions/victim/invoke",
        Some(r#"{"op":"echo"}"#),
    );
    assert_eq!(s, 200, "{b}");
    let sandboxes = w.dir.join("data/sandboxes");
    let left: Vec<PathBuf> = std::fs::read_dir(&sandboxes)
        .expect("sandboxes")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    w.kill9();
    assert!(
        left[0].exists(),
        "a killed worker leaves its sandbox directory"
    );
    let dir = w.dir.clone();
    let w2 = Worker::start_in(dir, &["isolation = \"bubblewrap\""]);
    assert!(!left[0].exists(), "swept at the next start");
    drop(w2);
    let _ = std::fs::remove_dir_all(&w.dir);
}

#[test]
fn a_plain_process_needs_allow_unisolated() {
    let dir = std::env::temp_dir().join(format!("sluice-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = dir.join("worker.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\nisolation = \"plain\"\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["worker", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow_unisolated"), "{err}");
}

/// Copies `paths` (relative to the repository) into a fresh directory under /tmp that sandbox
/// users can read, keeping their layout.
fn copy_under_tmp(paths: &[&str]) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for p in paths {
        let dst = t.path().join(p);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        let ok = Command::new("cp")
            .arg("-r")
            .arg(common::repo().join(p))
            .arg(&dst)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "copy {p}");
    }
    t
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_examples_run_from_a_copy_under_tmp() {
    let copy = copy_under_tmp(&["examples/functions", "sdk/python"]);
    let w = Worker::start(&[]);
    let sdk = copy.path().join("sdk/python").display().to_string();
    let mut cases = vec![("hello", json!({"name": "tmp"}), "\"hello\"")];
    if python_has("onnxruntime") {
        let b64 = Command::new("base64")
            .arg("-w0")
            .arg(
                copy.path()
                    .join("examples/functions/textdir/samples/rotated.png"),
            )
            .output()
            .expect("base64");
        let image = String::from_utf8_lossy(&b64.stdout).into_owned();
        cases.push(("textdir", json!({"image_b64": image}), "\"direction\""));
    } else {
        eprintln!(
            "SKIPPING textdir: onnxruntime is not installed (scripts/install-python-deps.sh)"
        );
    }
    for (name, input, want) in cases {
        let dir = copy.path().join("examples/functions").join(name);
        let spec = json!({"name": name, "command": ["python3", "main.py"],
                          "workdir": dir.display().to_string(),
                          "env": {"PYTHONPATH": sdk, "TEXTDIR_THREADS": "1", "OMP_NUM_THREADS": "1"},
                          "resources": {"memory_mb": 1024}});
        let (s, b, _) = http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
        assert_eq!(s, 201, "{b}");
        let path = format!("/v1/functions/{name}/invoke");
        let (s, b, _) = http(&w, "POST", &path, Some(&input.to_string()));
        assert_eq!(s, 200, "{name}: {b}\n{}", w.log());
        assert!(b.contains(want), "{name}: {b}");
    }
}

#[test]
fn sluice_profile_runs_its_stages_in_sandboxes_from_a_copy_under_tmp() {
    let copy = copy_under_tmp(&["examples/pipelines/passthrough", "sdk/python"]);
    let input = copy.path().join("input.txt");
    std::fs::write(&input, "4096").expect("input");
    let spec = copy
        .path()
        .join("examples/pipelines/passthrough/pipeline-copy.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("profile")
        .arg(&spec)
        .arg("--inputs")
        .arg(&input)
        .args(["--batches", "1", "--shares", "100", "--repeats", "1"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The profile lands beside the spec, where `pipeline create` and `plan` look for it.
    let written = spec.with_file_name("profile.csv");
    let csv = std::fs::read_to_string(&written).expect("profile.csv beside the spec");
    assert!(
        csv.contains("\ngen,1,100,") && csv.contains("\nsum,1,100,"),
        "{csv}"
    );
}
