//! Test helpers: layers built with the `tar` crate (any path, even an unsafe one), compression,
//! OCI layouts written by hand, and snapshots of directory trees for comparisons.
#![allow(dead_code)]

pub mod layout;

use sluice_image::digest::Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use tar::{EntryType, Header};

/// Builds one layer tar. Paths and link names are written as given, unchecked.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer::default()
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Layer {
        self.raw(path.as_bytes(), EntryType::Directory, None, b"", mode);
        self
    }

    pub fn file(mut self, path: &str, content: &[u8], mode: u32) -> Layer {
        self.raw(path.as_bytes(), EntryType::Regular, None, content, mode);
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Layer {
        self.raw(
            path.as_bytes(),
            EntryType::Symlink,
            Some(target.as_bytes()),
            b"",
            0o777,
        );
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Layer {
        self.raw(
            path.as_bytes(),
            EntryType::Link,
            Some(target.as_bytes()),
            b"",
            0o644,
        );
        self
    }

    /// `.wh.<name>` beside `path`.
    pub fn whiteout(self, path: &str) -> Layer {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let marker = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&marker, b"", 0o644)
    }

    /// `<dir>/.wh..wh..opq`.
    pub fn opaque(self, dir: &str) -> Layer {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn node(mut self, path: &str, kind: EntryType) -> Layer {
        self.raw(path.as_bytes(), kind, None, b"", 0o644);
        self
    }

    /// Any entry; a path or link name that does not fit the header (or holds NUL) goes into a PAX
    /// extension header.
    pub fn raw(
        &mut self,
        path: &[u8],
        kind: EntryType,
        link: Option<&[u8]>,
        content: &[u8],
        mode: u32,
    ) {
        let mut pax = Vec::new();
        let mut header = Header::new_ustar();
        if path.len() < 100 && !path.contains(&0) {
            header.as_old_mut().name[..path.len()].copy_from_slice(path);
        } else {
            pax_record(&mut pax, "path", path);
            header.as_old_mut().name[..4].copy_from_slice(b"long");
        }
        if let Some(link) = link {
            if link.len() < 100 && !link.contains(&0) {
                header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                pax_record(&mut pax, "linkpath", link);
            }
        }
        if !pax.is_empty() {
            let mut ext = Header::new_ustar();
            ext.as_old_mut().name[..9].copy_from_slice(b"PaxHeader");
            ext.set_entry_type(EntryType::XHeader);
            ext.set_size(pax.len() as u64);
            ext.set_mode(0o644);
            ext.set_cksum();
            self.builder.append(&ext, &pax[..]).unwrap();
        }
        header.set_entry_type(kind);
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        self.builder.append(&header, content).unwrap();
    }

    pub fn tar(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 1).unwrap()
}

pub fn diff_id(tar: &[u8]) -> Digest {
    Digest::of(tar)
}

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { mode: u32, content: Vec<u8> },
    Dir { mode: u32 },
    Symlink { target: String },
    Other,
}

/// Every entry beneath `root` (relative paths), never following symlinks.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Symlink {
                target: std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            }
        } else if meta.is_dir() {
            walk(root, &path, out);
            Node::Dir { mode }
        } else if meta.is_file() {
            Node::File {
                mode,
                content: std::fs::read(&path).unwrap(),
            }
        } else {
            Node::Other
        };
        out.insert(rel, node);
    }
}

/// Paths and link counts of everything beneath `dir`, to prove nothing changed there.
pub fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    snapshot(dir)
        .keys()
        .map(|rel| {
            let meta = std::fs::symlink_metadata(dir.join(rel)).unwrap();
            (rel.clone(), (meta.ino(), meta.nlink(), meta.len()))
        })
        .collect()
}

/// The layers applied in order to a fresh root in a new temporary directory.
pub fn unpack_all(
    layers: &[Vec<u8>],
) -> (
    tempfile::TempDir,
    Result<sluice_image::unpack::UnpackStats, sluice_image::ImageError>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let result = (|| {
        let mut unpacker = sluice_image::unpack::Unpacker::new(&root)?;
        for (i, layer) in layers.iter().enumerate() {
            unpacker.apply_layer(
                &layer[..],
                sluice_image::spec::Compression::None,
                Some(&diff_id(layer)),
                &format!("layer {i}"),
            )?;
        }
        unpacker.finish()
    })();
    (tmp, result)
}

/// The snapshot of a root without the mount points the unpacker adds.
pub fn image_tree(root: &Path) -> BTreeMap<String, Node> {
    let mut tree = snapshot(root);
    for added in ["proc", "dev", "tmp", "run", "run/sluice", "etc/resolv.conf"] {
        if matches!(
            tree.get(added),
            Some(Node::Dir { .. }) | Some(Node::File { .. })
        ) {
            tree.remove(added);
        }
    }
    // `/usr/local/nvidia`, and the directories above it the unpacker made for it.
    for added in ["usr/local/nvidia", "usr/local", "usr", "etc"] {
        let prefix = format!("{added}/");
        if tree.get(added) == Some(&Node::Dir { mode: 0o755 })
            && !tree.keys().any(|k| k.starts_with(&prefix))
        {
            tree.remove(added);
        }
    }
    tree
}

/// Whether a tool is on the PATH; if not, says loudly that the test is skipped.
pub fn have(tool: &str, why: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: `{tool}` is not installed; {why} (apt-get install {tool})");
    }
    found
}

/// Every file beneath `dir` except lock files.
pub fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else if !p.to_string_lossy().ends_with(".lock") {
                out.push(p);
            }
        }
    }
    out
}

/// Whether the tests run as root; if not, says loudly that `what` is skipped.
pub fn root(what: &str) -> bool {
    let is_root = rustix::process::geteuid().is_root();
    if !is_root {
        eprintln!("SKIPPED: {what} needs root (run the tests as root, as CI does)");
    }
    is_root
}
