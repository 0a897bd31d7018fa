//! Importing: a source is read through the [`Source`] trait (an OCI layout directory, or a staged
//! docker-save archive), one manifest is chosen ([`select`]), its config is read and checked, and
//! the manifest, config and layers are copied into the store — every blob verified against its
//! digest and size, every layer's uncompressed stream against its diff id *before* it is placed —
//! and finally the image record is written. Re-importing an image already in the store copies
//! nothing; it only adds the new names.

mod docker_archive;
mod oci_dir;
mod select;

use crate::digest::{chain_id, Digest, HashingReader};
use crate::error::{ImageError, IoContext, Result};
use crate::source::ImageSource;
use crate::spec::{parse_json, Compression, ConfigFile, Manifest};
use crate::store::blobs::{check, read_limited, JSON_LIMIT};
use crate::store::{ImageRecord, ImageStore, LayerRecord};
use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Somewhere blobs and top-level files can be read from.
pub(crate) trait Source {
    /// The source, for messages.
    fn name(&self) -> String;
    /// A small top-level file (`index.json`, `oci-layout`, `manifest.json`), if present.
    fn read_file(&self, file: &str) -> Result<Option<Vec<u8>>>;
    /// The blob `digest`, if present.
    fn open_blob(&self, digest: &Digest) -> Result<Option<Box<dyn Read + '_>>>;
    /// A file of this store already known to hash to `digest` (a staged archive member), which
    /// may be moved into the store instead of copied.
    fn staged(&self, _digest: &Digest) -> Option<(PathBuf, u64)> {
        None
    }
}

/// The manifest chosen from a source, and the names it goes by there.
pub(crate) struct Chosen {
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
    names: Vec<String>,
}

/// The linux/amd64 platform the sandboxes run.
pub(crate) const OS: &str = "linux";
/// See [`OS`].
pub(crate) const ARCH: &str = "amd64";

impl ImageStore {
    /// Imports the image `reference` (a tag or `sha256:` manifest digest; optional when the source
    /// holds one image) from `source`. Blocking: run it on a blocking thread.
    pub fn import(&self, source: &ImageSource, reference: Option<&str>) -> Result<ImageRecord> {
        let _gc = self.gc_guard(crate::store::LockKind::Shared)?;
        match source {
            ImageSource::OciLayout(dir) => {
                let src = oci_dir::OciDir::new(dir, source.to_string());
                let chosen = select::from_index(&src, reference, true)?;
                self.ingest(&src, chosen, reference)
            }
            ImageSource::DockerArchive(file) => {
                let staged = docker_archive::stage(self, file, source.to_string())?;
                let chosen = staged.choose(reference)?;
                self.ingest(&staged, chosen, reference)
            }
        }
    }

    /// Imports an uploaded `docker save` archive: the stream is written to a temporary file in the
    /// store first, then imported as [`ImageSource::DockerArchive`].
    pub fn import_archive_stream(
        &self,
        reader: &mut dyn Read,
        reference: Option<&str>,
    ) -> Result<ImageRecord> {
        let path = self.temp_path("upload");
        let result = (|| {
            let mut file =
                std::fs::File::create(&path).ctx(|| format!("create {}", path.display()))?;
            std::io::copy(reader, &mut file).ctx(|| "receive the uploaded archive".to_string())?;
            drop(file);
            self.import(&ImageSource::DockerArchive(path.clone()), reference)
        })();
        let _ = std::fs::remove_file(&path);
        result
    }

