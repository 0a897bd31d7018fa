//! The unchanged Python example function `examples/functions/hello` from a Debian image: the
//! root `scripts/debian-image.sh` builds with debootstrap (root, network, about a minute, ~300
//! MB, into out/debian-image), plus a layer with the example and the SDK, imported by the worker
//! from its import directory, registered and invoked. Slow and needs the built root: ignored by
//! default. Run: `sudo scripts/debian-image.sh && cargo test -p sluice-cli --test images_debian
//! -- --ignored`.

mod common;
mod images_kit;

use common::{http, repo, Worker};
use images_kit::*;
use serde_json::{json, Value};
use std::path::Path;

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
}

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(&digest["sha256:".len()..])
}

#[test]
#[ignore = "needs the Debian root of scripts/debian-image.sh (debootstrap: root, network, ~1 min)"]
fn the_hello_example_runs_unchanged_from_a_debian_image() {
    let debian = repo().join("out/debian-image/layout");
    if !debian.join("index.json").is_file() {
        panic!(
            "run `sudo scripts/debian-image.sh` first: {} is missing",
            debian.display()
        );
    }
    let w = Worker::start(&[]);
    let dir = w.dir.join("data/imports/hello");
    // Debian's manifest and config, its layers linked, then a layer with the example and the SDK.
    let index = read_json(&debian.join("index.json"));
    let manifest = read_json(&blob_path(
        &debian,
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    let config = read_json(&blob_path(
        &debian,
        manifest["config"]["digest"].as_str().expect("config"),
    ));
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    for l in manifest["layers"].as_array().expect("layers") {
        let d = l["digest"].as_str().expect("layer");
        std::fs::hard_link(blob_path(&debian, d), blob_path(&dir, d))
            .or_else(|_| std::fs::copy(blob_path(&debian, d), blob_path(&dir, d)).map(|_| ()))
            .expect("link layer");
    }
    let hello = repo().join("examples/functions/hello/main.py");
    let sdk = repo().join("sdk/python/sluice_function.py");
    let app = layer(&[
        Entry::Dir("app"),
        Entry::Dir("app/hello"),
        Entry::File(
            "app/hello/main.py",
            std::fs::read(hello).expect("main.py"),
            0o644,
        ),
        Entry::Dir("app/sdk"),
        Entry::File(
            "app/sdk/sluice_function.py",
            std::fs::read(sdk).expect("sdk"),
            0o644,
        ),
    ]);
    let app_digest = sha256(&app);
    std::fs::write(blob_path(&dir, &app_digest), &app).expect("app layer");
    let mut config = config;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .expect("diff ids")
        .push(json!(app_digest));
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = sha256(&config);
    std::fs::write(blob_path(&dir, &config_digest), &config).expect("config");
    let mut manifest = manifest;
    manifest["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": config_digest, "size": config.len()});
    manifest["layers"].as_array_mut().expect("layers").push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": app_digest, "size": app.len()}));
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    let digest = sha256(&manifest);
    std::fs::write(blob_path(&dir, &digest), &manifest).expect("manifest");
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
        "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "hello"}}]})
        .to_string(),
    )
    .expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");

    let spec = json!({"name": "hello", "image": {"source": "oci-layout:hello", "ref": "hello"},
        "command": ["python3", "main.py"], "workdir": "/app/hello",
        "env": {"PYTHONPATH": "/app/sdk", "PYTHONUNBUFFERED": "1"},
        "resources": {"memory_mb": 128}});
    let (s, b, _) = http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    assert_eq!(s, 201, "{b}\n{}", w.log());
    let (s, b, _) = http(
        &w,
        "POST",
        "/v1/functions/hello/invoke",
        Some(r#"{"name":"debian"}"#),
    );
    assert_eq!(s, 200, "{b}\n{}", w.log());
    assert_eq!(
        serde_json::from_str::<Value>(&b).expect("json"),
        json!({"hello": "debian"})
    );
}
