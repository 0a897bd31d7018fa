//! The image records and their persistence: one small JSON file (`images.json`) holding every
//! imported image and the functions that hold it, replaced atomically under an exclusive lock on
//! `images.lock` for every change (read, modify, write), so concurrent stores never lose an update.

use super::fsutil::write_atomic;
use super::lock::{FileLock, LockKind};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::spec::{parse_json, ImageConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One layer of an imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The blob's digest (compressed as stored).
    pub digest: Digest,
    /// The sha256 of the uncompressed tar (from the config, verified at import).
    pub diff_id: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The digest of the image manifest: the image's identity.
    pub digest: Digest,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The chain id of the layers: the name of the image's root file system.
    pub chain_id: Digest,
    /// Names it was imported under (tags, `RepoTags`, `source@ref`).
    pub refs: BTreeSet<String>,
    /// Sum of the manifest, config and layer blob sizes.
    pub size: u64,
    /// When the image was built (RFC 3339, from the config), if recorded.
    pub created: Option<String>,
    /// When it was first imported (seconds since the Unix epoch).
    pub imported_at: u64,
    /// The config's run defaults, as the image gives them.
    pub config: ImageConfig,
    /// The functions that use it (reference counts by function name).
    pub holders: BTreeSet<String>,
}

/// The whole `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Records {
    /// Format version (1).
    pub version: u32,
    /// Images by manifest digest.
    pub images: BTreeMap<Digest, ImageRecord>,
}

/// Where the records live.
pub struct RecordFile {
    path: PathBuf,
    lock: PathBuf,
}

impl RecordFile {
    /// The record file of the store at `dir`.
    pub fn new(dir: &Path) -> RecordFile {
        RecordFile {
            path: dir.join("images.json"),
            lock: dir.join("images.lock"),
        }
    }

    /// The records as last written.
    pub fn load(&self) -> Result<Records> {
        match std::fs::read(&self.path) {
            Ok(bytes) => parse_json(&bytes, &self.path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records {
                version: 1,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(e).ctx(|| format!("read {}", self.path.display())),
        }
    }

    /// Applies `change` to the records under the lock and writes them back if it succeeds.
    pub fn update<T>(&self, change: impl FnOnce(&mut Records) -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.lock, LockKind::Exclusive)?;
        let mut records = self.load()?;
        let out = change(&mut records)?;
        records.version = 1;
        let bytes = serde_json::to_vec_pretty(&records)
            .ctx(|| format!("serialise {}", self.path.display()))?;
        write_atomic(&self.path, &bytes)?;
        Ok(out)
    }
}
