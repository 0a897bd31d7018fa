//! The crate's typed errors: every failure of a source, an import, an unpack or the store is one
//! [`ImageError`] value that names what was wrong (the field, the file, the digest, the path).

use crate::digest::Digest;
use std::io;

/// Everything that can go wrong while importing, unpacking or managing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A source string or a spec field could not be understood.
    #[error("invalid image {field}: {message}")]
    InvalidField {
        /// The field that is wrong (`source`, `ref`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The source does not hold exactly one image and no `ref` says which one.
    #[error(
        "{source_name} does not hold exactly one image; set `ref` to one of: {}",
        list_or_none(available)
    )]
    MissingRef {
        /// The source, as given.
        source_name: String,
        /// The references the source offers.
        available: Vec<String>,
    },
    /// No image in the source matches the `ref`.
    #[error(
        "ref {reference:?} not found in {source_name}; it has: {}",
        list_or_none(available)
    )]
    RefNotFound {
        /// The reference asked for.
        reference: String,
        /// The source, as given.
        source_name: String,
        /// The references the source offers.
        available: Vec<String>,
    },
    /// An image index has no manifest for the platform the sandbox runs.
    #[error("no {wanted} image in the index; it has: {}", list_or_none(available))]
    PlatformNotFound {
        /// The platform wanted (`linux/amd64`).
        wanted: String,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or file.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Content did not have the size its descriptor gives.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob or file.
        what: String,
        /// The size in the descriptor.
        expected: u64,
        /// The size read.
        actual: u64,
    },
    /// An uncompressed layer did not hash to its diff id in the image config.
    #[error(
        "layer {index} ({layer}): diff id mismatch: config says {expected}, the layer is {actual}"
    )]
    DiffIdMismatch {
        /// The layer's position, from the bottom.
        index: usize,
        /// The layer blob's digest.
        layer: String,
        /// The diff id in the config.
        expected: Digest,
        /// The sha256 of the uncompressed layer.
        actual: Digest,
    },
    /// A media type this crate does not handle.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
        /// Where it was found.
        what: String,
    },
    /// A JSON file that does not parse or lacks a field.
    #[error("malformed {file}: at `{field}`: {message}")]
    MalformedJson {
        /// The file (or blob) that is malformed.
        file: String,
        /// The path of the field inside it (`.` for the document itself).
        field: String,
        /// What the parser said.
        message: String,
    },
    /// A file the format requires is missing.
    #[error("{file} is missing from {source_name}")]
    MissingFile {
        /// The file.
        file: String,
        /// The source, as given.
        source_name: String,
    },
    /// The manifest and the config disagree on the number of layers.
    #[error("the manifest lists {layers} layers but the config has {diff_ids} diff ids")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// Diff ids in the config.
        diff_ids: usize,
    },
    /// A layer's compressed stream or tar structure is corrupt or truncated.
    #[error("layer {layer} is corrupt: {message}")]
    CorruptLayer {
        /// The layer (its digest, or its position).
        layer: String,
        /// What the decoder or the tar reader said.
        message: String,
    },
    /// An archive whose tar structure is corrupt or truncated.
    #[error("archive {archive} is corrupt: {message}")]
    CorruptArchive {
        /// The archive.
        archive: String,
        /// What the tar reader said.
        message: String,
    },
    /// A layer entry whose path or link target would escape the root or is not a valid name.
    #[error("unsafe path {path:?} in a layer: {reason}")]
    UnsafePath {
        /// The path as the tar gives it (lossily decoded).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A hard link whose target does not exist in the root (or is a directory).
    #[error("hard link {path:?} -> {target:?}: {reason}")]
    BadHardLink {
        /// The link's path.
        path: String,
        /// Its target.
        target: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No image with this digest is in the store.
    #[error("image {0} is not in the store")]
    NotFound(String),
    /// The image is still used by functions.
    #[error("image {digest} is used by {}; release it first or force", holders.join(", "))]
    InUse {
        /// The image.
        digest: Digest,
        /// The functions that hold it.
        holders: Vec<String>,
    },
    /// The config's `User` cannot be resolved.
    #[error("image user {user:?}: {reason}")]
    InvalidUser {
        /// The `User` field.
        user: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// Neither the image nor the spec gives a command to run.
    #[error("the image has no Entrypoint or Cmd and the spec gives no command")]
    NoCommand,
    /// Something too large to hold in memory (a manifest, a config, a JSON file).
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// The file or blob.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// Short for `Result<T, ImageError>`.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Adds a context to I/O errors.
pub(crate) trait IoContext<T> {
    /// Turns an I/O error into [`ImageError::Io`] with the context `what()`.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ImageError::Io {
            context: what(),
            source: e.into(),
        })
    }
}
