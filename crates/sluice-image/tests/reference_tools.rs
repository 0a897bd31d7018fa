//! Reference comparisons with real tools: images built with `umoci` (layers with whiteouts, type
//! changes and an opaque directory) are unpacked by `umoci unpack` and by this crate, and the trees
//! must be the same (paths, types, modes, link targets, contents); the same image converted by
//! `skopeo copy` into a docker-archive imports to the same tree. Each test skips loudly when its
//! tool is missing (Debian packages `umoci` and `skopeo`).

mod common;

use common::{have, image_tree, Node};
use sluice_image::{ImageSource, ImageStore};
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn umoci(args: &[&str], dir: &Path) {
    run(Command::new("umoci").args(args).current_dir(dir));
}

fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds `layout:t` with umoci in `work`: three layers with changes of every kind.
fn build(work: &Path) {
    umoci(&["init", "--layout", "layout"], work);
    umoci(&["new", "--image", "layout:t"], work);
    umoci(&["unpack", "--image", "layout:t", "b1"], work);
    let r = work.join("b1/rootfs");
    write(&r.join("etc/config"), b"a=1\n", 0o644);
    write(&r.join("bin/tool"), b"#!/bin/sh\n", 0o755);
    write(&r.join("srv/data/one"), b"1", 0o600);
    write(&r.join("srv/data/two"), b"2", 0o640);
    write(&r.join("srv/gone/deep/file"), b"x", 0o644);
    write(&r.join("opt/app/old"), b"old", 0o644);
    write(&r.join("f2d"), b"file", 0o644);
    write(&r.join("d2f/child"), b"c", 0o644);
    symlink("../etc/config", r.join("bin/cfg")).unwrap();
    symlink("/etc/config", r.join("abs")).unwrap();
    symlink("tool", r.join("bin/s2f")).unwrap();
    std::fs::hard_link(r.join("bin/tool"), r.join("bin/tool-again")).unwrap();
    std::fs::set_permissions(r.join("srv"), std::fs::Permissions::from_mode(0o750)).unwrap();
    umoci(&["repack", "--image", "layout:t", "b1"], work);
    umoci(&["unpack", "--image", "layout:t", "b2"], work);
    let r = work.join("b2/rootfs");
    std::fs::remove_file(r.join("srv/data/one")).unwrap();
    std::fs::remove_dir_all(r.join("srv/gone")).unwrap();
    std::fs::remove_file(r.join("f2d")).unwrap();
    write(&r.join("f2d/inside"), b"in", 0o644);
    std::fs::remove_dir_all(r.join("d2f")).unwrap();
    write(&r.join("d2f"), b"now a file", 0o644);
    std::fs::remove_file(r.join("bin/s2f")).unwrap();
    write(&r.join("bin/s2f"), b"now a file", 0o755);
    std::fs::set_permissions(r.join("etc/config"), std::fs::Permissions::from_mode(0o600)).unwrap();
    umoci(&["repack", "--image", "layout:t", "b2"], work);
    write(&work.join("newopt/app/new"), b"new", 0o644);
    umoci(
        &[
            "insert", "--image", "layout:t", "--opaque", "newopt", "/opt",
        ],
        work,
    );
    umoci(
        &["insert", "--image", "layout:t", "--whiteout", "/etc/config"],
        work,
    );
    umoci(
        &["config", "--image", "layout:t", "--config.cmd", "/bin/tool"],
        work,
    );
}

/// umoci's tree, with directories at least 0555 (the rule this crate applies) and without
/// ownership (never applied).
fn reference(work: &Path) -> BTreeMap<String, Node> {
    umoci(&["unpack", "--image", "layout:t", "ref"], work);
    image_tree(&work.join("ref/rootfs"))
        .into_iter()
        .map(|(k, v)| match v {
            Node::Dir { mode } => (k, Node::Dir { mode: mode | 0o555 }),
            other => (k, other),
        })
        .collect()
}

#[test]
fn same_tree_as_umoci_unpack() {
    if !have("umoci", "the comparison with umoci's unpacker is skipped")
        || !common::root("the comparison with umoci's unpacker (umoci unpack without --rootless)")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let expected = reference(tmp.path());
    assert!(expected.contains_key("opt/app/new") && !expected.contains_key("opt/app/old"));
    assert!(!expected.contains_key("etc/config"), "{expected:#?}");
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let image = store
        .import(
            &ImageSource::OciLayout(tmp.path().join("layout")),
            Some("t"),
        )
        .unwrap();
    assert_eq!(
        image.config.cmd.as_deref(),
        Some(&["/bin/tool".to_string()][..])
    );
    let root = store.root_for(&image).unwrap();
    assert_eq!(image_tree(&root), expected);
}

#[test]
fn skopeo_docker_archive_imports_to_the_same_tree() {
    if !have(
        "umoci",
        "the skopeo archive test needs umoci to build its image",
    ) || !have("skopeo", "the docker-archive made by skopeo is not tested")
        || !common::root("the skopeo archive test (umoci unpack without --rootless)")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let expected = reference(tmp.path());
    let archive = tmp.path().join("image.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--insecure-policy",
        &format!("oci:{}:t", tmp.path().join("layout").display()),
        &format!("docker-archive:{}:example/umoci:t", archive.display()),
    ]));
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let image = store
        .import(&ImageSource::DockerArchive(archive.clone()), None)
        .unwrap();
    assert!(
        image.refs.contains("docker.io/example/umoci:t"),
        "{:?}",
        image.refs
    );
    let by_tag = store
        .import(
            &ImageSource::DockerArchive(archive),
            Some("example/umoci:t"),
        )
        .unwrap();
    assert_eq!(by_tag.digest, image.digest);
    assert_eq!(image_tree(&store.root_for(&image).unwrap()), expected);
}
