//! Every escape attempt on the unpacker is refused with an error or neutralised (kept inside the
//! root), and nothing outside the root changes.

mod common;

use common::{fingerprint, unpack_all, Layer};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tar::EntryType;

/// A corpus of hostile layers: (name, layers, must it be refused with an error).
fn corpus(outside: &Path, host_target: &Path) -> Vec<(&'static str, Vec<Vec<u8>>, bool)> {
    let outside = outside.to_str().unwrap();
    let host = host_target.to_str().unwrap();
    let host_rel = host.trim_start_matches('/');
    let raw = |path: &[u8], kind, link: Option<&[u8]>| {
        let mut layer = Layer::new();
        layer.raw(path, kind, link, b"pwned", 0o644);
        layer.tar()
    };
    vec![
        (
            "dot-dot file",
            vec![raw(b"../escaped", EntryType::Regular, None)],
            true,
        ),
        (
            "nested dot-dot",
            vec![raw(b"a/../../escaped", EntryType::Regular, None)],
            true,
        ),
        (
            "dot-dot dir",
            vec![raw(b"../escaped-dir/", EntryType::Directory, None)],
            true,
        ),
        (
            "absolute path",
            vec![raw(host.as_bytes(), EntryType::Regular, None)],
            false,
        ),
        (
            "NUL in path",
            vec![raw(b"a\0/../../escaped", EntryType::Regular, None)],
            true,
        ),
        (
            "NUL in symlink target",
            vec![raw(b"l", EntryType::Symlink, Some(b"/tmp\0x"))],
            true,
        ),
        (
            "very long name",
            vec![raw(&[b'n'; 300], EntryType::Regular, None)],
            true,
        ),
        (
            "very long path",
            vec![raw(&b"d/".repeat(3000), EntryType::Regular, None)],
            true,
        ),
        (
            "symlink parent pointing out (relative)",
            vec![
                Layer::new()
                    .symlink("out", &format!("../../../../..{outside}"))
                    .tar(),
                Layer::new().file("out/escaped", b"pwned", 0o644).tar(),
            ],
            false,
        ),
        (
            "symlink parent pointing out (absolute)",
            vec![Layer::new()
                .symlink("out", outside)
                .file("out/escaped", b"pwned", 0o644)
                .tar()],
            false,
        ),
        (
            "symlink to / then a file through it",
            vec![Layer::new()
                .symlink("rootlink", "/")
                .file(&format!("rootlink/{host_rel}"), b"pwned", 0o644)
                .tar()],
            false,
        ),
        (
            "symlink chain out",
            vec![Layer::new()
                .symlink("a", "b/../../..")
                .dir("b", 0o755)
                .symlink("c", "a/a/a")
                .file(&format!("c/{host_rel}"), b"pwned", 0o644)
                .tar()],
            false,
        ),
        (
            "replace a file through a symlink of the same name",
            vec![
                Layer::new().symlink("victim", host).tar(),
                Layer::new().file("victim", b"pwned", 0o644).tar(),
            ],
            false,
        ),
        (
            "directory through a symlink",
            vec![Layer::new()
                .symlink("dl", outside)
                .dir("dl/newdir", 0o755)
                .tar()],
            false,
        ),
        (
            "hard link to /etc/passwd",
            vec![Layer::new().hardlink("pw", "/etc/passwd").tar()],
            true,
        ),
        (
            "hard link to a host file by dot-dot",
            vec![Layer::new().hardlink("pw", "../../../../etc/passwd").tar()],
            true,
        ),
        (
            "hard link through a symlink",
            vec![Layer::new()
                .symlink("etclink", "/etc")
                .hardlink("pw", "etclink/passwd")
                .tar()],
            true,
        ),
        (
            "hard link through a symlink to an in-root file",
            vec![Layer::new()
                .dir("etc", 0o755)
                .file("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644)
                .symlink("etclink", "/etc")
                .hardlink("pw", "etclink/passwd")
                .file("pw", b"overwritten", 0o644)
                .tar()],
            false,
        ),
        (
            "whiteout through a symlink out",
            vec![Layer::new()
                .symlink("wl", outside)
                .whiteout("wl/sentinel")
                .tar()],
            false,
        ),
        (
            "opaque through a symlink out",
            vec![Layer::new().symlink("ol", outside).opaque("ol").tar()],
            false,
        ),
        (
            "device nodes and fifos",
            vec![Layer::new()
                .node("dev/null", EntryType::Char)
                .node("dev/sda", EntryType::Block)
                .node("fifo", EntryType::Fifo)
                .tar()],
            false,
        ),
        (
            "symlink loop as a parent",
            vec![Layer::new()
                .symlink("loop", "loop")
                .file("loop/x", b"x", 0o644)
                .tar()],
            true,
        ),
    ]
}

#[test]
fn no_escape_over_the_whole_corpus() {
    let world = tempfile::tempdir().unwrap();
    let outside = world.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), b"still here").unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    let host_target = host_dir.path().join("host-file");
    let passwd_before = std::fs::metadata("/etc/passwd").unwrap();
    let outside_before = fingerprint(world.path());
    let mut escapes = Vec::new();
    for (name, layers, must_fail) in corpus(&outside, &host_target) {
        let (tmp, result) = unpack_all(&layers);
        if must_fail && result.is_ok() {
            escapes.push(format!("{name}: accepted, expected an error"));
        }
        if let Err(e) = &result {
            eprintln!("{name}: refused: {e}");
        }
        if host_target.exists() {
            escapes.push(format!("{name}: wrote {}", host_target.display()));
            std::fs::remove_file(&host_target).unwrap();
        }
        if fingerprint(world.path()) != outside_before {
            escapes.push(format!("{name}: changed {}", world.path().display()));
        }
        if std::fs::read(outside.join("sentinel")).unwrap() != b"still here" {
            escapes.push(format!("{name}: rewrote the sentinel"));
        }
        let parent = tmp.path();
        let beside: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if beside != ["root"] {
            escapes.push(format!("{name}: wrote beside the root: {beside:?}"));
        }
    }
    let passwd_after = std::fs::metadata("/etc/passwd").unwrap();
    assert_eq!(
        passwd_before.nlink(),
        passwd_after.nlink(),
        "/etc/passwd got a hard link"
    );
    assert_eq!(passwd_before.mtime(), passwd_after.mtime());
    assert!(escapes.is_empty(), "escapes: {escapes:#?}");
}

