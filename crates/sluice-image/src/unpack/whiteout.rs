//! OCI whiteouts (image-spec `layer.md`): `.wh.<name>` hides `<name>` of the lower layers and
//! `.wh..wh..opq` hides every lower-layer entry of its directory. A whiteout never hides what its
//! own layer adds, wherever the marker sits in the tar: [`LayerState`] remembers the physical paths
//! the current layer wrote, and [`prune`] removes everything else at or beneath a path — keeping the
//! layer's own entries and the directories that lead to them.

use super::fsops::{list_dir, remove_tree};
use super::resolve::{kind_at, open_dir_at};
use rustix::fs::FileType;
use rustix::io::Errno;
use std::collections::{BTreeMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};

/// A physical path beneath the root, as components.
pub type PhysPath = Vec<Vec<u8>>;

/// What the layer being applied has written so far.
#[derive(Default)]
pub struct LayerState {
    written: HashSet<PhysPath>,
    ancestors: HashSet<PhysPath>,
}

impl LayerState {
    /// Notes that this layer put an entry at `path`.
    pub fn mark(&mut self, path: &[Vec<u8>]) {
        // Deepest first: once a prefix is known, the shorter ones were inserted with it.
        for depth in (1..path.len()).rev() {
            if !self.ancestors.insert(path[..depth].to_vec()) {
                break;
            }
        }
        self.written.insert(path.to_vec());
    }

    /// Whether `path` was written by this layer or leads to something that was.
    fn keeps(&self, path: &PhysPath) -> bool {
        self.written.contains(path) || self.ancestors.contains(path)
    }
}

/// Removes every lower-layer entry at or beneath `name` in `dir` (whose physical path is `path`),
/// keeping this layer's entries and their parent directories. `dir_meta` loses what is removed.
pub fn prune<M>(
    layer: &LayerState,
    dir: BorrowedFd<'_>,
    name: &[u8],
    path: &mut PhysPath,
    dir_meta: &mut BTreeMap<PhysPath, M>,
) -> Result<(), Errno> {
    if !layer.keeps(path) {
        forget_beneath(dir_meta, path);
        return remove_tree(dir, name);
    }
    if kind_at(dir, name)? == Some(FileType::Directory) {
        prune_children(layer, open_dir_at(dir, name)?.as_fd(), path, dir_meta)?;
    }
    Ok(())
}

/// [`prune`] applied to each entry of the directory `dir` (physical path `path`): an opaque
/// directory.
pub fn prune_children<M>(
    layer: &LayerState,
    dir: BorrowedFd<'_>,
    path: &mut PhysPath,
    dir_meta: &mut BTreeMap<PhysPath, M>,
) -> Result<(), Errno> {
    for child in list_dir(dir)? {
        path.push(child.clone());
        let result = prune(layer, dir, &child, path, dir_meta);
        path.pop();
        result?;
    }
    Ok(())
}

/// Drops the recorded metadata of `path` and everything beneath it.
pub fn forget_beneath<M>(dir_meta: &mut BTreeMap<PhysPath, M>, path: &[Vec<u8>]) {
    let doomed: Vec<PhysPath> = dir_meta
        .range(path.to_vec()..)
        .take_while(|(key, _)| key.starts_with(path))
        .map(|(key, _)| key.clone())
        .collect();
    for key in doomed {
        dir_meta.remove(&key);
    }
}
