//! The content store: re-registration does no unpack, concurrent importers unpack once, stale
//! temporaries are swept, reference counts guard removal, gc removes only unreferenced things.

mod common;

use common::layout::single;
use common::{walk_files, Layer};
use serde_json::json;
use sluice_image::{ImageError, ImageSource, ImageStore};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn layout(dir: &std::path::Path, tag: &str, content: &[u8]) -> ImageSource {
    let tars = vec![
        Layer::new()
            .dir("data", 0o755)
            .file("data/big", &vec![7u8; 256 << 10], 0o644)
            .tar(),
        Layer::new().file("data/tag", content, 0o644).tar(),
    ];
    single(dir, &tars, tag, json!({"Cmd": ["/bin/true"]}));
    ImageSource::OciLayout(dir.to_path_buf())
}

#[test]
fn re_registering_an_unpacked_image_does_no_unpack() {
    let tmp = tempfile::tempdir().unwrap();
    let source = layout(&tmp.path().join("l"), "t", b"a");
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let image = store.import(&source, Some("t")).unwrap();
    let first = store.ensure_root(&image).unwrap();
    assert!(first.unpacked.is_some());
    let mut unpacks = 0;
    for _ in 0..5 {
        let again = store.import(&source, Some("t")).unwrap();
        assert_eq!(again.digest, image.digest);
        let root = store.ensure_root(&again).unwrap();
        assert_eq!(root.path, first.path);
        unpacks += usize::from(root.unpacked.is_some());
    }
    assert_eq!(unpacks, 0);
    // A second store instance on the same directory (a restarted worker) reuses the root too.
    drop(store);
    let reopened = ImageStore::open(tmp.path().join("store")).unwrap();
    assert!(reopened.ensure_root(&image).unwrap().unpacked.is_none());
}

#[test]
fn concurrent_imports_of_the_same_image_unpack_once() {
    let tmp = tempfile::tempdir().unwrap();
    let source = layout(&tmp.path().join("l"), "t", b"a");
    let dir = tmp.path().join("store");
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let (dir, source, barrier, tx) = (dir.clone(), source.clone(), barrier.clone(), tx.clone());
        std::thread::spawn(move || {
            // Separate store instances: separate lock descriptions, as two processes would have.
            let store = ImageStore::open(&dir).unwrap();
            barrier.wait();
            let image = store.import(&source, Some("t")).unwrap();
            let root = store.ensure_root(&image).unwrap();
            tx.send(root.unpacked.is_some()).unwrap();
        });
    }
    let results: Vec<bool> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(60)).unwrap())
        .collect();
    assert_eq!(results.iter().filter(|u| **u).count(), 1, "{results:?}");
    let store = ImageStore::open(&dir).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(std::fs::read_dir(dir.join("roots")).unwrap().count(), 1);
}

#[test]
fn stale_temporaries_of_dead_instances_are_swept_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let live = ImageStore::open(&dir).unwrap();
    // A dead instance: its lock file is not held, its directory has a half-unpacked root.
    let stale = dir.join("tmp/99999-1-0");
    std::fs::create_dir_all(stale.join("root-3/usr/bin")).unwrap();
    std::fs::write(stale.join("root-3/usr/bin/half"), b"half").unwrap();
    std::fs::write(stale.join("blob-0"), b"partial").unwrap();
    std::fs::write(dir.join("tmp/99999-1-0.lock"), b"").unwrap();
    // And an orphan directory whose lock file is gone.
    std::fs::create_dir_all(dir.join("tmp/orphan")).unwrap();
    let before = std::fs::read_dir(dir.join("tmp")).unwrap().count();
    let _second = ImageStore::open(&dir).unwrap();
    assert!(!stale.exists());
    assert!(!dir.join("tmp/99999-1-0.lock").exists());
    assert!(!dir.join("tmp/orphan").exists());
    // The first instance's directory and lock survive (it is alive), and so do the new one's.
    let after = std::fs::read_dir(dir.join("tmp")).unwrap().count();
    assert_eq!(
        after,
        before - 3 + 2,
        "two live instances, two entries each"
    );
    drop(live);
}

#[test]
fn removal_is_refused_while_held_and_gc_removes_only_unreferenced_things() {
    let tmp = tempfile::tempdir().unwrap();
    let a = layout(&tmp.path().join("a"), "a", b"a");
    let b = layout(&tmp.path().join("b"), "b", b"b");
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let ia = store.import(&a, None).unwrap();
    let ib = store.import(&b, None).unwrap();
    assert_eq!(
        ia.layers[0].digest, ib.layers[0].digest,
        "the big layer is shared"
    );
    let ra = store.root_for(&ia).unwrap();
    let rb = store.root_for(&ib).unwrap();
    assert_ne!(ra, rb);
    store.acquire(&ia.digest, "fn-a").unwrap();
    store.acquire(&ia.digest, "fn-a2").unwrap();
    let err = store.remove(&ia.digest, false).unwrap_err();
    assert!(
        matches!(err, ImageError::InUse { .. }) && err.to_string().contains("fn-a, fn-a2"),
        "{err}"
    );
    assert_eq!(
        store.gc().unwrap().blobs_removed,
        0,
        "nothing unreferenced yet"
    );
    store.release(&ia.digest, "fn-a").unwrap();
    store.release(&ia.digest, "fn-a2").unwrap();
    store.release(&ia.digest, "never-held").unwrap();
    store.remove(&ia.digest, false).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.roots_removed, 1);
    assert_eq!(
        report.blobs_removed, 3,
        "a's manifest, config and own top layer"
    );
    assert!(!ra.exists());
    assert!(rb.join("data/big").is_file(), "b's root stays");
    for layer in &ib.layers {
        assert!(
            store.has_blob(&layer.digest),
            "b's layers stay, the shared one included"
        );
    }
    assert!(store.has_blob(&ib.digest) && store.has_blob(&ib.config_digest));
    // b is held, then force-removed.
    store.acquire(&ib.digest, "fn-b").unwrap();
    store.remove(&ib.digest, true).unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.roots_removed, report.blobs_removed), (1, 4));
    assert!(walk_files(&tmp.path().join("store/blobs")).is_empty());
    assert!(matches!(
        store.acquire(&ib.digest, "x"),
        Err(ImageError::NotFound(_))
    ));
}

#[test]
fn roots_are_readable_by_an_unprivileged_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let tars = vec![Layer::new()
        .dir("private", 0o700)
        .file("private/readable", b"r", 0o644)
        .file("private/secret", b"s", 0o600)
        .tar()];
    single(&dir, &tars, "t", json!({}));
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let image = store.import(&ImageSource::OciLayout(dir), None).unwrap();
    let root = store.root_for(&image).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("private") & 0o555, 0o555);
    assert_eq!(mode("private/readable") & 0o004, 0o004);
    assert_eq!(
        mode("private/secret"),
        0o600,
        "the image's own choice stays"
    );
    if common::root("reading the root as uid 65534")
        && common::have("setpriv", "checks reading the root as uid 65534")
    {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(root.join("private/readable"))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"r", "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<ImageStore>();
}
