//! Asynchronous invocations through a router: `invoke-async` publishes the invocation to
//! JetStream and answers 202 `{"id"}` only once the server acknowledged it; an
//! `Idempotency-Key` header (1–64 of `[A-Za-z0-9_-]`) becomes the id, so a client's retried
//! accept is stored once. `GET /v1/invocations/{id}` reads the record from the bucket, on any
//! router.

use super::{draining, store_error, Shared};
use crate::queue::{new_id, valid_id, AsyncQueue};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sluice_worker::api::ApiError;

fn queue(s: &Shared) -> Result<&AsyncQueue, ApiError> {
    s.queue.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_queue",
            "asynchronous invocations need a NATS server: start the router with --nats",
        )
    })
}

/// The invocation id: the client's `Idempotency-Key`, or a fresh one.
fn invocation_id(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(new_id()),
        Some(v) => {
            let id = v.to_str().unwrap_or("");
            if valid_id(id) {
                Ok(id.to_string())
            } else {
                Err(ApiError::bad_request(
                    "Idempotency-Key must be 1-64 characters of [A-Za-z0-9_-]",
                ))
            }
        }
    }
}

/// Accepts an invocation of `target` (`function:<f>` / `pipeline:<p>`): 202 once stored.
pub(super) async fn accept(
    s: &Shared,
    headers: &HeaderMap,
    target: &str,
    input: Bytes,
) -> Result<Response, ApiError> {
    if s.is_draining() {
        return Err(draining());
    }
    let q = queue(s)?;
    let id = invocation_id(headers)?;
    q.accept(&id, target, input).await.map_err(store_error)?;
    s.metrics.accepted();
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

pub(super) async fn submit(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"null")
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
        body
    };
    if !s.functions.contains(&name) {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    accept(&s, &headers, &format!("function:{name}"), input).await
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::not_found(format!("unknown invocation {id:?}")));
    }
    let q = queue(&s)?;
    match q.record(&id).await.map_err(store_error)? {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::not_found(format!("unknown invocation {id:?}"))),
    }
}
