//! Whiteouts by the OCI rules, checked on layers built in the test.

mod common;

use common::{image_tree, unpack_all, Layer, Node};

fn paths(layers: &[Vec<u8>]) -> Vec<String> {
    let (tmp, result) = unpack_all(layers);
    result.unwrap();
    image_tree(&tmp.path().join("root"))
        .keys()
        .cloned()
        .collect()
}

fn base() -> Layer {
    Layer::new()
        .dir("d", 0o755)
        .file("d/old1", b"1", 0o644)
        .file("d/old2", b"2", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/deep", b"3", 0o644)
        .file("keep", b"k", 0o644)
}

#[test]
fn whiteout_removes_a_lower_file_and_a_lower_directory_tree() {
    let top = Layer::new().whiteout("d/old1").whiteout("d/sub").tar();
    assert_eq!(paths(&[base().tar(), top]), ["d", "d/old2", "keep"]);
}

#[test]
fn whiteout_of_something_absent_is_harmless() {
    let top = Layer::new().whiteout("nothing").whiteout("nodir/x").tar();
    assert_eq!(paths(&[base().tar(), top]).len(), 6);
}

#[test]
fn whiteout_does_not_hide_its_own_layer_entries_in_either_order() {
    let top = Layer::new()
        .file("d/old1", b"new", 0o644)
        .whiteout("d/old1")
        .whiteout("d/old2")
        .file("d/old2", b"new2", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[base().tar(), top]);
    result.unwrap();
    let root = tmp.path().join("root");
    assert_eq!(std::fs::read(root.join("d/old1")).unwrap(), b"new");
    assert_eq!(std::fs::read(root.join("d/old2")).unwrap(), b"new2");
}

#[test]
fn opaque_directory_hides_lower_entries_but_keeps_its_layer_before_and_after_the_marker() {
    let top = Layer::new()
        .dir("d", 0o755)
        .file("d/before", b"b", 0o644)
        .file("d/old1", b"re-added before", 0o644)
        .opaque("d")
        .file("d/after", b"a", 0o644)
        .file("d/old2", b"re-added after", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[base().tar(), top]);
    result.unwrap();
    let root = tmp.path().join("root");
    let tree = image_tree(&root);
    let names: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["d", "d/after", "d/before", "d/old1", "d/old2", "keep"]
    );
    assert_eq!(
        std::fs::read(root.join("d/old1")).unwrap(),
        b"re-added before"
    );
    assert_eq!(
        std::fs::read(root.join("d/old2")).unwrap(),
        b"re-added after"
    );
}

#[test]
fn opaque_keeps_a_re_added_subdirectory_but_not_its_lower_content() {
    let top = Layer::new()
        .file("d/sub/new", b"n", 0o644)
        .opaque("d")
        .tar();
    assert_eq!(
        paths(&[base().tar(), top]),
        ["d", "d/sub", "d/sub/new", "keep"]
    );
}

#[test]
fn opaque_marker_only_affects_lower_layers_not_later_ones() {
    let l2 = Layer::new().opaque("d").file("d/mid", b"m", 0o644).tar();
    let l3 = Layer::new().file("d/top", b"t", 0o644).tar();
    assert_eq!(
        paths(&[base().tar(), l2, l3]),
        ["d", "d/mid", "d/top", "keep"]
    );
}

#[test]
fn opaque_on_a_missing_directory_creates_it_empty() {
    let top = Layer::new().opaque("fresh").tar();
    let (tmp, result) = unpack_all(&[base().tar(), top]);
    result.unwrap();
    assert!(matches!(
        image_tree(&tmp.path().join("root")).get("fresh"),
        Some(Node::Dir { .. })
    ));
}

#[test]
fn whiteout_through_an_in_root_symlinked_parent_hits_the_target() {
    let lower = base().symlink("link", "d").tar();
    let top = Layer::new().whiteout("link/old1").tar();
    assert_eq!(
        paths(&[lower, top]),
        ["d", "d/old2", "d/sub", "d/sub/deep", "keep", "link"]
    );
}

#[test]
fn whiteout_markers_are_never_written_and_aufs_metadata_is_ignored() {
    let top = Layer::new()
        .file(".wh..wh.plnk/123.456", b"", 0o644)
        .whiteout("keep")
        .tar();
    let (tmp, result) = unpack_all(&[base().tar(), top]);
    let stats = result.unwrap();
    assert!(stats.whiteouts >= 1);
    let tree = image_tree(&tmp.path().join("root"));
    assert!(tree.keys().all(|k| !k.contains(".wh.")), "{tree:?}");
    assert!(!tree.contains_key("keep"));
}

#[test]
fn invalid_whiteout_names_are_refused() {
    for bad in [".wh.", "d/.wh..", "d/.wh.."] {
        let top = Layer::new().file(bad, b"", 0o644).tar();
        let (_tmp, result) = unpack_all(&[base().tar(), top]);
        assert!(result.is_err(), "{bad}");
    }
}
