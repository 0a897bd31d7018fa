//! Bytes handed from one stage to the next: inline (a `Bytes` the worker holds and copies into the
//! consumer's request), a shared-memory segment a co-located producer wrote (the consumer maps it
//! in place), or a producer's device buffer exported as a CUDA IPC handle (a consumer on the same
//! GPU opens it in place). A segment is deleted, and a device buffer released to its producer,
//! when the last holder of its [`Payload`] drops it, so a request that fails anywhere leaves
//! nothing behind. A device buffer lives only as long as the process that exported it: its
//! [`Exporter`] is marked dead once that process is found dead or replaced, after which its
//! handles are never handed out again and their drops release nothing.

use super::error::{device_copy, PayloadError, StageError, StageErrorKind};
use crate::sandbox::Sandbox;
use bytes::Bytes;
use sluice_handoff::cuda_ipc::{CudaDevice, CudaIpcError, IpcHandle, OpenedMemory};
use sluice_handoff::shm::ShmArena;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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

/// A release for an instance's runner: the sandbox serial of the process that exported the
/// handle, and the handle.
pub(crate) type Release = (u64, IpcHandle);

/// One process of a stage instance that answers CUDA IPC outputs: the handles it exported that
/// the worker still holds, and the queue through which their releases reach the instance's
/// runner (which sends them with the next batch or in a `POST /release`).
pub(crate) struct Exporter {
    pub stage: String,
    /// The GPU, as the worker numbers them.
    pub gpu: u32,
    /// The sandbox serial of the exporting process.
    pub serial: u64,
    dead: AtomicBool,
    outstanding: Mutex<HashSet<IpcHandle>>,
    releases: mpsc::UnboundedSender<Release>,
    process: Arc<tokio::sync::Mutex<Option<Sandbox>>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("stage", &self.stage)
            .field("gpu", &self.gpu)
            .field("serial", &self.serial)
            .field("dead", &self.dead.load(Ordering::Relaxed))
            .finish()
    }
}

impl Exporter {
    pub(crate) fn new(
        stage: String,
        gpu: u32,
        serial: u64,
        releases: mpsc::UnboundedSender<Release>,
        process: Arc<tokio::sync::Mutex<Option<Sandbox>>>,
    ) -> Arc<Exporter> {
        Arc::new(Exporter {
            stage,
            gpu,
            serial,
            dead: AtomicBool::new(false),
            outstanding: Mutex::new(HashSet::new()),
            releases,
            process,
        })
    }

    fn outstanding(&self) -> std::sync::MutexGuard<'_, HashSet<IpcHandle>> {
        self.outstanding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over `handle`, just answered by the process, as a payload of `len` bytes. A handle
    /// the worker still holds from an earlier answer is refused (its one release belongs to the
    /// earlier payload), and so is any handle of a process already known dead.
    pub(crate) fn adopt(
        self: &Arc<Self>,
        handle: IpcHandle,
        len: u64,
    ) -> Result<IpcRef, StageError> {
        if self.is_dead() {
            return Err(StageError::new(&self.stage, StageErrorKind::Died));
        }
        if !self.outstanding().insert(handle) {
            let kind = StageErrorKind::HandleReused(handle.to_string());
            return Err(StageError::new(&self.stage, kind));
        }
        Ok(IpcRef {
            exporter: self.clone(),
            handle,
            len,
        })
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The process is gone (its device memory with it): nothing it exported is handed out or
    /// released any more.
    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
        self.outstanding().clear();
    }

    /// Whether the exporting process still runs (checked now; marks the exporter dead if not).
    pub(crate) async fn alive(&self) -> bool {
        if self.is_dead() {
            return false;
        }
        let alive = match self.process.lock().await.as_mut() {
            Some(sb) => sb.id() == self.serial && sb.try_exited().is_none(),
            None => false,
        };
        if !alive {
            self.mark_dead();
        }
        alive
    }

