//! A real image: the Rust no-op function (`sluice-fn`'s `noop` example) and the libraries `ldd`
//! lists, packed into an OCI layout by the test (a merged-/usr base layer with `lib -> usr/lib`,
//! then the function), imported, unpacked, and run under bubblewrap on the image root: it must
//! answer `GET /ready` and `POST /invoke` on its socket. Without bubblewrap the test still checks
//! that every library resolves inside the root, and says loudly that it did not run the binary.

mod common;

use common::layout::{image, index, tagged, LAYER_TAR};
use common::{have, Layer};
use serde_json::json;
use sluice_image::{ImageSource, ImageStore, RunDefaults};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the example (a no-op when it is up to date) and returns its path;
/// `SLUICE_TEST_NOOP=<path>` names one built beforehand instead (where cargo cannot run:
/// `scripts/test-as-user.sh` runs the tests as a user without a toolchain).
fn noop_binary() -> PathBuf {
    if let Some(prebuilt) = std::env::var_os("SLUICE_TEST_NOOP") {
        return PathBuf::from(prebuilt);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "sluice-fn", "--example", "noop"])
        .current_dir(&workspace)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cargo build -p sluice-fn --example noop failed"
    );
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(workspace.join("target"), PathBuf::from);
    target.join("debug/examples/noop")
}

/// The absolute paths `ldd` prints for `binary` (the loader included).
fn libraries(binary: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    assert!(out.status.success(), "ldd failed");
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

fn request(socket: &Path, raw: &str) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_noop_function_runs_from_its_image_root() {
    if !have(
        "ldd",
        "the real-image test cannot find the function's libraries",
    ) {
        return;
    }
    let binary = noop_binary();
    let libs = libraries(&binary);
    assert!(libs.iter().any(|l| l.contains("libc.so")), "{libs:?}");
    let mut base = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .dir("usr/lib64", 0o755)
        .symlink("lib", "usr/lib")
        .symlink("lib64", "usr/lib64");
    for lib in &libs {
        let bytes = std::fs::read(lib).unwrap();
        base = base.file(lib, &bytes, 0o755);
    }
    let function = Layer::new().dir("usr/local/bin", 0o755).file(
        "usr/local/bin/noop",
        &std::fs::read(&binary).unwrap(),
        0o755,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let run = json!({"Entrypoint": ["/usr/local/bin/noop"], "Env": ["PATH=/usr/local/bin:/usr/bin"], "User": "65534:65534"});
    // Uncompressed layers: gzip in a debug build would dominate the test's time.
    let manifest = image(&dir, &[base.tar(), function.tar()], LAYER_TAR, run);
    index(&dir, vec![tagged(manifest, "noop")]);
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let imported = store
        .import(&ImageSource::OciLayout(dir), Some("noop"))
        .unwrap();
    let root = store.root_for(&imported).unwrap();
    for lib in &libs {
        let inside = root.join(lib.trim_start_matches('/')); // through the root's own lib -> usr/lib
        assert!(
            inside.is_file(),
            "{lib} is not in the root at {}",
            inside.display()
        );
    }
    assert!(std::fs::symlink_metadata(root.join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());
    let defaults = RunDefaults::from_config(&imported.config, &root).unwrap();
    assert_eq!(defaults.command(None).unwrap(), ["/usr/local/bin/noop"]);
    if !have(
        "bwrap",
        "the function binary was not run on its root (only its libraries were checked)",
    ) {
        return;
    }
    let sockets = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        sockets.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut child = Command::new("bwrap")
        .arg("--ro-bind")
        .arg(&root)
        .args([
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--unshare-all",
            "--die-with-parent",
        ])
        .args([
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--chdir",
            &defaults.workdir,
        ])
        .arg("--bind")
        .arg(sockets.path())
        .args([
            "/run/sluice",
            "--setenv",
            "SLUICE_SOCKET",
            "/run/sluice/fn.sock",
        ])
        .args(defaults.command(None).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = sockets.path().join("fn.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the function exited ({status}) before binding its socket: {err}");
        }
        assert!(Instant::now() < deadline, "no socket after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = request(&socket, "GET /ready HTTP/1.1\r\nHost: f\r\n\r\n");
    let invoke = request(
        &socket,
        "POST /invoke HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\n\r\n{}",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        invoke.starts_with("HTTP/1.1 200") && invoke.ends_with("{}"),
        "{invoke}"
    );
}
