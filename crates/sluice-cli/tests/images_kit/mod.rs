//! Images the image tests build themselves (no registry is reachable): the Rust no-op function
//! (`cargo build -p sluice-fn --example noop`) and the libraries `ldd` lists, in uncompressed
//! layers of an OCI layout written by hand; the layout packed as an upload; raw uploads.

#![allow(dead_code)]

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn sha256(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The no-op function, built (a no-op when up to date); `SLUICE_TEST_NOOP=<path>` names one
/// built beforehand instead (where cargo cannot run: `scripts/test-as-user.sh` runs the tests as
/// a user without a toolchain).
pub fn noop_binary() -> PathBuf {
    if let Some(prebuilt) = std::env::var_os("SLUICE_TEST_NOOP") {
        return PathBuf::from(prebuilt);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "sluice-fn", "--example", "noop"])
        .current_dir(&workspace)
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo build -p sluice-fn --example noop");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(workspace.join("target"), PathBuf::from);
    target.join("debug/examples/noop")
}

/// The absolute paths `ldd` prints for `binary` (the loader included).
pub fn libraries(binary: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
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

/// A layer tar: (path, contents, mode) files, directories (contents `None`) and symlinks.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, Vec<u8>, u32),
    Link(&'a str, &'a str),
}

pub fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).expect("dir");
            }
            Entry::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).expect("file");
            }
            Entry::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).expect("link");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let hex = &d["sha256:".len()..];
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("blobs");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).expect("blob");
    d
}

/// Writes an OCI layout at `dir` with one image of `layers` (uncompressed, or with
/// `media_type`), run config `run`, platform `arch`, tagged `tag`; returns the manifest digest.
pub fn layout(dir: &Path, layers: &[Vec<u8>], run: Value, tag: &str) -> String {
    layout_with(
        dir,
        layers,
        run,
        tag,
        "amd64",
        "application/vnd.oci.image.layer.v1.tar",
    )
}

pub fn layout_with(
    dir: &Path,
    layers: &[Vec<u8>],
    run: Value,
    tag: &str,
    arch: &str,
    media_type: &str,
) -> String {
    std::fs::create_dir_all(dir).expect("layout dir");
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = json!({"architecture": arch, "os": "linux", "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = put_blob(dir, &config);
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": media_type, "digest": put_blob(dir, l), "size": l.len()}))
        .collect();
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": layer_descs});
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    let digest = put_blob(dir, &manifest);
    let mut platform = json!({"architecture": arch, "os": "linux"});
    if arch != "amd64" {
        platform["variant"] = json!("v8");
    }
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
        "size": manifest.len(), "platform": platform,
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");
    digest
}

/// The no-op function's layers: a merged-/usr base with its libraries, then the function.
pub fn noop_layers() -> Vec<Vec<u8>> {
    let binary = noop_binary();
    let libs = libraries(&binary);
    assert!(libs.iter().any(|l| l.contains("libc.so")), "{libs:?}");
    let mut base = vec![
        Entry::Dir("usr"),
        Entry::Dir("usr/lib"),
        Entry::Dir("usr/lib64"),
        Entry::Link("lib", "usr/lib"),
        Entry::Link("lib64", "usr/lib64"),
        Entry::Dir("etc"),
        Entry::File(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:4242:4242::/tmp:/bin/sh\n".to_vec(),
            0o644,
        ),
    ];
    let libs: Vec<(String, Vec<u8>)> = libs
        .iter()
        .map(|l| {
            (
                l.trim_start_matches('/').to_string(),
                std::fs::read(l).expect("lib"),
            )
        })
        .collect();
    for (p, bytes) in &libs {
        base.push(Entry::File(p, bytes.clone(), 0o755));
    }
    let base = layer(&base);
    let function = layer(&[
        Entry::Dir("usr/local"),
        Entry::Dir("usr/local/bin"),
        Entry::File(
            "usr/local/bin/noop",
            std::fs::read(&binary).expect("noop"),
            0o755,
        ),
    ]);
    vec![base, function]
}

/// The no-op function's run config (`app` from its own /etc/passwd as the user).
pub fn noop_run() -> Value {
    json!({"Entrypoint": ["/usr/local/bin/noop"], "Env": ["PATH=/usr/local/bin:/usr/bin", "FROM_IMAGE=1"],
           "User": "app", "WorkingDir": "/tmp"})
}

/// An OCI layout directory packed as a tar (what `sluice image import <dir>` uploads).
pub fn pack(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_path_with_name(dir.join("oci-layout"), "oci-layout")
        .expect("marker");
    b.append_path_with_name(dir.join("index.json"), "index.json")
        .expect("index");
    b.append_dir_all("blobs", dir.join("blobs")).expect("blobs");
    b.into_inner().expect("tar")
}

/// POSTs `body` as an upload (`chunked`: without a Content-Length, in 64 KiB chunks); returns
/// the status and body.
pub fn upload(
    addr: std::net::SocketAddr,
    query: &str,
    body: &[u8],
    chunked: bool,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let len = if chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!(
        "POST /v1/images{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-tar\r\n{len}\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    if chunked {
        for c in body.chunks(64 << 10) {
            if s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .is_err()
                || s.write_all(c).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    } else {
        let _ = s.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, rest.to_string())
}

/// Whether bubblewrap or unshare can run sandboxes here (said loudly when not).
pub fn can_sandbox() -> bool {
    let ok = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: bubblewrap cannot create sandboxes here, so image functions cannot run"
        );
    }
    ok
}
