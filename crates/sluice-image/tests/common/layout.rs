//! OCI image layouts and docker-save archives written by the tests themselves.

use serde_json::{json, Value};
use sluice_image::digest::Digest;
use std::path::Path;

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Writes `bytes` as a blob of the layout at `dir`; returns a descriptor.
pub fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = Digest::of(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
    json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
}

/// An image config for `diff_ids` with `config` as its run defaults.
pub fn config(diff_ids: &[Digest], config: Value) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": ids},
    }))
    .unwrap()
}

/// Writes an image (uncompressed tars, each stored with `media_type`) and returns its manifest
/// descriptor (not yet in any index).
pub fn image(dir: &Path, tars: &[Vec<u8>], media_type: &str, run: Value) -> Value {
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::of(t)).collect();
    let layers: Vec<Value> = tars
        .iter()
        .map(|t| {
            let stored = match media_type {
                LAYER_GZIP => super::gzip(t),
                LAYER_ZSTD => super::zstd(t),
                _ => t.clone(),
            };
            blob(dir, media_type, &stored)
        })
        .collect();
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &config(&diff_ids, run),
    );
    let manifest =
        json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers});
    blob(dir, MANIFEST, &serde_json::to_vec(&manifest).unwrap())
}

/// Writes `oci-layout` and `index.json` listing `manifests`.
pub fn index(dir: &Path, manifests: Vec<Value>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// `descriptor` with a tag annotation (and optionally a platform).
pub fn tagged(mut descriptor: Value, tag: &str) -> Value {
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    descriptor
}

/// A one-image OCI layout at `dir` tagged `tag`.
pub fn single(dir: &Path, tars: &[Vec<u8>], tag: &str, run: Value) -> Value {
    let manifest = image(dir, tars, LAYER_GZIP, run);
    index(dir, vec![tagged(manifest.clone(), tag)]);
    manifest
}
