//! The blob half of the content store: `blobs/sha256/<hex>`, each written to a temporary file of
//! this store instance while its sha256 is computed, checked against the digest that names it, synced
//! and renamed into place — so a blob in place is always whole and always what its name says. Blobs
//! are streamed, never held in memory (except small JSON documents, read with a size limit).

use super::ImageStore;
use crate::digest::{Digest, HashingWriter};
use crate::error::{ImageError, IoContext, Result};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest manifest, index or config read into memory.
pub const JSON_LIMIT: u64 = 8 << 20;

impl ImageStore {
    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob `digest` is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Copies `reader` into the store as the blob `digest`, verifying digest and size while
    /// copying, then `verify` on the copied file. On a mismatch nothing is left behind. A blob already present is not copied again.
    pub(crate) fn put_blob(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: Option<u64>,
        what: &str,
        verify: &dyn Fn(&Path) -> Result<()>,
    ) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let tmp = self.temp_path("blob");
        let result = (|| {
            let file = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let mut writer = HashingWriter::new(file);
            io::copy(reader, &mut writer).ctx(|| format!("copy {what}"))?;
            let (file, actual, bytes) = writer.finish();
            check(what, digest, &actual, size, bytes)?;
            verify(&tmp)?;
            file.sync_data().ctx(|| format!("sync {}", tmp.display()))?;
            self.place_blob(&tmp, digest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Moves a file this store wrote (whose digest is already known to be `digest`) into place.
    pub(crate) fn place_blob(&self, file: &Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        std::fs::rename(file, &dest).ctx(|| format!("rename into {}", dest.display()))
    }

    /// Writes the small blob `bytes` (a manifest or config) under its own digest.
    pub(crate) fn put_bytes(&self, bytes: &[u8], what: &str) -> Result<Digest> {
        let digest = Digest::of(bytes);
        self.put_blob(
            &mut &bytes[..],
            &digest,
            Some(bytes.len() as u64),
            what,
            &|_| Ok(()),
        )?;
        Ok(digest)
    }

    /// Opens the blob `digest` for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).ctx(|| format!("open blob {}", path.display()))
    }
}

/// Checks a blob's digest and (when known) size.
pub(crate) fn check(
    what: &str,
    expected: &Digest,
    actual: &Digest,
    size: Option<u64>,
    bytes: u64,
) -> Result<()> {
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    match size {
        Some(size) if size != bytes => Err(ImageError::SizeMismatch {
            what: what.to_string(),
            expected: size,
            actual: bytes,
        }),
        _ => Ok(()),
    }
}

/// Reads at most `limit` bytes from `reader`; more is [`ImageError::TooLarge`].
pub(crate) fn read_limited(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .ctx(|| format!("read {what}"))?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(bytes)
}
