//! Reference counts and garbage collection: functions acquire and release the images they run
//! (by name, persisted with the records); an image is removed only when no function holds it
//! (unless forced); [`ImageStore::gc`] then deletes every blob and root no remaining image
//! references, under the exclusive `gc.lock` so no import or unpack is in flight meanwhile.

use super::fsutil::remove_all;
use super::lock::LockKind;
use super::{ImageRecord, ImageStore};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use serde::Serialize;
use std::collections::BTreeSet;

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: usize,
    /// Roots deleted.
    pub roots_removed: usize,
    /// Bytes of blobs deleted (roots are not counted).
    pub blob_bytes_freed: u64,
}

impl ImageStore {
    /// Every image in the store.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.records.load()?.images.into_values().collect())
    }

    /// The image with manifest digest `digest`.
    pub fn get(&self, digest: &Digest) -> Result<ImageRecord> {
        self.records
            .load()?
            .images
            .remove(digest)
            .ok_or_else(|| ImageError::NotFound(digest.to_string()))
    }

    /// The image imported under the name `reference` (a tag, `RepoTags` entry or `source@ref`),
    /// or whose digest is `reference`.
    pub fn find(&self, reference: &str) -> Result<ImageRecord> {
        self.records
            .load()?
            .images
            .into_values()
            .find(|image| image.refs.contains(reference) || image.digest.to_string() == reference)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))
    }

    /// Notes that the function `holder` uses the image `digest`.
    pub fn acquire(&self, digest: &Digest, holder: &str) -> Result<ImageRecord> {
        self.records.update(|records| {
            let image = records
                .images
                .get_mut(digest)
                .ok_or_else(|| ImageError::NotFound(digest.to_string()))?;
            image.holders.insert(holder.to_string());
            Ok(image.clone())
        })
    }

    /// Notes that the function `holder` no longer uses the image `digest`. Releasing what was not
    /// held (or an image that is gone) is not an error.
    pub fn release(&self, digest: &Digest, holder: &str) -> Result<()> {
        self.records.update(|records| {
            if let Some(image) = records.images.get_mut(digest) {
                image.holders.remove(holder);
            }
            Ok(())
        })
    }

    /// Removes the image record; refused while a function holds it, unless `force`. Its blobs and
    /// root go at the next [`gc`](Self::gc).
    pub fn remove(&self, digest: &Digest, force: bool) -> Result<ImageRecord> {
        self.records.update(|records| {
            let image = records
                .images
                .get(digest)
                .ok_or_else(|| ImageError::NotFound(digest.to_string()))?;
            if !force && !image.holders.is_empty() {
                return Err(ImageError::InUse {
                    digest: digest.clone(),
                    holders: image.holders.iter().cloned().collect(),
                });
            }
            records
                .images
                .remove(digest)
                .ok_or_else(|| ImageError::NotFound(digest.to_string()))
        })
    }

    /// Deletes the blobs and roots that no image references.
    pub fn gc(&self) -> Result<GcReport> {
        let _gc = self.gc_guard(LockKind::Exclusive)?;
        let images = self.list()?;
        let mut live_blobs = BTreeSet::new();
        let mut live_roots = BTreeSet::new();
        for image in &images {
            live_blobs.insert(image.digest.hex().to_string());
            live_blobs.insert(image.config_digest.hex().to_string());
            live_blobs.extend(image.layers.iter().map(|l| l.digest.hex().to_string()));
            live_roots.insert(image.chain_id.hex().to_string());
        }
        let mut report = GcReport::default();
        let blobs = self.dir.join("blobs/sha256");
        for name in names(&blobs)? {
            if !live_blobs.contains(&name) {
                let path = blobs.join(&name);
                report.blob_bytes_freed += std::fs::symlink_metadata(&path)
                    .map(|m| m.len())
                    .unwrap_or(0);
                remove_all(&path)?;
                report.blobs_removed += 1;
            }
        }
        let roots = self.dir.join("roots");
        for name in names(&roots)? {
            if !live_roots.contains(&name) {
                remove_all(&roots.join(&name))?;
                report.roots_removed += 1;
            }
        }
        tracing::info!(?report, store = %self.dir.display(), "image garbage collection");
        Ok(report)
    }
}

fn names(dir: &std::path::Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}
