//! Type changes, modes, skipped nodes, mount points, compression, and corrupt or mismatched layers.

mod common;

use common::{diff_id, gzip, image_tree, snapshot, unpack_all, zstd, Layer, Node};
use sluice_image::spec::Compression;
use sluice_image::unpack::Unpacker;
use sluice_image::ImageError;
use std::os::unix::fs::PermissionsExt;
use tar::EntryType;

#[test]
fn type_changes_both_ways_the_later_layer_wins() {
    let l1 = Layer::new()
        .file("f2d", b"file", 0o644)
        .dir("d2f", 0o755)
        .file("d2f/child", b"c", 0o644)
        .symlink("s2f", "f2d")
        .file("f2s", b"file", 0o644)
        .dir("d2s", 0o755)
        .file("d2s/child", b"c", 0o644)
        .symlink("s2d", "d2f")
        .tar();
    let l2 = Layer::new()
        .dir("f2d", 0o750)
        .file("f2d/inner", b"i", 0o644)
        .file("d2f", b"now a file", 0o600)
        .file("s2f", b"now a file", 0o644)
        .symlink("f2s", "/elsewhere")
        .symlink("d2s", "f2d")
        .dir("s2d", 0o700)
        .tar();
    let (tmp, result) = unpack_all(&[l1, l2]);
    result.unwrap();
    let tree = image_tree(&tmp.path().join("root"));
    let file = |content: &[u8], mode| Node::File {
        mode,
        content: content.to_vec(),
    };
    assert_eq!(tree["f2d"], Node::Dir { mode: 0o755 }, "0750 | 0555");
    assert_eq!(tree["f2d/inner"], file(b"i", 0o644));
    assert_eq!(tree["d2f"], file(b"now a file", 0o600));
    assert!(!tree.contains_key("d2f/child"));
    assert_eq!(tree["s2f"], file(b"now a file", 0o644));
    assert_eq!(
        tree["f2s"],
        Node::Symlink {
            target: "/elsewhere".into()
        }
    );
    assert_eq!(
        tree["d2s"],
        Node::Symlink {
            target: "f2d".into()
        }
    );
    assert!(!tree.contains_key("d2s/child"));
    assert_eq!(tree["s2d"], Node::Dir { mode: 0o755 });
    assert_eq!(tree.len(), 7, "{tree:#?}");
}

#[test]
fn a_file_where_a_parent_directory_is_needed_is_replaced() {
    let l1 = Layer::new().file("a", b"file", 0o644).tar();
    let l2 = Layer::new().file("a/b", b"under", 0o644).tar();
    let (tmp, result) = unpack_all(&[l1, l2]);
    result.unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("root/a/b")).unwrap(),
        b"under"
    );
}

#[test]
fn modes_and_mtimes_are_applied_setuid_dropped_directories_readable() {
    let layer = Layer::new()
        .dir("locked", 0o700)
        .file("locked/secret", b"s", 0o600)
        .file("suid", b"x", 0o4755)
        .file("sgid", b"x", 0o2711)
        .dir("sticky", 0o1777)
        .dir("sgiddir", 0o2775)
        .file("shared", b"x", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    result.unwrap();
    let root = tmp.path().join("root");
    let mode = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("locked"), 0o755);
    assert_eq!(mode("locked/secret"), 0o600);
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sgid"), 0o711);
    assert_eq!(mode("sticky"), 0o1777);
    assert_eq!(mode("sgiddir"), 0o775);
    assert_eq!(mode("shared"), 0o644);
    let mtime = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert_eq!(mtime("shared"), 1_600_000_000);
    assert_eq!(
        mtime("locked"),
        1_600_000_000,
        "directory mtimes survive their children"
    );
}

