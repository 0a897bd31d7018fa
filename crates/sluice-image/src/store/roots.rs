//! The root-file-system cache: `roots/<chain hex>/`, unpacked on first use into this instance's
//! temporary directory and renamed into place, one unpacker per chain id (`locks/<chain hex>.lock`).
//! Once a root is in place it is never written again; a second image with the same layers shares it.

use super::fsutil::remove_all;
use super::lock::{FileLock, LockKind};
use super::{ImageRecord, ImageStore};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::spec::Compression;
use crate::unpack::{UnpackStats, Unpacker};
use std::io::BufReader;
use std::path::PathBuf;

/// An image's root file system.
#[derive(Debug, Clone)]
pub struct RootInfo {
    /// The root directory (read-only by convention: bind it read-only).
    pub path: PathBuf,
    /// The chain id it is named by.
    pub chain_id: Digest,
    /// What unpacking did, when this call unpacked it; `None` when it was already there.
    pub unpacked: Option<UnpackStats>,
}

impl ImageStore {
    /// Where the root of `chain_id` lives (whether or not it is unpacked).
    pub fn root_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join("roots").join(chain_id.hex())
    }

    /// The image's root file system, unpacked on first use and cached.
    pub fn root_for(&self, image: &ImageRecord) -> Result<PathBuf> {
        Ok(self.ensure_root(image)?.path)
    }

    /// [`root_for`](Self::root_for), saying whether this call unpacked it.
    pub fn ensure_root(&self, image: &ImageRecord) -> Result<RootInfo> {
        let path = self.root_path(&image.chain_id);
        let done = |unpacked| RootInfo {
            path: path.clone(),
            chain_id: image.chain_id.clone(),
            unpacked,
        };
        if path.is_dir() {
            return Ok(done(None));
        }
        let _gc = self.gc_guard(LockKind::Shared)?;
        let lock_path = self
            .dir
            .join("locks")
            .join(format!("{}.lock", image.chain_id.hex()));
        let _chain = FileLock::acquire(&lock_path, LockKind::Exclusive)?;
        if path.is_dir() {
            return Ok(done(None));
        }
        let tmp = self.temp_path("root");
        std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let result = self.unpack_into(image, &tmp).and_then(|stats| {
            std::fs::rename(&tmp, &path).ctx(|| format!("rename into {}", path.display()))?;
            Ok(stats)
        });
        match result {
            Ok(stats) => {
                tracing::info!(image = %image.digest, root = %path.display(), ?stats, "unpacked image root");
                Ok(done(Some(stats)))
            }
            Err(e) => {
                remove_all(&tmp)?;
                Err(e)
            }
        }
    }

    fn unpack_into(&self, image: &ImageRecord, dir: &std::path::Path) -> Result<UnpackStats> {
        let mut unpacker = Unpacker::new(dir)?;
        for layer in &image.layers {
            let compression =
                Compression::from_media_type(&layer.media_type, &layer.digest.to_string())?;
            let blob = BufReader::with_capacity(256 * 1024, self.open_blob(&layer.digest)?);
            unpacker.apply_layer(
                blob,
                compression,
                Some(&layer.diff_id),
                &layer.digest.to_string(),
            )?;
        }
        // Roots are a cache rebuilt from verified blobs, so they are not synced file by file (a
        // `syncfs` would flush the whole file system): after a power loss, delete `roots/`.
        unpacker.finish()
    }
}
