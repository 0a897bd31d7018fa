//! Container images in the worker: the `sluice-image` store under `<data_dir>/images` (stale
//! temporaries of a dead worker swept when it opens), imports from paths on the worker — only
//! inside its import directories (`[images] import_dirs`, default `<data_dir>/imports`): naming
//! a path to import is an operator's action, so an API client cannot make the worker read an
//! arbitrary file — and uploaded archives (`upload`), the resolution of a spec's `"image"`
//! (`spec`) into the root and run defaults a sandbox is started with, and the references
//! functions and pipelines hold on images (by name: `fn-name`, or `pipeline:<name>`), rebuilt
//! from the registered functions at start. Every method blocks: call it from
//! `spawn_blocking`. Errors are [`ImagesError`]s that say which field or image is at fault.

pub mod spec;
mod upload;

pub use spec::{ImageRef, ResolvedImage, Wanted};
pub use upload::{UploadError, UploadReader};

use serde::Serialize;
use sluice_image::{
    Digest, GcReport, ImageError, ImageRecord, ImageSource, ImageStore, RunDefaults,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// A field of the request or spec is wrong (400): the field, e.g. `image.ref`.
    #[error("{field}: {message}")]
    Field {
        /// The field at fault.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// No such image (404).
    #[error("{0}")]
    NotFound(String),
    /// The image is used by functions (409).
    #[error("{0}")]
    InUse(String),
    /// An upload over the limit (413).
    #[error("the uploaded archive exceeds images.max_upload_bytes ({0})")]
    TooLarge(u64),
    /// The store itself failed (500).
    #[error("image store: {0}")]
    Internal(String),
}

/// An image as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ImageView {
    /// The record.
    #[serde(flatten)]
    pub record: ImageRecord,
    /// Whether its root is unpacked on this worker.
    pub unpacked: bool,
}

/// The worker's images.
pub struct Images {
    store: ImageStore,
    import_dirs: Vec<PathBuf>,
    max_upload_bytes: u64,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images")
            .field("store", &self.store.dir())
            .field("import_dirs", &self.import_dirs)
            .finish()
    }
}

/// What a resolution did, for the caller to undo if what follows fails.
#[derive(Debug)]
pub struct Resolution {
    /// The image to run.
    pub image: std::sync::Arc<ResolvedImage>,
    /// The spec's `"image"` with the digest pinned.
    pub pinned: ImageRef,
    /// Whether this call added the holder (release it if the registration fails).
    pub newly_held: bool,
}

/// The field a failed import is blamed on.
fn import_field(e: &ImageError, prefix: Prefix) -> &'static str {
    match e {
        ImageError::MissingRef { .. } | ImageError::RefNotFound { .. } => prefix.reference(),
        ImageError::InvalidField { field: "ref", .. } => prefix.reference(),
        ImageError::InvalidField {
            field: "digest", ..
        } => prefix.digest(),
        _ => prefix.source(),
    }
}

/// How fields are named: in a spec (`image.source`) or in an import request (`source`).
#[derive(Clone, Copy, Debug)]
pub enum Prefix {
    /// A function or stage spec's `"image"`.
    Spec,
    /// `POST /v1/images`.
    Request,
}