#[test]
fn devices_and_fifos_are_skipped_and_counted() {
    let layer = Layer::new()
        .node("null", EntryType::Char)
        .node("sda", EntryType::Block)
        .node("pipe", EntryType::Fifo)
        .file("real", b"r", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    let stats = result.unwrap();
    assert_eq!(stats.skipped_devices, 3);
    assert_eq!(stats.files, 1);
    let tree = image_tree(&tmp.path().join("root"));
    assert_eq!(tree.keys().collect::<Vec<_>>(), ["real"]);
}

#[test]
fn mount_points_are_real_directories_even_over_symlinks_and_files() {
    let layer = Layer::new()
        .symlink("tmp", "/var/tmp")
        .file("proc", b"not a dir", 0o644)
        .dir("etc", 0o755)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    result.unwrap();
    let tree = snapshot(&tmp.path().join("root"));
    assert_eq!(tree["proc"], Node::Dir { mode: 0o555 });
    assert_eq!(tree["dev"], Node::Dir { mode: 0o755 });
    assert_eq!(tree["tmp"], Node::Dir { mode: 0o1777 });
    assert_eq!(tree["run/sluice"], Node::Dir { mode: 0o755 });
    assert_eq!(tree["usr/local/nvidia"], Node::Dir { mode: 0o755 });
    assert_eq!(
        tree["etc/resolv.conf"],
        Node::File {
            mode: 0o644,
            content: vec![]
        }
    );
    let root_mode = std::fs::metadata(tmp.path().join("root"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(root_mode & 0o777, 0o755);
}

#[test]
fn the_gpu_mount_point_never_replaces_what_the_image_has() {
    // A symlinked /usr/local is left alone (no mount point); a real one gets `nvidia` inside.
    let linked = Layer::new()
        .dir("usr", 0o755)
        .dir("opt", 0o755)
        .symlink("usr/local", "../opt")
        .tar();
    let (tmp, result) = unpack_all(&[linked]);
    result.unwrap();
    let tree = snapshot(&tmp.path().join("root"));
    assert_eq!(
        tree["usr/local"],
        Node::Symlink {
            target: "../opt".into()
        }
    );
    assert!(!tree.contains_key("opt/nvidia"), "{tree:?}");
    let real = Layer::new()
        .dir("usr/local", 0o700)
        .file("usr/local/x", b"1", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[real]);
    result.unwrap();
    let tree = snapshot(&tmp.path().join("root"));
    assert_eq!(tree["usr/local/nvidia"], Node::Dir { mode: 0o755 });
    assert!(tree.contains_key("usr/local/x"));
}

#[test]
fn an_existing_resolv_conf_is_kept() {
    let layer = Layer::new()
        .dir("etc", 0o755)
        .file("etc/resolv.conf", b"nameserver 1.1.1.1\n", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    result.unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("root/etc/resolv.conf")).unwrap(),
        b"nameserver 1.1.1.1\n"
    );
}

fn apply(
    blob: &[u8],
    compression: Compression,
    diff: &sluice_image::digest::Digest,
) -> Result<(), ImageError> {
    let tmp = tempfile::tempdir().unwrap();
    let mut unpacker = Unpacker::new(tmp.path())?;
    unpacker.apply_layer(blob, compression, Some(diff), "the layer")?;
    unpacker.finish().map(|_| ())
}

#[test]
fn gzip_and_zstd_layers_unpack_and_their_diff_ids_check() {
    let tar = Layer::new()
        .file("hello", &vec![b'x'; 100_000], 0o644)
        .tar();
    apply(&gzip(&tar), Compression::Gzip, &diff_id(&tar)).unwrap();
    apply(&zstd(&tar), Compression::Zstd, &diff_id(&tar)).unwrap();
    apply(&tar, Compression::None, &diff_id(&tar)).unwrap();
}

#[test]
fn a_diff_id_mismatch_is_an_error() {
    let tar = Layer::new().file("hello", b"hi", 0o644).tar();
    let other = diff_id(b"something else");
    let err = apply(&gzip(&tar), Compression::Gzip, &other).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains("the layer"), "{err}");
}

#[test]
fn corrupt_gzip_is_an_error() {
    let tar = Layer::new().file("hello", &vec![b'y'; 50_000], 0o644).tar();
    let mut blob = gzip(&tar);
    let middle = blob.len() / 2;
    blob[middle] ^= 0xff;
    blob[middle + 1] ^= 0x55;
    let err = apply(&blob, Compression::Gzip, &diff_id(&tar)).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::CorruptLayer { .. } | ImageError::DiffIdMismatch { .. }
        ),
        "{err}"
    );
    let err = apply(b"not gzip at all", Compression::Gzip, &diff_id(&tar)).unwrap_err();
    assert!(matches!(err, ImageError::CorruptLayer { .. }), "{err}");
    let err = apply(b"not zstd at all", Compression::Zstd, &diff_id(&tar)).unwrap_err();
    assert!(matches!(err, ImageError::CorruptLayer { .. }), "{err}");
}

#[test]
fn truncated_tar_is_an_error() {
    let tar = Layer::new()
        .file("a", &vec![b'a'; 10_000], 0o644)
        .file("b", &vec![b'b'; 10_000], 0o644)
        .tar();
    for cut in [700, 5_000, 10_752, 12_000, tar.len() - 1024] {
        let err = apply(&tar[..cut], Compression::None, &diff_id(&tar)).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::CorruptLayer { .. } | ImageError::DiffIdMismatch { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
    // Without the diff id, a cut inside a file's data is still caught.
    let tmp = tempfile::tempdir().unwrap();
    let mut unpacker = Unpacker::new(tmp.path()).unwrap();
    let err = unpacker
        .apply_layer(&tar[..5_000], Compression::None, None, "cut")
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let gz = gzip(&tar);
    let err = apply(&gz[..gz.len() / 2], Compression::Gzip, &diff_id(&tar)).unwrap_err();
    assert!(matches!(err, ImageError::CorruptLayer { .. }), "{err}");
}

#[test]
fn a_removal_is_seen_by_the_next_entry_of_the_same_directory() {
    // `l` resolves through `x` (`x/..` is the root). Writing the file `l/x` replaces the directory
    // `x`; the next entry under `l` must resolve `l` again (meeting the file `x`, which becomes a
    // directory again), not reuse the walk made before the removal.
    let layer = Layer::new()
        .dir("x", 0o755)
        .symlink("l", "x/..")
        .file("l/x", b"file", 0o644)
        .file("l/f", b"f", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    result.unwrap();
    let tree = image_tree(&tmp.path().join("root"));
    assert_eq!(tree["x"], Node::Dir { mode: 0o755 }, "{tree:#?}");
    assert_eq!(
        tree["f"],
        Node::File {
            mode: 0o644,
            content: b"f".to_vec()
        }
    );
}
