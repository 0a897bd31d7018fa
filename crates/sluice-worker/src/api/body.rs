//! Reading request bodies under limits, before any handler runs: a declared `Content-Length`
//! over `max_body_bytes` is answered 413 at once, without reading a byte of the body; a body
//! that grows past the limit is cut off with 413; one that does not arrive within
//! `http.body_timeout_ms` (a slow-loris body) gets 408. Each of these closes the connection. The
//! handlers then get the body whole — except image uploads (`images`), streamed by their handler.

use super::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

/// The limits a body is read under.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// An error answer after which the connection is closed (its unread body makes it unusable).
fn closing(err: ApiError) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn too_large(max: usize) -> Response {
    closing(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body exceeds max_body_bytes ({max})"),
    ))
}

/// Reads the whole body under `limits`, then runs the handler on it; an image upload is left
/// to its handler, which streams it to disk under its own limit.
pub(super) async fn read(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    if super::images::is_upload(&req) {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return too_large(limits.max_bytes);
    }
    let (parts, body) = req.into_parts();
    let reading = Limited::new(body, limits.max_bytes).collect();
    match tokio::time::timeout(limits.timeout, reading).await {
        Err(_) => closing(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms",
                limits.timeout.as_millis()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => too_large(limits.max_bytes),
        Ok(Err(e)) => closing(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
        Ok(Ok(collected)) => {
            let req = Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
    }
}
