//! Import formats: OCI layouts (tags, digests, indexes with several platforms), legacy docker-save
//! archives and Docker 25 OCI-in-tar archives synthesised here, and the errors for each bad case.

mod common;

use common::layout::{self, blob, image, index, single, tagged, LAYER_GZIP, LAYER_TAR, LAYER_ZSTD};
use common::{gzip, walk_files, Layer};
use serde_json::json;
use sluice_image::digest::Digest;
use sluice_image::{ImageError, ImageSource, ImageStore};
use std::path::Path;

fn tars() -> Vec<Vec<u8>> {
    vec![
        Layer::new()
            .dir("bin", 0o755)
            .file("bin/app", b"#!/bin/sh\necho hi\n", 0o755)
            .tar(),
        Layer::new()
            .dir("etc", 0o755)
            .file("etc/greeting", b"hello", 0o644)
            .whiteout("bin/app")
            .tar(),
    ]
}

fn run() -> serde_json::Value {
    json!({"Entrypoint": ["/bin/app"], "Cmd": ["--x"], "Env": ["A=1"], "WorkingDir": "/etc"})
}

fn oci(dir: &Path) -> ImageSource {
    ImageSource::OciLayout(dir.to_path_buf())
}

#[test]
fn oci_layout_by_tag_and_by_digest_with_each_compression() {
    for media in [LAYER_GZIP, LAYER_ZSTD, LAYER_TAR] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        let manifest = image(&dir, &tars(), media, run());
        index(&dir, vec![tagged(manifest.clone(), "v1")]);
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let by_tag = store.import(&oci(&dir), Some("v1")).unwrap();
        assert_eq!(
            by_tag.digest.to_string(),
            manifest["digest"].as_str().unwrap()
        );
        assert!(by_tag.refs.contains("v1"));
        assert_eq!(
            by_tag.config.entrypoint.as_deref(),
            Some(&["/bin/app".to_string()][..])
        );
        assert_eq!(by_tag.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        let by_digest = store
            .import(&oci(&dir), manifest["digest"].as_str())
            .unwrap();
        assert_eq!(by_digest.digest, by_tag.digest);
        let root = store.root_for(&by_tag).unwrap();
        assert_eq!(std::fs::read(root.join("etc/greeting")).unwrap(), b"hello");
        assert!(
            !root.join("bin/app").exists(),
            "whited out by the second layer"
        );
        assert_eq!(store.list().unwrap().len(), 1);
    }
}

