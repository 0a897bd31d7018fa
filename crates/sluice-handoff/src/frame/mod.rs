//! The batch frame of the stage protocol: what `POST /batch` carries and what a stage answers.
//!
//! A frame is one line of UTF-8 JSON (the manifest, no raw newline inside), `\n`, then the data region
//! (the concatenated inline payloads). This module owns the manifest types ([`BatchRequest`],
//! [`BatchResponse`]), [`encode`] and [`decode`] with full validation (inline ranges inside the data
//! region, segment names that are plain file names, unique ids, CUDA IPC handles of 128 hex digits),
//! [`DataRegion`] to build a data region and [`DataRef::resolve`] to turn a host reference into
//! bytes. It also owns the body of `POST /release` ([`ReleaseRequest`]), with which the worker
//! frees a producer's exported device buffers. It does not own sockets or HTTP, nor the
//! lifetime of shared-memory segments (that is [`crate::shm::ShmArena`]).

mod codec;
mod manifest;
mod validate;

#[cfg(test)]
mod ipc_tests;
#[cfg(test)]
mod tests;

pub use codec::{decode, encode, encode_parts, DataRegion, Payload};
pub use manifest::{
    BatchRequest, BatchResponse, DataRef, ErrorBody, InputRef, OutputMode, ReleaseRequest,
    RequestItem, RequestManifest, ResponseItem,
};

use crate::name::NameError;
use crate::shm::ShmError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// The `Content-Type` of batch frames, both ways.
pub const CONTENT_TYPE: &str = "application/x-sluice-batch";

/// The producer name of the pipeline input.
pub const PIPELINE_INPUT: &str = "input";

/// The path of the stage route that frees exported device buffers ([`ReleaseRequest`], JSON).
pub const RELEASE_PATH: &str = "/release";

/// Why a frame (or a reference in it) was rejected.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The frame has no `\n`, so no manifest line.
    #[error("batch frame has no '\\n' after the manifest line")]
    NoManifestLine,
    /// The manifest line is not JSON of the expected manifest type (or could not be written).
    #[error("batch manifest is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// Two items of one batch share this id.
    #[error("duplicate item id {0:?} in the batch")]
    DuplicateId(String),
    /// A segment name in the manifest breaks the plain-file-name rule ([`crate::name`]).
    #[error("{at}: {field} {name:?} is not a plain file name: {source}")]
    BadName {
        /// Where in the manifest, e.g. `item "a" input 0`.
        at: String,
        /// The manifest field: `out` or `path`.
        field: &'static str,
        /// The offending name.
        name: String,
        /// Which part of the rule it breaks.
        source: NameError,
    },
    /// An inline reference does not lie inside the data region.
    #[error("{at}: inline range {offset}+{len} is outside the {data_len}-byte data region")]
    OutOfRange {
        /// Where in the manifest (or `inline reference` when resolving one).
        at: String,
        /// Start of the range in the data region, bytes.
        offset: u64,
        /// Length of the range, bytes.
        len: u64,
        /// Length of the data region, bytes.
        data_len: u64,
    },
    /// Any other broken protocol rule (what and where, in words).
    #[error("{0}")]
    Invalid(String),
    /// A shm reference could not be mapped, or its segment's size differs from its `len`.
    #[error("shared-memory segment: {0}")]
    Shm(#[from] ShmError),
}

/// A manifest that can travel in a frame: it knows how to check itself against its data region.
pub trait Manifest: Serialize + DeserializeOwned {
    /// Checks every rule of the protocol that the manifest alone (and the data region's length) can
    /// tell.
    fn validate(&self, data_len: u64) -> Result<(), FrameError>;
}

impl Manifest for BatchRequest {
    fn validate(&self, data_len: u64) -> Result<(), FrameError> {
        validate::request(self, data_len)
    }
}

impl Manifest for RequestManifest {
    fn validate(&self, data_len: u64) -> Result<(), FrameError> {
        validate::request(&self.batch, data_len)?;
        validate::releases(&self.release)
    }
}

impl Manifest for BatchResponse {
    fn validate(&self, data_len: u64) -> Result<(), FrameError> {
        validate::response(self, data_len)
    }
}

impl BatchResponse {
    /// Checks that this response answers `request`: one item per request item, same ids in the same
    /// order, every shm output is the file the request named for that item (a stage told
    /// "inline" may not answer shm), and CUDA IPC outputs only where the request asked for them.
    pub fn check_answers(&self, request: &BatchRequest) -> Result<(), FrameError> {
        validate::answers(self, request)
    }
}
