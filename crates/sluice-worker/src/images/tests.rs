//! Unit tests of the worker's images that need no image: the import directories, the errors
//! that name a field, missing images. Imports, uploads, registration, running, deletion and
//! restarts are tested end to end in `crates/sluice-cli/tests/images*.rs`.

use super::*;

fn images(t: &Path) -> Images {
    Images::open(&t.join("data"), &[], 1 << 20).expect("open")
}

#[test]
fn only_paths_inside_the_import_directories_are_imported() {
    let t = tempfile::tempdir().expect("tempdir");
    let im = images(t.path());
    assert!(
        t.path().join("data/imports").is_dir(),
        "the default is made"
    );
    let outside = t.path().join("elsewhere.tar");
    std::fs::write(&outside, "x").expect("write");
    let e = im
        .import(&format!("docker-archive:{}", outside.display()), None)
        .expect_err("outside");
    assert!(
        matches!(&e, ImagesError::Field { field: "source", message } if message.contains("outside")),
        "{e}"
    );
    // A symlink inside pointing out is followed before the check.
    let link = t.path().join("data/imports/link.tar");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let e = im
        .import("docker-archive:link.tar", None)
        .expect_err("link");
    assert!(e.to_string().contains("outside"), "{e}");
    // Inside, a relative path is found, and a broken archive is the source's fault.
    std::fs::write(t.path().join("data/imports/bad.tar"), "not a tar").expect("write");
    let e = im.import("docker-archive:bad.tar", None).expect_err("bad");
    assert!(
        matches!(
            &e,
            ImagesError::Field {
                field: "source",
                ..
            }
        ),
        "{e}"
    );
    let e = im.import("ftp:x", None).expect_err("kind");
    assert!(
        matches!(
            &e,
            ImagesError::Field {
                field: "source",
                ..
            }
        ),
        "{e}"
    );
    assert!(im.list().expect("list").is_empty(), "nothing was stored");
}

#[test]
fn missing_images_are_named_by_the_field_that_named_them() {
    let t = tempfile::tempdir().expect("tempdir");
    let im = images(t.path());
    let d = format!("sha256:{}", "b".repeat(64));
    let resolve = |json: &str| {
        let r: ImageRef = serde_json::from_str(json).expect("ref");
        im.resolve(&r, &[], None, &BTreeMap::new(), "f")
            .expect_err(json)
    };
    let field = |e: ImagesError| match e {
        ImagesError::Field { field, .. } => field,
        other => panic!("not a field error: {other}"),
    };
    assert_eq!(
        field(resolve(&format!(r#"{{"digest": "{d}"}}"#))),
        "image.digest"
    );
    assert_eq!(field(resolve(r#"{"ref": "app:1"}"#)), "image.ref");
    assert_eq!(
        field(resolve(r#"{"source": "oci-layout:/etc"}"#)),
        "image.source"
    );
    assert!(matches!(im.get(&d), Err(ImagesError::NotFound(_))));
    assert!(matches!(im.remove(&d), Err(ImagesError::NotFound(_))));
    assert!(matches!(
        im.get("sha256:xyz"),
        Err(ImagesError::Field {
            field: "digest",
            ..
        })
    ));
    assert_eq!(im.rebuild_holders(&[]).expect("rebuild"), 0);
    assert_eq!(im.gc().expect("gc"), GcReport::default());
}