#[test]
fn oci_layout_errors_are_typed_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let m1 = image(&dir, &tars(), LAYER_GZIP, run());
    let m2 = image(&dir, &tars()[..1], LAYER_GZIP, json!({}));
    index(&dir, vec![tagged(m1, "one"), tagged(m2, "two")]);
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let err = store.import(&oci(&dir), None).unwrap_err();
    assert!(matches!(err, ImageError::MissingRef { .. }), "{err}");
    assert!(err.to_string().contains("one, two"), "{err}");
    let err = store.import(&oci(&dir), Some("three")).unwrap_err();
    assert!(matches!(err, ImageError::RefNotFound { .. }), "{err}");
    let err = store
        .import(&oci(&dir), Some(&Digest::of(b"x").to_string()))
        .unwrap_err();
    assert!(matches!(err, ImageError::RefNotFound { .. }), "{err}");
    let err = store.import(&oci(&dir), Some("sha256:zz")).unwrap_err();
    assert!(err.to_string().contains("ref"), "{err}");
    let err = store
        .import(&oci(&tmp.path().join("nowhere")), None)
        .unwrap_err();
    assert!(matches!(err, ImageError::MissingFile { .. }), "{err}");
    std::fs::write(
        dir.join("index.json"),
        br#"{"schemaVersion": 2, "manifests": [{"digest": 5}]}"#,
    )
    .unwrap();
    let err = store.import(&oci(&dir), None).unwrap_err();
    assert!(
        err.to_string().contains("index.json") && err.to_string().contains("manifests[0].digest"),
        "{err}"
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let manifest = single(&dir, &tars(), "t", run());
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("blobs/sha256")
                .join(&manifest["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let layer_hex = &m["layers"][1]["digest"].as_str().unwrap()[7..];
    let layer_path = dir.join("blobs/sha256").join(layer_hex);
    let mut bytes = std::fs::read(&layer_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&layer_path, &bytes).unwrap();
    let store_dir = tmp.path().join("store");
    let store = ImageStore::open(&store_dir).unwrap();
    let err = store.import(&oci(&dir), Some("t")).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(!store_dir.join("blobs/sha256").join(layer_hex).exists());
    let leftovers: Vec<_> = walk_files(&store_dir.join("tmp"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_diff_id_mismatch_is_refused_at_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layer = gzip(&tars()[0]);
    let l = blob(&dir, LAYER_GZIP, &layer);
    let config = blob(
        &dir,
        "application/vnd.oci.image.config.v1+json",
        &layout::config(&[Digest::of(b"wrong")], json!({})),
    );
    let manifest =
        json!({"schemaVersion": 2, "mediaType": layout::MANIFEST, "config": config, "layers": [l]});
    let m = blob(
        &dir,
        layout::MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    index(&dir, vec![tagged(m, "t")]);
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let err = store.import(&oci(&dir), None).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    assert!(!store.has_blob(&Digest::of(&layer)));
}

#[test]
fn unsupported_media_types_and_layer_counts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let t = tars();
    let l = blob(&dir, "application/vnd.oci.image.layer.v1.tar+bzip2", &t[0]);
    let config = blob(
        &dir,
        "application/vnd.oci.image.config.v1+json",
        &layout::config(&[Digest::of(&t[0])], json!({})),
    );
    let manifest = json!({"schemaVersion": 2, "mediaType": layout::MANIFEST, "config": config, "layers": [l.clone(), l]});
    let m = blob(
        &dir,
        layout::MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let bad_kind = blob(&dir, "application/vnd.example.thing", b"{}");
    index(&dir, vec![tagged(m, "t"), tagged(bad_kind, "odd")]);
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let err = store.import(&oci(&dir), Some("t")).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::LayerCount {
                layers: 2,
                diff_ids: 1
            }
        ),
        "{err}"
    );
    let err = store.import(&oci(&dir), Some("odd")).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsupportedMediaType { .. }),
        "{err}"
    );
}

#[test]
fn an_index_picks_linux_amd64_and_names_the_platforms_it_has_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let amd = image(&dir, &tars(), LAYER_GZIP, run());
    let arm = image(&dir, &tars()[..1], LAYER_GZIP, json!({}));
    let plat = |mut d: serde_json::Value, arch: &str| {
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let nested = json!({"schemaVersion": 2, "mediaType": layout::INDEX,
        "manifests": [plat(arm.clone(), "arm64"), plat(amd.clone(), "amd64")]});
    let list = blob(&dir, layout::INDEX, &serde_json::to_vec(&nested).unwrap());
    let only_arm = json!({"schemaVersion": 2, "mediaType": layout::INDEX,
        "manifests": [plat(arm.clone(), "arm64"), plat(arm, "s390x")]});
    let arm_list = blob(&dir, layout::INDEX, &serde_json::to_vec(&only_arm).unwrap());
    index(
        &dir,
        vec![tagged(list, "multi"), tagged(arm_list, "armonly")],
    );
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let image = store.import(&oci(&dir), Some("multi")).unwrap();
    assert_eq!(image.digest.to_string(), amd["digest"].as_str().unwrap());
    let err = store.import(&oci(&dir), Some("armonly")).unwrap_err();
    assert!(matches!(err, ImageError::PlatformNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("linux/arm64, linux/s390x"),
        "{err}"
    );
}

/// A tar of `files` (name, bytes), plus symlinks (name, target).
fn archive(files: &[(String, Vec<u8>)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn legacy_docker_save_archive() {
    let t = tars();
    let diff_ids: Vec<Digest> = t.iter().map(|x| Digest::of(x)).collect();
    let manifest = json!([{"Config": "abc.json", "RepoTags": ["example/app:1.0"],
        "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"]}]);
    let mut three = diff_ids.clone();
    three.push(diff_ids[0].clone());
    let config3 = layout::config(&three, run());
    let files = vec![
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        ("abc.json".to_string(), config3),
        ("l1/layer.tar".to_string(), t[0].clone()),
        ("l2/layer.tar".to_string(), gzip(&t[1])),
        ("repositories".to_string(), b"{}".to_vec()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("app.tar");
    // l3 links to l4, which links to l1 (listed after l3): docker save shares layers by symlink.
    let links = [
        ("l3/layer.tar", "../l4/layer.tar"),
        ("l4/layer.tar", "../l1/layer.tar"),
    ];
    std::fs::write(&file, archive(&files, &links)).unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let source = ImageSource::DockerArchive(file.clone());
    let image = store.import(&source, None).unwrap();
    assert!(image.refs.contains("example/app:1.0"));
    assert_eq!(image.layers.len(), 3);
    let again = store.import(&source, Some("example/app:1.0")).unwrap();
    assert_eq!(
        again.digest, image.digest,
        "the synthesised manifest is deterministic"
    );
    let root = store.root_for(&image).unwrap();
    assert_eq!(
        std::fs::read(root.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho hi\n",
        "re-added by layer 3"
    );
    let err = store.import(&source, Some("other:tag")).unwrap_err();
    assert!(
        matches!(err, ImageError::RefNotFound { .. })
            && err.to_string().contains("example/app:1.0"),
        "{err}"
    );
    // Uploads go through a temporary file.
    let mut upload = std::fs::File::open(&file).unwrap();
    let uploaded = store.import_archive_stream(&mut upload, None).unwrap();
    assert_eq!(uploaded.digest, image.digest);
    assert!(walk_files(&tmp.path().join("store/tmp")).is_empty());
}

#[test]
fn docker_25_oci_in_tar_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let manifest = image(&dir, &tars(), LAYER_TAR, run());
    let mut entry = manifest.clone();
    entry["annotations"] = json!({"io.containerd.image.name": "docker.io/library/app:2",
        "org.opencontainers.image.ref.name": "2"});
    index(&dir, vec![entry]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for name in ["index.json", "oci-layout"] {
        files.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
    }
    let mut blob_names = Vec::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        files.push((name.clone(), std::fs::read(e.path()).unwrap()));
        blob_names.push(name);
    }
    let legacy = json!([{"Config": "blobs/sha256/unused", "RepoTags": ["app:2"], "Layers": []}]);
    files.push((
        "manifest.json".to_string(),
        serde_json::to_vec(&legacy).unwrap(),
    ));
    let file = tmp.path().join("d25.tar");
    std::fs::write(&file, archive(&files, &[])).unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let source = ImageSource::DockerArchive(file);
    for reference in [
        None,
        Some("app:2"),
        Some("2"),
        Some("docker.io/library/app:2"),
    ] {
        let image = store.import(&source, reference).unwrap();
        assert_eq!(
            image.digest.to_string(),
            manifest["digest"].as_str().unwrap(),
            "{reference:?}"
        );
    }
    let image = store.find("docker.io/library/app:2").unwrap();
    assert!(store
        .root_for(&image)
        .unwrap()
        .join("etc/greeting")
        .is_file());
}

#[test]
fn a_corrupt_archive_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let mut garbage: &[u8] = &[0x55; 3000];
    assert!(store.import_archive_stream(&mut garbage, None).is_err());
    let mut empty: &[u8] = &[];
    let err = store.import_archive_stream(&mut empty, None).unwrap_err();
    assert!(matches!(err, ImageError::MissingFile { .. }), "{err}");
    let files = vec![("manifest.json".to_string(), b"[{\"Config\": 1}]".to_vec())];
    let mut bad = &archive(&files, &[])[..];
    let err = store.import_archive_stream(&mut bad, None).unwrap_err();
    assert!(
        err.to_string().contains("manifest.json") && err.to_string().contains("Config"),
        "{err}"
    );
}