    fn release(&self, handle: IpcHandle) {
        if self.is_dead() || !self.outstanding().remove(&handle) {
            return;
        }
        // The runner is gone only once its instance stopped: the process (and its memory) too.
        let _ = self.releases.send((self.serial, handle));
    }
}

/// A device buffer handed over by its producer; dropping the last clone releases it.
#[derive(Debug)]
pub(crate) struct IpcRef {
    pub exporter: Arc<Exporter>,
    pub handle: IpcHandle,
    pub len: u64,
}

impl Drop for IpcRef {
    fn drop(&mut self) {
        self.exporter.release(self.handle);
    }
}

/// One stage output (or the pipeline input).
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Inline(Bytes),
    Shm(Arc<SegRef>),
    Ipc(Arc<IpcRef>),
}

/// How a payload reaches a consumer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Handover {
    /// The consumer maps the producer's segment.
    Shm,
    /// The consumer opens the producer's device buffer.
    CudaIpc,
    /// The bytes travel in the consumer's request body (copied out of a segment or a device
    /// buffer first).
    Copy,
}

impl Handover {
    /// The `kind` label of `sluice_pipeline_handoffs_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Handover::Shm => "shm",
            Handover::CudaIpc => "cuda-ipc",
            Handover::Copy => "copy",
        }
    }
}

impl Payload {
    /// How this payload reaches a consumer that uses `group`, runs on GPU `gpu`, and accepts CUDA
    /// IPC hand-offs or not.
    pub(crate) fn handover(&self, group: Option<&Group>, gpu: u32, accepts_ipc: bool) -> Handover {
        match (self, group) {
            (Payload::Shm(s), Some(g)) if Arc::ptr_eq(&s.group, g) => Handover::Shm,
            (Payload::Ipc(r), _) if accepts_ipc && r.exporter.gpu == gpu => Handover::CudaIpc,
            _ => Handover::Copy,
        }
    }

    /// The bytes themselves: a copy out of shared memory for a segment, out of device memory for
    /// a CUDA IPC buffer (which needs the CUDA driver, and a producer still alive).
    pub(crate) async fn to_bytes(&self) -> Result<Bytes, PayloadError> {
        match self {
            Payload::Inline(b) => Ok(b.clone()),
            Payload::Shm(s) => {
                let seg = s.group.open(&s.name).map_err(|e| PayloadError::Segment {
                    name: s.name.clone(),
                    source: Arc::new(e),
                })?;
                if seg.len() as u64 != s.len {
                    return Err(PayloadError::SegmentSize {
                        name: s.name.clone(),
                        holds: seg.len() as u64,
                        expected: s.len,
                    });
                }
                Ok(Bytes::copy_from_slice(&seg))
            }
            Payload::Ipc(r) => {
                let (stage, gpu) = (&r.exporter.stage, r.exporter.gpu);
                if !r.exporter.alive().await {
                    let why = "the stage died, and its device memory with it";
                    return Err(device_copy(stage, gpu, why).into());
                }
                // The clone keeps the buffer from being released while the copy runs.
                let held = r.clone();
                let copied = tokio::task::spawn_blocking(move || copy_to_host(&held))
                    .await
                    .map_err(|e| device_copy(stage, gpu, e))?;
                Ok(copied.map_err(|e| device_copy(stage, gpu, e))?)
            }
        }
    }
}

/// Opens `r`'s handle in this (the worker's) process and copies its bytes to host memory.
fn copy_to_host(r: &IpcRef) -> Result<Bytes, CudaIpcError> {
    let len = usize::try_from(r.len)
        .map_err(|_| CudaIpcError::Invalid(format!("{} bytes do not fit", r.len)))?;
    let device = CudaDevice::open(r.exporter.gpu as usize)?;
    let memory = OpenedMemory::open(&device, &r.handle, len)?;
    let mut bytes = vec![0u8; len];
    memory.copy_to_host(&mut bytes)?;
    Ok(Bytes::from(bytes))
}
