//! The protocol rules a manifest must obey, checked on decode and on encode.

use super::{BatchRequest, BatchResponse, DataRef, FrameError, OutputMode};
use crate::cuda_ipc::IpcHandle;
use crate::name::check_file_name;
use std::collections::HashSet;

pub(super) fn request(req: &BatchRequest, data_len: u64) -> Result<(), FrameError> {
    if req.stage.is_empty() {
        return Err(FrameError::Invalid("request names no stage".into()));
    }
    let mut ids = HashSet::with_capacity(req.items.len());
    let mut outs = HashSet::with_capacity(req.items.len());
    for item in &req.items {
        check_id(&item.id, &mut ids)?;
        let at = format!("item {:?}", item.id);
        match (req.output, &item.out) {
            (OutputMode::Shm | OutputMode::CudaIpc, Some(out)) => {
                check_name(&at, "out", out)?;
                if !outs.insert(out.as_str()) {
                    return Err(FrameError::Invalid(format!(
                        "{at}: output file {out:?} is named by two items"
                    )));
                }
            }
            (OutputMode::Shm, None) => {
                return Err(FrameError::Invalid(format!(
                    "{at}: output is \"shm\" but the item has no \"out\" file name"
                )))
            }
            (OutputMode::Inline, Some(_)) => {
                return Err(FrameError::Invalid(format!(
                    "{at}: output is \"inline\" but the item names an \"out\" file"
                )))
            }
            (OutputMode::Inline | OutputMode::CudaIpc, None) => {}
        }
        if item.inputs.is_empty() {
            return Err(FrameError::Invalid(format!("{at} has no inputs")));
        }
        for (i, input) in item.inputs.iter().enumerate() {
            let at = format!("item {:?} input {i}", item.id);
            if input.from.is_empty() {
                return Err(FrameError::Invalid(format!("{at} names no producer")));
            }
            data_ref(&at, &input.data, data_len)?;
        }
    }
    Ok(())
}

/// The handles a request asks the stage to free: each at most once.
pub(super) fn releases(handles: &[IpcHandle]) -> Result<(), FrameError> {
    let mut seen = HashSet::with_capacity(handles.len());
    for handle in handles {
        if !seen.insert(handle) {
            return Err(FrameError::Invalid(format!(
                "CUDA IPC handle {handle} is released twice"
            )));
        }
    }
    Ok(())
}

pub(super) fn response(resp: &BatchResponse, data_len: u64) -> Result<(), FrameError> {
    let mut ids = HashSet::with_capacity(resp.items.len());
    let mut handles = HashSet::new();
    for item in &resp.items {
        check_id(&item.id, &mut ids)?;
        if let Ok(output) = &item.result {
            data_ref(&format!("item {:?} output", item.id), output, data_len)?;
            if let DataRef::CudaIpc { handle, .. } = output {
                if !handles.insert(*handle) {
                    return Err(FrameError::Invalid(format!(
                        "item {:?}: CUDA IPC handle {handle} is the output of two items",
                        item.id
                    )));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn answers(resp: &BatchResponse, req: &BatchRequest) -> Result<(), FrameError> {
    if resp.items.len() != req.items.len() {
        return Err(FrameError::Invalid(format!(
            "response has {} items for a request of {}",
            resp.items.len(),
            req.items.len()
        )));
    }
    for (i, (answer, asked)) in resp.items.iter().zip(&req.items).enumerate() {
        if answer.id != asked.id {
            return Err(FrameError::Invalid(format!(
                "response item {i} is {:?}, the request's is {:?}",
                answer.id, asked.id
            )));
        }
        match &answer.result {
            Ok(DataRef::Shm { path, .. }) if asked.out.as_deref() != Some(path.as_str()) => {
                return Err(FrameError::Invalid(format!(
                    "item {:?}: output in shm file {path:?}, but the request named {:?}",
                    answer.id, asked.out
                )));
            }
            Ok(DataRef::CudaIpc { .. }) if req.output != OutputMode::CudaIpc => {
                return Err(FrameError::Invalid(format!(
                    "item {:?}: a CUDA IPC output, but the request asked for {:?}",
                    answer.id, req.output
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_id<'a>(id: &'a str, seen: &mut HashSet<&'a str>) -> Result<(), FrameError> {
    if id.is_empty() {
        return Err(FrameError::Invalid("an item has an empty id".into()));
    }
    if !seen.insert(id) {
        return Err(FrameError::DuplicateId(id.to_owned()));
    }
    Ok(())
}

fn check_name(at: &str, field: &'static str, name: &str) -> Result<(), FrameError> {
    check_file_name(name).map_err(|source| FrameError::BadName {
        at: at.to_owned(),
        field,
        name: name.to_owned(),
        source,
    })
}

fn data_ref(at: &str, data: &DataRef, data_len: u64) -> Result<(), FrameError> {
    match data {
        DataRef::Inline { offset, len } => {
            if offset.checked_add(*len).is_none_or(|end| end > data_len) {
                return Err(FrameError::OutOfRange {
                    at: at.to_owned(),
                    offset: *offset,
                    len: *len,
                    data_len,
                });
            }
            Ok(())
        }
        DataRef::Shm { path, .. } => check_name(at, "path", path),
        // The handle's 128 hex digits are checked when it is parsed.
        DataRef::CudaIpc { .. } => Ok(()),
    }
}
