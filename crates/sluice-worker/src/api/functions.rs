//! `/v1/functions`: register, list, show, delete and prewarm functions. A spec that can never
//! run on this worker's devices is refused at registration (400, naming the field); deleting a
//! function ends its queued invocations.

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
    let spec: FunctionSpec = parse_json(&body, "function spec")?;
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    s.engine
        .check_fits(&spec)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = s.store.clone();
    let stored = spec.clone();
    let replaced = blocking(move || store.put_function(&stored)).await?;
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
    // The store fails the function's queued asynchronous invocations durably first; the engine
    // then ends its queued invocations, sync callers included.
    if blocking(move || store.delete_function(&n, now_ms)).await? {
        s.engine.unregister(&name);
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
