//! Sandboxes on an image root under every isolation this host has (bubblewrap, unshare, and the
//! OCI runtimes runc and crun when installed and the test runs as root): a root made by the test (the
//! Rust probe `sluice-sandbox-probe` and the libraries `ldd` lists, with the mount points the
//! image unpacker creates), beside a live host sandbox to attack and a worker-like directory.
//! Every escape attempt must fail (0 escapes) although the function is root of its image, whose
//! host user is the sandbox's unprivileged one; the image's files stay untouched. With `PROBE_MARKDOWN=1` the tables are printed.

mod support;

use serde_json::{json, Value};
use sluice_sandbox::oci::Runtime;
use sluice_sandbox::{ImageRoot, Isolation, Launcher, Root, SandboxSpec};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

fn probe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice-sandbox-probe"))
}

fn libraries(binary: &Path) -> Vec<String> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// An image root holding the probe at `/usr/local/bin/probe` and its libraries.
fn image_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for d in [
        "usr/local/bin",
        "usr/local/nvidia",
        "etc",
        "proc",
        "dev",
        "run/sluice",
    ] {
        std::fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    std::fs::create_dir_all(r.join("tmp")).expect("tmp");
    std::fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("passwd");
    for lib in libraries(&probe_bin()) {
        let dst = r.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&lib, &dst).expect("copy lib");
    }
    std::fs::copy(probe_bin(), r.join("usr/local/bin/probe")).expect("copy probe");
    t
}

#[tokio::test]
async fn every_escape_fails_from_an_image_root() {
    if !have_ldd() {
        return;
    }
    let root = image_root();
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = work.path().join("secret");
    std::fs::write(&secret, "s3cret").expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let store = work.path().join("data/sluice.redb");
    std::fs::create_dir_all(store.parent().expect("data")).expect("mkdir");
    std::fs::write(&store, "another tenant's input").expect("store");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let runtimes = [Runtime::Runc, Runtime::Crun].map(Isolation::Oci);
    for iso in ISOLATED.into_iter().chain(runtimes) {
        if matches!(iso, Isolation::Oci(_)) && !Launcher::available(iso, None) {
            eprintln!(
                "SKIPPING {iso}: not installed, not root, or (crun) hybrid cgroups with a \
                 controller in the v2 hierarchy, which crun refuses"
            );
            continue;
        }
        let Some(l) = launcher_in(iso, &work.path().join("data/sandboxes")) else {
            continue;
        };
        // The victim: a host sandbox under bubblewrap (unshare without it).
        let victim = ISOLATED
            .into_iter()
            .find_map(|v| launcher_in(v, &work.path().join("data/sandboxes")))
            .expect("an isolated launcher");
        let other = start(&victim, spec(&[])).await;
        let limits = limits();
        let targets = json!({
            "secret": secret.display().to_string(),
            "store": store.display().to_string(),
            "other_socket_dir": other.socket_dir().display().to_string(),
            "other_socket": other.socket_dir().join("sluice.sock").display().to_string(),
            "port": port,
            "tmp_mb": limits.tmp_bytes >> 20,
            "pids": limits.pids,
        });
        let s = SandboxSpec {
            id: next_id(),
            command: vec!["probe".into(), targets.to_string()],
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin".into())],
            root: Root::Image(ImageRoot {
                path: root.path().to_path_buf(),
                user: (0, 0),
            }),
            limits,
            ..SandboxSpec::default()
        };
        let mut sb = l.spawn(s).await.unwrap_or_else(|e| panic!("{iso}: {e}"));
        if is_root() {
            // Root of the image is the sandbox's own unprivileged host user, never host root.
            assert_ne!(sb.user().uid(), 0, "{iso}");
        }
        let table = sb.socket_dir().join("probe.json");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !table.exists() && Instant::now() < deadline {
            if sb.try_exited().is_some() && !table.exists() {
                panic!(
                    "{iso}: the probe ended without a table: {}",
                    sb.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = std::fs::read_to_string(&table)
            .unwrap_or_else(|e| panic!("{iso}: no table ({e}); stderr: {}", sb.stderr_tail()));
        let rows: Value = serde_json::from_str(&text).expect("table");
        let rows = rows.as_object().expect("object");
        let title = format!("{iso}, image root");
        if std::env::var_os("PROBE_MARKDOWN").is_some() {
            println!("\n#### {title}\n\n| attempt | result | detail |\n|---|---|---|");
            for (k, r) in rows {
                let v = if r["escaped"] == true {
                    "**escaped**"
                } else {
                    "blocked"
                };
                let d = r["detail"].as_str().unwrap_or("").replace('|', "/");
                println!("| {k} | {v} | {d} |");
            }
        }
        assert!(rows.len() >= 30, "{title}: {text}");
        let cgroups = l.cgroups() != sluice_sandbox::CgroupMode::None;
        let escaped: Vec<&String> = rows
            .iter()
            .filter(|(k, r)| r["escaped"] == true && (cgroups || !k.starts_with("start more than")))
            .map(|(k, _)| k)
            .collect();
        assert!(escaped.is_empty(), "{title}: escaped: {escaped:?}\n{text}");
        sb.kill().await;
        assert!(
            !root.path().join("usr/local/bin/probe-written").exists(),
            "{title}: the image root is untouched"
        );
        drop(other);
    }
}

fn have_ldd() -> bool {
    let ok = std::process::Command::new("ldd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ldd is missing, so no image root can be built from the probe");
    }
    ok
}
