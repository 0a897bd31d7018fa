//! Stage-to-stage hand-off for Sluice pipelines.
//!
//! Pipeline stages run as separate long-running processes; the worker routes each batch from stage to
//! stage. This crate owns the pieces that move a batch's bytes between them, and nothing about routing
//! or placement:
//!
//! - [`frame`]: the batch frame of the stage protocol (`POST /batch`, `application/x-sluice-batch`):
//!   the request and response manifests, encoding, decoding and validation;
//! - [`shm`]: in-place hand-off on a host — segments (files on a tmpfs, mapped with `mmap`) and the
//!   worker-side [`shm::ShmArena`] that owns a co-location group's directory and deletes each segment
//!   once its last consumer is done;
//! - [`cuda_ipc`]: in-place hand-off on a GPU — CUDA IPC memory handles, loaded at run time so one
//!   binary works with or without a GPU;
//! - [`name`]: the plain-file-name rule that every segment name obeys.
//!
//! The protocol is described in `docs/handoff.md`; the Python side is `sdk/python/sluice_stage.py`.

pub mod cuda_ipc;
pub mod frame;
pub mod name;
pub mod shm;
