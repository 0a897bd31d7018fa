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

/// Parses a JSON body into `T`, refusing deep nesting first; `what` names it in errors. A number
/// written with a zero fraction (`5.0`) counts as the integer it equals, as JSON Schema and the
/// OpenAPI document have it; a struct must be a JSON object (`strict`), never an array.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let invalid = |e: String| ApiError::bad_request(format!("invalid {what}: {e}"));
    depth::check(body, depth::MAX_DEPTH).map_err(invalid)?;
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    integral_floats_to_integers(&mut value);
    super::strict::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// Rewrites every number with a zero fraction that fits an integer type as that integer.
/// Recursion is bounded by the depth check that runs first.
fn integral_floats_to_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
                return;
            };
            if f.fract() != 0.0 {
                return;
            }
            if (0.0..=u64::MAX as f64).contains(&f) && f < 18_446_744_073_709_551_616.0 {
                *v = Value::from(f as u64);
            } else if (i64::MIN as f64..0.0).contains(&f) {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
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
    let ok = match s.engine.invoke(&name, input).await {
        Ok(ok) => ok,
        Err(InvokeError::UnknownFunction(_)) => return Err(unknown(s, name).await),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_count_as_integers_and_others_stay() {
        let mut v = serde_json::json!({"a": 5.0, "b": [1.5, -2.0, 3], "c": 1e300});
        integral_floats_to_integers(&mut v);
        assert_eq!(v["a"], serde_json::json!(5u64));
        assert_eq!(v["b"], serde_json::json!([1.5, -2i64, 3]));
        assert!(v["c"].is_f64(), "too large for an integer: left alone");
    }
}