#[test]
fn neutralised_writes_land_inside_the_root() {
    let host_dir = tempfile::tempdir().unwrap();
    let host = host_dir.path().join("f");
    let host_rel = host.to_str().unwrap().trim_start_matches('/');
    let layer = Layer::new()
        .symlink("rootlink", "/")
        .file(&format!("rootlink/{host_rel}"), b"inside", 0o644)
        .symlink("up", "../../..")
        .file("up/uptarget", b"up", 0o644)
        .tar();
    let (tmp, result) = unpack_all(&[layer]);
    result.unwrap();
    let root = tmp.path().join("root");
    assert_eq!(std::fs::read(root.join(host_rel)).unwrap(), b"inside");
    assert_eq!(std::fs::read(root.join("uptarget")).unwrap(), b"up");
    assert!(!host.exists());
}

#[test]
fn a_file_replacing_a_symlink_replaces_the_link_not_its_target() {
    let layers = [
        Layer::new()
            .file("target", b"original", 0o644)
            .symlink("link", "target")
            .tar(),
        Layer::new().file("link", b"new", 0o600).tar(),
    ];
    let (tmp, result) = unpack_all(&layers);
    result.unwrap();
    let root = tmp.path().join("root");
    assert_eq!(std::fs::read(root.join("target")).unwrap(), b"original");
    assert!(std::fs::symlink_metadata(root.join("link"))
        .unwrap()
        .is_file());
    assert_eq!(std::fs::read(root.join("link")).unwrap(), b"new");
}

#[test]
fn hard_links_share_content_inside_the_root() {
    let layers = [Layer::new()
        .file("a", b"shared", 0o755)
        .hardlink("b", "a")
        .hardlink("c", "/a")
        .hardlink("a", "a")
        .tar()];
    let (tmp, result) = unpack_all(&layers);
    let stats = result.unwrap();
    assert_eq!(stats.hardlinks, 2);
    let root = tmp.path().join("root");
    let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
    assert_eq!(ino("a"), ino("b"));
    assert_eq!(ino("a"), ino("c"));
    assert_eq!(std::fs::metadata(root.join("a")).unwrap().nlink(), 3);
}

#[test]
fn hard_link_to_a_directory_is_refused() {
    let (_tmp, result) = unpack_all(&[Layer::new().dir("d", 0o755).hardlink("x", "d").tar()]);
    assert!(result.unwrap_err().to_string().contains("directory"));
}
