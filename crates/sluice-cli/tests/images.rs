//! Functions from container images through the real worker: an image built by the test from the
//! Rust no-op function and its libraries, imported from a path in the worker's import directory
//! and uploaded, registered by digest, by name and by source, invoked, refused while in use,
//! deleted and garbage-collected; its function survives a restart (references rebuilt); every
//! bad `image` field is a 400 that names it; uploads over the limit get 413 and a corrupt
//! archive 400 with nothing left behind. Needs bubblewrap (CI has it); skips loudly without.

mod common;
mod images_kit;

use common::{http, Worker};
use images_kit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn body(b: &str) -> Value {
    serde_json::from_str(b).unwrap_or(Value::Null)
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Files anywhere under the store's temporary directory (instance lock files aside).
fn temporaries(images: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for inst in std::fs::read_dir(images.join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if inst.path().is_dir() {
            out.extend(
                std::fs::read_dir(inst.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path().display().to_string()),
            );
        }
    }
    out
}

fn register(w: &Worker, spec: Value) -> (u16, Value) {
    let (s, b, _) = http(w, "POST", "/v1/functions", Some(&spec.to_string()));
    (s, body(&b))
}

#[test]
fn an_image_function_is_imported_run_held_survives_a_restart_and_is_collected() {
    if !can_sandbox() {
        return;
    }
    let mut w = Worker::start(&["[images]", "max_upload_bytes = 67108864"]);
    let imports = w.dir.join("data/imports");
    let layers = noop_layers();
    let digest = layout(&imports.join("noop"), &layers, noop_run(), "noop");

    // Import from a path in the import directory: new, then already there.
    let req = json!({"source": "oci-layout:noop", "ref": "noop"}).to_string();
    let (s, b, _) = http(&w, "POST", "/v1/images", Some(&req));
    assert_eq!(s, 201, "{b}");
    assert_eq!(body(&b)["digest"], json!(digest));
    let (s, _, _) = http(&w, "POST", "/v1/images", Some(&req));
    assert_eq!(s, 200);

    // Registered by digest, run: the image's user, workdir and env; the spec's env over it.
    let (s, v) = register(
        &w,
        json!({"name": "noop-img", "image": {"digest": digest},
        "env": {"FROM_SPEC": "2"}, "resources": {"memory_mb": 64}}),
    );
    assert_eq!(s, 201, "{v}\n{}", w.log());
    assert_eq!(v["image"]["digest"], json!(digest));
    let (s, b, h) = http(
        &w,
        "POST",
        "/v1/functions/noop-img/invoke",
        Some(r#"{"x":1}"#),
    );
    assert_eq!(s, 200, "{b}\n{}", w.log());
    assert_eq!(body(&b), json!({}), "the no-op answers {{}}");
    assert!(h.contains_key("x-sluice-cold-start-ms"), "{h:?}");
    let (s, b, _) = http(&w, "GET", &format!("/v1/images/{digest}"), None);
    assert_eq!(s, 200);
    assert_eq!(body(&b)["holders"], json!(["noop-img"]));
    assert_eq!(body(&b)["unpacked"], json!(true));

    // The same image by name, and by source (the digest pinned into the stored spec).
    let (s, v) = register(&w, json!({"name": "by-name", "image": {"ref": "noop"}}));
    assert_eq!(s, 201, "{v}");
    let (s, v) = register(
        &w,
        json!({"name": "by-source",
        "image": {"source": "oci-layout:noop", "ref": "noop"}}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["image"]["digest"], json!(digest));
    let (s, b, _) = http(&w, "POST", "/v1/functions/by-source/invoke", Some("{}"));
    assert_eq!(s, 200, "{b}");

    // Upload: the same layout packed, then an image of its own (another config).
    let packed = pack(&imports.join("noop"));
    let (s, b) = upload(w.addr, "", &packed, false);
    assert_eq!(s, 200, "already there: {b}");
    let other = w.dir.join("other");
    let mut run = noop_run();
    run["Env"] = json!(["PATH=/usr/local/bin", "VARIANT=upload"]);
    let uploaded = layout(&other, &layers, run, "other");
    let (s, b) = upload(w.addr, "?ref=other", &pack(&other), true);
    assert_eq!(s, 201, "{b}");
    assert_eq!(body(&b)["digest"], json!(uploaded));
    let (s, v) = register(&w, json!({"name": "uploaded", "image": {"ref": "other"}}));
    assert_eq!(s, 201, "{v}");
    let (s, b, _) = http(&w, "POST", "/v1/functions/uploaded/invoke", Some("[1]"));
    assert_eq!((s, body(&b)), (200, json!({})), "{b}");

    // In use: 409, naming the holders.
    let (s, b, _) = http(&w, "DELETE", &format!("/v1/images/{digest}"), None);
    assert_eq!(s, 409, "{b}");
    assert!(b.contains("noop-img") && b.contains("by-name"), "{b}");

    // Restart: the functions run again from the store, references rebuilt.
    assert!(w.term(Duration::from_secs(20)), "clean stop");
    let dir = w.dir.clone();
    let w = Worker::start_in(dir, &["[images]", "max_upload_bytes = 67108864"]);
    let (s, b, _) = http(&w, "POST", "/v1/functions/noop-img/invoke", Some("{}"));
    assert_eq!(s, 200, "after a restart: {b}\n{}", w.log());
    let (_, b, _) = http(&w, "GET", &format!("/v1/images/{digest}"), None);
    assert_eq!(
        body(&b)["holders"],
        json!(["by-name", "by-source", "noop-img"])
    );

    // Deleting and replacing functions releases the image; then it goes, and gc frees all.
    for f in ["noop-img", "by-name", "uploaded"] {
        let (s, _, _) = http(&w, "DELETE", &format!("/v1/functions/{f}"), None);
        assert_eq!(s, 204);
    }
    let (s, v) = register(&w, json!({"name": "by-source", "command": ["true"]}));
    assert_eq!(s, 200, "replaced by a host function: {v}");
    let (_, b, _) = http(&w, "GET", &format!("/v1/images/{digest}"), None);
    assert_eq!(body(&b)["holders"], json!([]), "{b}");
    for d in [&digest, &uploaded] {
        let (s, b, _) = http(&w, "DELETE", &format!("/v1/images/{d}"), None);
        assert_eq!(s, 200, "{b}");
    }
    let (s, b, _) = http(&w, "POST", "/v1/images/gc", None);
    assert_eq!(s, 200, "{b}");
    let store = w.dir.join("data/images");
    assert_eq!(
        count(&store.join("blobs/sha256")),
        0,
        "every blob collected"
    );
    assert_eq!(count(&store.join("roots")), 0, "every root collected");
    let (_, b, _) = http(&w, "GET", "/v1/images", None);
    assert_eq!(body(&b), json!([]));
}

#[test]
fn bad_images_are_refused_naming_the_field_and_bad_uploads_leave_nothing() {
    let w = Worker::start(&["[images]", "max_upload_bytes = 1048576"]);
    let imports = w.dir.join("data/imports");
    let tiny = vec![layer(&[
        Entry::Dir("etc"),
        Entry::File("etc/x", b"1".to_vec(), 0o644),
    ])];
    let run = json!({"Entrypoint": ["/bin/x"]});
    let digest = layout(&imports.join("tiny"), &tiny, run.clone(), "tiny");
    layout_with(
        &imports.join("arm"),
        &tiny,
        run.clone(),
        "arm",
        "arm64",
        "application/vnd.oci.image.layer.v1.tar",
    );
    layout_with(
        &imports.join("bz"),
        &tiny,
        run.clone(),
        "bz",
        "amd64",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
    );
    let outside = w.dir.join("outside");
    layout(&outside, &tiny, run, "tiny");
    let zero = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (json!({}), "image:", "give source"),
        (json!({"source": "ftp:/x"}), "image.source", "unknown kind"),
        (
            json!({"source": "oci-layout:tiny", "ref": "nope"}),
            "image.ref",
            "not found",
        ),
        (json!({"ref": "never-imported"}), "image.ref", "no image"),
        (json!({"digest": "sha256:12"}), "image.digest", "64"),
        (
            json!({"digest": zero}),
            "image.digest",
            "not in this worker's store",
        ),
        (
            json!({"source": "oci-layout:tiny", "digest": zero}),
            "image.digest",
            "digest mismatch",
        ),
        (
            json!({"source": "oci-layout:arm"}),
            "image.source",
            "no linux/amd64",
        ),
        (
            json!({"source": "oci-layout:bz"}),
            "image.source",
            "unsupported media type",
        ),
        (
            json!({"source": format!("oci-layout:{}", outside.display())}),
            "image.source",
            "outside",
        ),
        (
            json!({"source": "oci-layout:missing"}),
            "image.source",
            "missing",
        ),
        (
            json!({"source": "oci-layout:tiny", "tag": "x"}),
            "tag",
            "unknown field",
        ),
    ];
    for (image, field, why) in cases {
        let (s, v) = register(&w, json!({"name": "bad", "image": image}));
        let msg = v["error"]["message"].as_str().unwrap_or("").to_string();
        assert_eq!(s, 400, "{image}: {v}");
        assert!(msg.contains(field) && msg.contains(why), "{image}: {msg}");
    }
    let (s, v) = register(
        &w,
        json!({"name": "bad", "image": {"digest": digest}, "files": ["/etc"]}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = register(
        &w,
        json!({"name": "bad", "image": {"source": "oci-layout:tiny"}, "command": []}),
    );
    assert_eq!(s, 201, "the image's entrypoint is enough: {v}");

    // Uploads: over the limit (declared, and streamed without a length), and corrupt.
    let store = w.dir.join("data/images");
    let blobs = count(&store.join("blobs/sha256"));
    let big = vec![7u8; 2 << 20];
    for chunked in [false, true] {
        let (s, b) = upload(w.addr, "", &big, chunked);
        assert_eq!(s, 413, "chunked {chunked}: {b}");
    }
    let (s, b) = upload(w.addr, "", b"this is not a tar archive at all", false);
    assert_eq!(s, 400, "{b}");
    let mut cut = pack(&imports.join("tiny"));
    cut.truncate(cut.len() / 2);
    let (s, b) = upload(w.addr, "", &cut, true);
    assert_eq!(s, 400, "{b}");
    assert_eq!(count(&store.join("blobs/sha256")), blobs, "no blob added");
    assert!(temporaries(&store).is_empty(), "{:?}", temporaries(&store));
    let (_, b, _) = http(&w, "GET", "/v1/images", None);
    assert_eq!(body(&b).as_array().map(Vec::len), Some(1), "{b}");
    let (s, _, _) = http(&w, "GET", "/v1/images/sha256:zz", None);
    assert_eq!(s, 400);
    let (s, _, _) = http(&w, "GET", &format!("/v1/images/{zero}"), None);
    assert_eq!(s, 404);
    let (s, b, _) = http(
        &w,
        "POST",
        "/v1/images",
        Some(r#"{"source": "oci-layout:/etc"}"#),
    );
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("outside"), "{b}");
}

/// Whether `runtime` can run containers here (root, installed, and for crun not hybrid cgroups
/// with a v2 controller); said loudly when not.
fn oci_usable(runtime: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let installed = std::process::Command::new(runtime)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let hybrid = Path::new("/sys/fs/cgroup/memory").is_dir()
        && std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .is_ok_and(|c| !c.trim().is_empty());
    let ok = root && installed && !(runtime == "crun" && hybrid);
    if !ok {
        eprintln!(
            "SKIPPED {runtime}: needs root and {runtime} installed (here: root {root}, installed \
             {installed}{})",
            if runtime == "crun" && hybrid {
                "; crun refuses hybrid cgroups with a v2 controller"
            } else {
                ""
            }
        );
    }
    ok
}

#[test]
fn under_oci_runtimes_image_and_host_functions_run_and_are_torn_down() {
    for runtime in ["runc", "crun"] {
        if !oci_usable(runtime) {
            continue;
        }
        let mut w = Worker::start(&[&format!("isolation = \"{runtime}\"")]);
        let imports = w.dir.join("data/imports");
        let digest = layout(&imports.join("noop"), &noop_layers(), noop_run(), "noop");
        let (s, v) = register(
            &w,
            json!({"name": "img", "image": {"source": "oci-layout:noop"},
            "resources": {"memory_mb": 64}}),
        );
        assert_eq!(s, 201, "{runtime}: {v}");
        assert_eq!(v["image"]["digest"], json!(digest));
        // A canonical path: under an OCI runtime a program path through `..` is not resolved.
        let noop = noop_binary().canonicalize().expect("noop");
        let (s, v) = register(
            &w,
            json!({"name": "host", "command": [noop.display().to_string()],
            "resources": {"memory_mb": 64}}),
        );
        assert_eq!(s, 201, "{runtime}: {v}");
        for f in ["img", "host", "img"] {
            let (s, b, _) = http(&w, "POST", &format!("/v1/functions/{f}/invoke"), Some("{}"));
            assert_eq!(s, 200, "{runtime} {f}: {b}\n{}", w.log());
        }
        let (s, b, _) = http(&w, "GET", "/v1/status", None);
        assert_eq!(s, 200);
        assert_eq!(body(&b)["isolation"], json!(runtime), "{b}");
        let (s, v) = register(
            &w,
            json!({"name": "net", "image": {"digest": digest},
            "resources": {"network": true}}),
        );
        assert_eq!(s, 201, "{v}");
        let (s, b, _) = http(&w, "POST", "/v1/functions/net/invoke", Some("{}"));
        assert!(
            s == 502 && b.contains("not supported"),
            "{runtime}: {s} {b}"
        );
        // A graceful stop tears every container down: the runtime's state (in each sandbox's
        // directory), the directories and the cgroups go.
        let pid = w.pid().expect("pid");
        assert!(w.term(Duration::from_secs(30)), "{runtime}: clean stop");
        let sandboxes = w.dir.join("data/sandboxes");
        assert_eq!(count(&sandboxes), 0, "{runtime}: sandbox directories left");
        let prefix = format!("w{pid}-");
        for c in ["memory", "pids", "cpu", "devices", "freezer", ""] {
            let dir = Path::new("/sys/fs/cgroup").join(c).join("sluice");
            let left: Vec<String> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect();
            assert!(
                left.is_empty(),
                "{runtime}: cgroups left in {}: {left:?}",
                dir.display()
            );
        }
    }
}