impl Prefix {
    fn source(self) -> &'static str {
        match self {
            Prefix::Spec => "image.source",
            Prefix::Request => "source",
        }
    }
    fn reference(self) -> &'static str {
        match self {
            Prefix::Spec => "image.ref",
            Prefix::Request => "ref",
        }
    }
    fn digest(self) -> &'static str {
        match self {
            Prefix::Spec => "image.digest",
            Prefix::Request => "digest",
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ImagesError {
    ImagesError::Internal(e.to_string())
}

impl Images {
    /// Opens the store under `<data_dir>/images` (sweeping a dead worker's temporaries); the
    /// import directories are `import_dirs`, or `<data_dir>/imports` (created) when empty.
    pub fn open(
        data_dir: &Path,
        import_dirs: &[PathBuf],
        max_upload_bytes: u64,
    ) -> Result<Images, ImagesError> {
        let store = ImageStore::open(data_dir.join("images")).map_err(internal)?;
        let dirs = if import_dirs.is_empty() {
            let d = data_dir.join("imports");
            std::fs::create_dir_all(&d).map_err(internal)?;
            vec![d]
        } else {
            import_dirs.to_vec()
        };
        let import_dirs = dirs
            .iter()
            .filter_map(|d| match std::fs::canonicalize(d) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %d.display(), "import directory unusable: {e}");
                    None
                }
            })
            .collect();
        Ok(Images {
            store,
            import_dirs,
            max_upload_bytes,
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// The largest upload accepted, bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// `source` with a relative path resolved against the first import directory, if it lies
    /// inside an import directory (symlinks resolved).
    fn admit(&self, source: &ImageSource, prefix: Prefix) -> Result<ImageSource, ImagesError> {
        let (path, oci) = match source {
            ImageSource::OciLayout(p) => (p, true),
            ImageSource::DockerArchive(p) => (p, false),
        };
        let field = prefix.source();
        let first = self.import_dirs.first().ok_or_else(|| ImagesError::Field {
            field,
            message: "this worker has no usable import directory".into(),
        })?;
        let abs = if path.is_absolute() {
            path.clone()
        } else {
            first.join(path)
        };
        let real = std::fs::canonicalize(&abs).map_err(|e| ImagesError::Field {
            field,
            message: format!("{}: {e}", abs.display()),
        })?;
        if !self.import_dirs.iter().any(|d| real.starts_with(d)) {
            let dirs: Vec<String> = self
                .import_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err(ImagesError::Field {
                field,
                message: format!(
                    "{} is outside this worker's import directories ({}); upload the archive \
                     instead, or have the operator put it there",
                    abs.display(),
                    dirs.join(", ")
                ),
            });
        }
        Ok(if oci {
            ImageSource::OciLayout(real)
        } else {
            ImageSource::DockerArchive(real)
        })
    }

    fn view(&self, record: ImageRecord) -> ImageView {
        let unpacked = self.store.root_path(&record.chain_id).is_dir();
        ImageView { record, unpacked }
    }

    /// Imports `source` (a path on the worker) under `reference`; `true` if it was new.
    pub fn import(
        &self,
        source: &str,
        reference: Option<&str>,
    ) -> Result<(ImageView, bool), ImagesError> {
        let parsed = ImageSource::parse(source).map_err(|e| ImagesError::Field {
            field: "source",
            message: e.to_string(),
        })?;
        let source = self.admit(&parsed, Prefix::Request)?;
        let before = self.known()?;
        let record = self
            .store
            .import(&source, reference)
            .map_err(|e| field_error(e, Prefix::Request))?;
        let new = !before.contains(&record.digest);
        Ok((self.view(record), new))
    }

    /// Imports an uploaded archive read from `reader` (at most the upload limit).
    pub fn import_upload(
        &self,
        reader: &mut UploadReader,
        reference: Option<&str>,
    ) -> Result<(ImageView, bool), ImagesError> {
        let before = self.known()?;
        match self.store.import_archive_stream(reader, reference) {
            Ok(record) => {
                let new = !before.contains(&record.digest);
                Ok((self.view(record), new))
            }
            Err(e) => Err(match reader.failure() {
                Some(UploadError::TooLarge(n)) => ImagesError::TooLarge(n),
                Some(UploadError::Body(m)) => ImagesError::Field {
                    field: "body",
                    message: m,
                },
                None => field_error(e, Prefix::Request),
            }),
        }
    }

    fn known(&self) -> Result<BTreeSet<Digest>, ImagesError> {
        Ok(self
            .store
            .list()
            .map_err(internal)?
            .into_iter()
            .map(|r| r.digest)
            .collect())
    }

    /// Every image, by digest.
    pub fn list(&self) -> Result<Vec<ImageView>, ImagesError> {
        let images = self.store.list().map_err(internal)?;
        Ok(images.into_iter().map(|r| self.view(r)).collect())
    }

    /// The image `digest`.
    pub fn get(&self, digest: &str) -> Result<ImageView, ImagesError> {
        let d = parse_digest(digest)?;
        match self.store.get(&d) {
            Ok(r) => Ok(self.view(r)),
            Err(ImageError::NotFound(_)) => Err(not_found(&d)),
            Err(e) => Err(internal(e)),
        }
    }

    /// Removes the image `digest` (refused while held), then collects garbage.
    pub fn remove(&self, digest: &str) -> Result<(ImageView, GcReport), ImagesError> {
        let d = parse_digest(digest)?;
        let record = match self.store.remove(&d, false) {
            Ok(r) => r,
            Err(ImageError::NotFound(_)) => return Err(not_found(&d)),
            Err(e @ ImageError::InUse { .. }) => {
                return Err(ImagesError::InUse(format!(
                    "{e} (delete those functions or pipelines first)"
                )))
            }
            Err(e) => return Err(internal(e)),
        };
        let report = self.store.gc().map_err(internal)?;
        Ok((
            ImageView {
                record,
                unpacked: false,
            },
            report,
        ))
    }

    /// Deletes every blob and root no image references.
    pub fn gc(&self) -> Result<GcReport, ImagesError> {
        self.store.gc().map_err(internal)
    }

    /// Resolves a spec's `"image"` for `holder`, with the spec's `command`, `workdir` and
    /// `env` over the image's defaults; the holder then holds the image.
    pub fn resolve(
        &self,
        image: &ImageRef,
        command: &[String],
        workdir: Option<&Path>,
        env: &BTreeMap<String, String>,
        holder: &str,
    ) -> Result<Resolution, ImagesError> {
        let wanted = image
            .wanted()
            .map_err(|(field, message)| ImagesError::Field { field, message })?;
        let record = self.find(wanted)?;
        let digest = record.digest.clone();
        let newly_held = !record.holders.contains(holder);
        self.store.acquire(&digest, holder).map_err(internal)?;
        let done = self.finish(&record, command, workdir, env);
        if done.is_err() && newly_held {
            let _ = self.store.release(&digest, holder);
        }
        let resolved = done?;
        let pinned = ImageRef {
            digest: Some(digest.to_string()),
            ..image.clone()
        };
        Ok(Resolution {
            image: std::sync::Arc::new(resolved),
            pinned,
            newly_held,
        })
    }

    fn find(&self, wanted: Wanted) -> Result<ImageRecord, ImagesError> {
        match wanted {
            Wanted::Import {
                source,
                reference,
                digest,
            } => {
                if let Some(d) = &digest {
                    if let Ok(r) = self.store.get(d) {
                        return Ok(r);
                    }
                }
                let source = self.admit(&source, Prefix::Spec)?;
                let r = self
                    .store
                    .import(&source, reference.as_deref())
                    .map_err(|e| field_error(e, Prefix::Spec))?;
                match digest {
                    Some(d) if d != r.digest => Err(ImagesError::Field {
                        field: "image.digest",
                        message: format!(
                            "digest mismatch: {source} gives image {}, not {d}",
                            r.digest
                        ),
                    }),
                    _ => Ok(r),
                }
            }
            Wanted::Digest(d) => self.store.get(&d).map_err(|e| match e {
                ImageError::NotFound(_) => ImagesError::Field {
                    field: "image.digest",
                    message: format!(
                        "image {d} is not in this worker's store (import it first: POST \
                         /v1/images or sluice image import)"
                    ),
                },
                e => internal(e),
            }),
            Wanted::Name(n) => self.store.find(&n).map_err(|e| match e {
                ImageError::NotFound(_) => ImagesError::Field {
                    field: "image.ref",
                    message: format!("no image imported as {n:?} on this worker"),
                },
                e => internal(e),
            }),
        }
    }

    fn finish(
        &self,
        record: &ImageRecord,
        command: &[String],
        workdir: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<ResolvedImage, ImagesError> {
        let root = self
            .store
            .ensure_root(record)
            .map_err(|e| field_error(e, Prefix::Spec))?
            .path;
        let defaults =
            RunDefaults::from_config(&record.config, &root).map_err(|e| ImagesError::Field {
                field: "image",
                message: e.to_string(),
            })?;
        let spec_command = (!command.is_empty()).then_some(command);
        let command = defaults
            .command(spec_command)
            .map_err(|e| ImagesError::Field {
                field: "command",
                message: e.to_string(),
            })?;
        let workdir = workdir.map_or_else(|| PathBuf::from(&defaults.workdir), Path::to_path_buf);
        let env = defaults.env_with(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(ResolvedImage {
            digest: record.digest.clone(),
            root,
            command,
            workdir,
            env,
            user: defaults
                .user
                .unwrap_or(sluice_image::UserIds { uid: 0, gid: 0 }),
        })
    }

    /// `holder` no longer uses the image `digest` (an unknown image or holder is no error).
    pub fn release(&self, digest: &Digest, holder: &str) -> Result<(), ImagesError> {
        self.store.release(digest, holder).map_err(internal)
    }

    /// `holder` no longer uses any image.
    pub fn release_holder(&self, holder: &str) -> Result<(), ImagesError> {
        for image in self.store.list().map_err(internal)? {
            if image.holders.contains(holder) {
                self.release(&image.digest, holder)?;
            }
        }
        Ok(())
    }

    /// Makes the recorded holders exactly `held` (digest, holder), as registered functions and
    /// pipelines say at start; returns how many references changed.
    pub fn rebuild_holders(&self, held: &[(Digest, String)]) -> Result<usize, ImagesError> {
        let mut changed = 0;
        for image in self.store.list().map_err(internal)? {
            let want: BTreeSet<&String> = held
                .iter()
                .filter(|(d, _)| *d == image.digest)
                .map(|(_, h)| h)
                .collect();
            for h in image.holders.iter().filter(|h| !want.contains(h)) {
                self.store.release(&image.digest, h).map_err(internal)?;
                changed += 1;
            }
            for h in want.iter().filter(|h| !image.holders.contains(**h)) {
                self.store.acquire(&image.digest, h).map_err(internal)?;
                changed += 1;
            }
        }
        Ok(changed)
    }
}

fn parse_digest(digest: &str) -> Result<Digest, ImagesError> {
    Digest::parse(digest).map_err(|e| ImagesError::Field {
        field: "digest",
        message: e.to_string(),
    })
}

fn not_found(d: &Digest) -> ImagesError {
    ImagesError::NotFound(format!("image {d} is not in this worker's store"))
}

/// A failed import or unpack as a field error (the store's own I/O failures included: they
/// are almost always the source's fault — a missing file, a corrupt archive).
fn field_error(e: ImageError, prefix: Prefix) -> ImagesError {
    ImagesError::Field {
        field: import_field(&e, prefix),
        message: e.to_string(),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

/// At start: resolves every stored image function again (by its pinned digest: nothing is
/// imported when the image is in the store), drops those whose image cannot be had (logged;
/// they stay stored, unregistered, until fixed or deleted), and makes the image references
/// exactly those of the functions that remain. Returns the functions to register.
pub fn restore(
    images: &Images,
    specs: Vec<crate::function::FunctionSpec>,
) -> Vec<crate::function::FunctionSpec> {
    let mut out = Vec::new();
    let mut held = Vec::new();
    for mut spec in specs {
        let Some(image) = spec.image.clone() else {
            out.push(spec);
            continue;
        };
        match images.resolve(
            &image,
            &spec.command,
            spec.workdir.as_deref(),
            &spec.env,
            &spec.name,
        ) {
            Ok(r) => {
                held.push((r.image.digest.clone(), spec.name.clone()));
                spec.resolved = Some(r.image);
                out.push(spec);
            }
            Err(e) => tracing::error!(
                function = %spec.name,
                "its image cannot be resolved, so it is not registered: {e}"
            ),
        }
    }
    match images.rebuild_holders(&held) {
        Ok(n) if n > 0 => tracing::info!(changed = n, "image references rebuilt"),
        Ok(_) => {}
        Err(e) => tracing::error!("cannot rebuild image references: {e}"),
    }
    out
}
