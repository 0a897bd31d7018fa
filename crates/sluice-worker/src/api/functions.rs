//! `/v1/functions`: register, list, show, delete and prewarm functions. A spec that can never
//! run on this worker's devices is refused at registration (400, naming the field); deleting a
//! function ends its queued invocations. A function from an image has it resolved (imported,
//! unpacked once, its defaults merged) on a blocking thread at registration, holds a reference
//! on it while registered (released when it is deleted or replaced by another image), and is
//! stored with the image's digest pinned.

use super::invoke::parse_json;
use super::{blocking, refuse_in_cluster, ApiError, Shared};
use crate::function::FunctionSpec;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

pub(super) async fn put(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    refuse_in_cluster(&s)?;
    let body = body?;
    let mut spec: FunctionSpec = parse_json(&body, "function spec")?;
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    s.engine
        .check_fits(&spec)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = s.store.clone();
    let n = spec.name.clone();
    let old = blocking(move || store.get_function(&n)).await?;
    let resolution = match spec.image.clone() {
        Some(image) => Some(resolve_image(&s, &spec, image, spec.name.clone()).await?),
        None => None,
    };
    if let Some(r) = &resolution {
        spec.image = Some(r.pinned.clone());
        spec.resolved = Some(r.image.clone());
    }
    let store = s.store.clone();
    let stored = spec.clone();
    let replaced = match blocking(move || store.put_function(&stored)).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(r) = resolution.filter(|r| r.newly_held) {
                release(&s, r.image.digest.clone(), spec.name.clone()).await;
            }
            return Err(e);
        }
    };
    let new_digest = spec.resolved.as_ref().map(|r| r.digest.clone());
    if let Some(old_digest) = old.as_ref().and_then(pinned_digest) {
        if new_digest.as_ref() != Some(&old_digest) {
            release(&s, old_digest, spec.name.clone()).await;
        }
    }
    s.engine.register(spec.clone());
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(spec)).into_response())
}

pub(super) async fn list(State(s): State<Shared>) -> Result<Json<Vec<FunctionSpec>>, ApiError> {
    let store = s.store.clone();
    Ok(Json(blocking(move || store.list_functions()).await?))
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<FunctionSpec>, ApiError> {
    let store = s.store.clone();
    let n = name.clone();
    blocking(move || store.get_function(&n))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown function {name:?}")))
}

pub(super) async fn delete(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    refuse_in_cluster(&s)?;
    let store = s.store.clone();
    let n = name.clone();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let old = {
        let store = store.clone();
        let n = n.clone();
        blocking(move || store.get_function(&n)).await?
    };
    // The store fails the function's queued asynchronous invocations durably first; the engine
    // then ends its queued invocations, sync callers included.
    if blocking(move || store.delete_function(&n, now_ms)).await? {
        s.engine.unregister(&name);
        if let Some(digest) = old.as_ref().and_then(pinned_digest) {
            release(&s, digest, name).await;
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("unknown function {name:?}")))
    }
}

#[derive(Deserialize)]
pub(super) struct PrewarmQuery {
    count: Option<u32>,
}

pub(super) async fn prewarm(
    State(s): State<Shared>,
    Path(name): Path<String>,
    q: Result<Query<PrewarmQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let count = q.count.unwrap_or(1);
    if count == 0 || count > 64 {
        return Err(ApiError::bad_request("count must be in 1..=64"));
    }
    let started = s.engine.prewarm(&name, count)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"function": name, "started": started})),
    )
        .into_response())
}

/// The image digest a stored spec holds, if it is an image function.
pub(crate) fn pinned_digest(spec: &FunctionSpec) -> Option<sluice_image::Digest> {
    let d = spec.image.as_ref()?.digest.as_deref()?;
    sluice_image::Digest::parse(d).ok()
}

/// Resolves `spec`'s image for `holder`; a field error is a 400 that names it as a spec field.
pub(crate) async fn resolve_image(
    s: &Shared,
    spec: &FunctionSpec,
    image: crate::images::ImageRef,
    holder: String,
) -> Result<crate::images::Resolution, ApiError> {
    let command = spec.command.clone();
    let workdir = spec.workdir.clone();
    let env = spec.env.clone();
    let r = super::images::blocking(&s.images, move |im| {
        im.resolve(&image, &command, workdir.as_deref(), &env, &holder)
    })
    .await;
    r.map_err(|e| {
        if e.status == StatusCode::BAD_REQUEST {
            ApiError::bad_request(format!("invalid function spec: {}", e.message))
        } else {
            e
        }
    })
}

/// Drops `holder`'s reference on an image (logged, not fatal, when the store fails: the
/// references are rebuilt from the registered functions at the next start).
pub(crate) async fn release(s: &Shared, digest: sluice_image::Digest, holder: String) {
    let images = s.images.clone();
    let r = tokio::task::spawn_blocking(move || images.release(&digest, &holder)).await;
    if let Ok(Err(e)) = r {
        tracing::warn!("cannot release an image reference: {e}");
    }
}
