//! `POST /v1/functions/{name}/invoke`: run a function and answer with its JSON result, with the
//! timing in headers (`x-sluice-queue-ms`, `x-sluice-cold-start-ms`, `x-sluice-exec-ms`,
//! `x-sluice-total-ms`, `x-sluice-cold`).

use super::{ApiError, Shared};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Checks that a body is one JSON value (an empty body counts as `null`).
pub(super) fn json_input(body: Bytes) -> Result<Bytes, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"null"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
    Ok(body)
}

/// Runs the invocation and adds the `x-sluice-load` header to whatever it answers.
pub(super) async fn sync(
    State(s): State<Shared>,
    name: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut resp = match run(&s, name, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(v) = super::load_header(&s) {
        resp.headers_mut().insert(LOAD_HEADER, v);
    }
    resp
}

/// The response header carrying the worker's load after an invocation.
const LOAD_HEADER: &str = "x-sluice-load";

async fn run(
    s: &Shared,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = json_input(body?)?;
    let ok = s.engine.invoke(&name, input).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let t = ok.timing;
    for (k, v) in [
        ("x-sluice-queue-ms", t.queue_ms),
        ("x-sluice-cold-start-ms", t.cold_start_ms),
        ("x-sluice-exec-ms", t.exec_ms),
        ("x-sluice-total-ms", t.total_ms),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{v:.3}")) {
            headers.insert(k, v);
        }
    }
    headers.insert(
        "x-sluice-cold",
        HeaderValue::from_static(if ok.cold { "true" } else { "false" }),
    );
    Ok((headers, ok.body).into_response())
}