    fn ingest(
        &self,
        src: &dyn Source,
        chosen: Chosen,
        reference: Option<&str>,
    ) -> Result<ImageRecord> {
        let Chosen {
            manifest_bytes,
            manifest,
            names,
        } = chosen;
        let digest = Digest::of(&manifest_bytes);
        let config_what = format!("config {} of {}", manifest.config.digest, src.name());
        let config_bytes = read_blob(
            src,
            &manifest.config.digest,
            Some(manifest.config.size),
            &config_what,
        )?;
        let config: ConfigFile = parse_json(&config_bytes, &config_what)?;
        check_platform(&config)?;
        let diff_ids = &config.rootfs.diff_ids;
        if manifest.layers.len() != diff_ids.len() {
            return Err(ImageError::LayerCount {
                layers: manifest.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
            Compression::from_media_type(&desc.media_type, &format!("layer {}", desc.digest))?;
            layers.push(LayerRecord {
                digest: desc.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
            });
        }
        let known = self.get(&digest).ok();
        if known.is_none() {
            self.put_bytes(&manifest_bytes, &format!("manifest {digest}"))?;
            self.put_bytes(&config_bytes, &config_what)?;
            for (index, layer) in layers.iter().enumerate() {
                self.ingest_layer(src, index, layer)?;
            }
        }
        let mut refs: BTreeSet<String> = names.into_iter().collect();
        refs.extend(reference.map(str::to_string));
        let size = manifest_bytes.len() as u64
            + config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        let imported_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let fresh = ImageRecord {
            chain_id: chain_id(diff_ids).unwrap_or_else(|| Digest::of(b"")),
            digest: digest.clone(),
            config_digest: manifest.config.digest.clone(),
            layers,
            refs,
            size,
            created: config.created.clone(),
            imported_at,
            config: config.config.clone().unwrap_or_default(),
            holders: BTreeSet::new(),
        };
        self.records.update(|records| {
            let image = records.images.entry(digest).or_insert(fresh.clone());
            image.refs.extend(fresh.refs);
            Ok(image.clone())
        })
    }

    /// Copies one layer into the store, checking its digest, size and diff id first.
    fn ingest_layer(&self, src: &dyn Source, index: usize, layer: &LayerRecord) -> Result<()> {
        let what = format!("layer {index} ({}) of {}", layer.digest, src.name());
        let compression = Compression::from_media_type(&layer.media_type, &what)?;
        let verify = |path: &Path| check_diff_id(path, compression, index, layer);
        if self.has_blob(&layer.digest) {
            return verify(&self.blob_path(&layer.digest));
        }
        if let Some((path, size)) = src.staged(&layer.digest) {
            // Staged under its digest, so only the size is left to check.
            if size != layer.size {
                return Err(ImageError::SizeMismatch {
                    what,
                    expected: layer.size,
                    actual: size,
                });
            }
            verify(&path)?;
            return self.place_blob(&path, &layer.digest);
        }
        let mut blob = src
            .open_blob(&layer.digest)?
            .ok_or_else(|| ImageError::MissingFile {
                file: format!("blobs/sha256/{}", layer.digest.hex()),
                source_name: src.name(),
            })?;
        self.put_blob(&mut blob, &layer.digest, Some(layer.size), &what, &verify)
    }
}

/// Reads a small blob, checking its digest and size.
pub(crate) fn read_blob(
    src: &dyn Source,
    digest: &Digest,
    size: Option<u64>,
    what: &str,
) -> Result<Vec<u8>> {
    let blob = src
        .open_blob(digest)?
        .ok_or_else(|| ImageError::MissingFile {
            file: format!("blobs/sha256/{}", digest.hex()),
            source_name: src.name(),
        })?;
    let bytes = read_limited(blob, JSON_LIMIT, what)?;
    check(what, digest, &Digest::of(&bytes), size, bytes.len() as u64)?;
    Ok(bytes)
}

/// Checks that the layer blob at `path` decompresses to a tar whose sha256 is the layer's diff id.
fn check_diff_id(
    path: &Path,
    compression: Compression,
    index: usize,
    layer: &LayerRecord,
) -> Result<()> {
    let corrupt = |e: std::io::Error| ImageError::CorruptLayer {
        layer: layer.digest.to_string(),
        message: e.to_string(),
    };
    let file = BufReader::with_capacity(
        256 * 1024,
        std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?,
    );
    let decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(corrupt)?)
        }
    };
    let (actual, _) = HashingReader::new(decoded).finish().map_err(corrupt)?;
    if actual != layer.diff_id {
        return Err(ImageError::DiffIdMismatch {
            index,
            layer: layer.digest.to_string(),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// Refuses an image built for another platform (when its config says so).
fn check_platform(config: &ConfigFile) -> Result<()> {
    let os_ok = config.os.is_empty() || config.os == OS;
    let arch_ok = config.architecture.is_empty() || config.architecture == ARCH;
    if os_ok && arch_ok {
        return Ok(());
    }
    Err(ImageError::PlatformNotFound {
        wanted: format!("{OS}/{ARCH}"),
        available: vec![format!("{}/{}", config.os, config.architecture)],
    })
}
