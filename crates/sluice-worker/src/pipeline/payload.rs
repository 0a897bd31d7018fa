//! Bytes handed from one stage to the next: either inline (a `Bytes` the worker holds and copies
//! into the consumer's request) or a shared-memory segment a co-located producer wrote, which the
//! consumer maps in place. A segment is deleted when the last holder of its [`Payload`] drops it,
//! so a request that fails anywhere, or a stage that dies, leaves no segment behind.

use bytes::Bytes;
use sluice_handoff::shm::ShmArena;
use std::sync::Arc;

/// A co-location group's shared-memory directory, with a name for logs.
pub(crate) type Group = Arc<ShmArena>;

/// A segment handed over by its producer; dropping the last clone releases it.
#[derive(Debug)]
pub(crate) struct SegRef {
    pub group: Group,
    pub name: String,
    pub len: u64,
}

impl Drop for SegRef {
    fn drop(&mut self) {
        if let Err(e) = self.group.release(&self.name) {
            tracing::warn!("releasing shared-memory segment {}: {e}", self.name);
        }
    }
}

/// One stage output (or the pipeline input).
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Inline(Bytes),
    Shm(Arc<SegRef>),
}

impl Payload {
    /// Whether a consumer using `group` can read this payload in place.
    pub(crate) fn in_place_for(&self, group: Option<&Group>) -> bool {
        match (self, group) {
            (Payload::Shm(s), Some(g)) => Arc::ptr_eq(&s.group, g),
            _ => false,
        }
    }

    /// The bytes themselves (a copy out of shared memory for a segment).
    pub(crate) fn to_bytes(&self) -> Result<Bytes, String> {
        match self {
            Payload::Inline(b) => Ok(b.clone()),
            Payload::Shm(s) => {
                let seg = s
                    .group
                    .open(&s.name)
                    .map_err(|e| format!("reading segment {}: {e}", s.name))?;
                if seg.len() as u64 != s.len {
                    return Err(format!(
                        "segment {} holds {} bytes, {} expected",
                        s.name,
                        seg.len(),
                        s.len
                    ));
                }
                Ok(Bytes::copy_from_slice(&seg))
            }
        }
    }
}
