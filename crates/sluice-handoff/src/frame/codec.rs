//! Encoding and decoding of batch frames, building a data region, resolving references to bytes.

use super::{DataRef, FrameError, Manifest};
use crate::shm::{open_segment, Segment, ShmError};
use std::ops::Deref;
use std::path::Path;

/// Encodes `manifest` and `data` as one frame, after checking the manifest against `data`.
pub fn encode<M: Manifest>(manifest: &M, data: &[u8]) -> Result<Vec<u8>, FrameError> {
    manifest.validate(data.len() as u64)?;
    let line = serde_json::to_vec(manifest)?;
    let mut frame = Vec::with_capacity(line.len() + 1 + data.len());
    frame.extend_from_slice(&line);
    frame.push(b'\n');
    frame.extend_from_slice(data);
    Ok(frame)
}

/// [`encode`] for a data region given as consecutive parts (each payload where it already lies):
/// every part is copied once, straight into the frame, instead of into a region and then again.
pub fn encode_parts<M: Manifest>(manifest: &M, parts: &[&[u8]]) -> Result<Vec<u8>, FrameError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    manifest.validate(len as u64)?;
    let line = serde_json::to_vec(manifest)?;
    let mut frame = Vec::with_capacity(line.len() + 1 + len);
    frame.extend_from_slice(&line);
    frame.push(b'\n');
    for p in parts {
        frame.extend_from_slice(p);
    }
    Ok(frame)
}

/// Decodes and validates a frame; returns the manifest and the data region (borrowed from `frame`).
pub fn decode<M: Manifest>(frame: &[u8]) -> Result<(M, &[u8]), FrameError> {
    let newline = frame
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FrameError::NoManifestLine)?;
    let manifest: M = serde_json::from_slice(&frame[..newline])?;
    let data = &frame[newline + 1..];
    manifest.validate(data.len() as u64)?;
    Ok((manifest, data))
}

/// A data region under construction: each pushed payload gets the next offset.
#[derive(Debug, Default, Clone)]
pub struct DataRegion {
    bytes: Vec<u8>,
}

impl DataRegion {
    /// An empty data region.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `payload` and returns the inline reference to it.
    pub fn push(&mut self, payload: &[u8]) -> DataRef {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(payload);
        DataRef::Inline {
            offset,
            len: payload.len() as u64,
        }
    }

    /// The payloads pushed so far, back to back: the data region to frame with the manifest.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length of the region, bytes (the offset the next payload gets).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no byte has been pushed (empty payloads push nothing).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The region's bytes, without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The bytes a [`DataRef`] points at: a slice of the data region or a mapped segment (zero-copy both).
#[derive(Debug)]
pub enum Payload<'a> {
    /// The referenced range of the frame's data region.
    Inline(&'a [u8]),
    /// A shared-memory segment mapped read-only, of exactly the reference's length.
    Mapped(Segment),
}

impl Deref for Payload<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Inline(bytes) => bytes,
            Payload::Mapped(segment) => segment,
        }
    }
}

impl DataRef {
    /// The bytes this reference points at: inline ones in `data` (the frame's data region), shm ones
    /// mapped read-only from `shm_dir` (an error when there is none). A segment whose size differs
    /// from the reference's `len` is an error, and so is a CUDA IPC reference: its bytes are in
    /// device memory, opened with [`crate::cuda_ipc::OpenedMemory`].
    pub fn resolve<'a>(
        &self,
        data: &'a [u8],
        shm_dir: Option<&Path>,
    ) -> Result<Payload<'a>, FrameError> {
        match self {
            DataRef::Inline { offset, len } => {
                let range = usize::try_from(*offset)
                    .ok()
                    .zip(usize::try_from(*len).ok())
                    .and_then(|(start, len)| Some(start..start.checked_add(len)?));
                range
                    .and_then(|range| data.get(range))
                    .map(Payload::Inline)
                    .ok_or_else(|| FrameError::OutOfRange {
                        at: "inline reference".into(),
                        offset: *offset,
                        len: *len,
                        data_len: data.len() as u64,
                    })
            }
            DataRef::Shm { path, len } => {
                let dir = shm_dir.ok_or_else(|| {
                    FrameError::Invalid(format!(
                        "shm reference {path:?} but no shared-memory directory here"
                    ))
                })?;
                let segment = open_segment(dir, path)?;
                if segment.len() as u64 != *len {
                    return Err(ShmError::LengthMismatch {
                        name: path.clone(),
                        expected: *len,
                        actual: segment.len() as u64,
                    }
                    .into());
                }
                Ok(Payload::Mapped(segment))
            }
            DataRef::CudaIpc { handle, device, .. } => Err(FrameError::Invalid(format!(
                "CUDA IPC reference {handle} is in device memory (GPU {device}): open it with \
                 cuda_ipc::OpenedMemory, it does not resolve to host bytes"
            ))),
        }
    }
}
