//! `POST /v1/functions/{name}/invoke`: run a function and answer with its JSON result, with the
//! timing in headers (`x-sluice-queue-ms`, `x-sluice-cold-start-ms`, `x-sluice-exec-ms`,
//! `x-sluice-total-ms`, `x-sluice-cold`).

use super::{blocking, depth, ApiError, Shared};
use crate::engine::InvokeError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Checks that a body is one JSON value nesting at most [`depth::MAX_DEPTH`] levels (an empty
/// body counts as `null`).
pub(super) fn json_input(body: Bytes) -> Result<Bytes, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"null"));
    }
    depth::check(&body, depth::MAX_DEPTH).map_err(ApiError::bad_request)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
    Ok(body)
}

/// Parses a JSON body into `T`, refusing deep nesting first; `what` names it in errors.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    depth::check(body, depth::MAX_DEPTH)
        .map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))?;
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

pub(super) async fn sync(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = json_input(body?)?;
    let ok = match s.engine.invoke(&name, input).await {
        Ok(ok) => ok,
        Err(InvokeError::UnknownFunction(_)) => return Err(unknown(&s, name).await),
        Err(e) => return Err(e.into()),
    };
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

/// The answer for a function the engine does not know: 404, unless the store holds a damaged
/// record of that name (the worker could not register it at start), which is a 500 naming it.
async fn unknown(s: &Shared, name: String) -> ApiError {
    let store = s.store.clone();
    let n = name.clone();
    match blocking(move || store.get_function(&n)).await {
        Err(damaged) => damaged,
        Ok(_) => InvokeError::UnknownFunction(name).into(),
    }
}
