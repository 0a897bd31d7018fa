//! `/v1/functions` on a router: registrations are compare-and-swap writes to etcd
//! (`functions/<name>`, on the key's `mod_revision`; a lost race is 409), reads come from the
//! watch cache. An `If-Match: <revision>` header makes the caller's own read the condition;
//! without it the router reads the key's current revision first. Every answer that names a
//! function carries its revision in `x-sluice-revision`.

use super::{store_error, Shared};
use crate::etcd::Expect;
use crate::keys;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_worker::api::ApiError;
use sluice_worker::function::FunctionSpec;

/// The header carrying a registration's etcd revision.
pub const REVISION_HEADER: &str = "x-sluice-revision";

fn with_revision(mut resp: Response, rev: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&rev.to_string()) {
        resp.headers_mut().insert(REVISION_HEADER, v);
    }
    resp
}

/// The condition of a write: `If-Match`, else the key's current revision read now.
pub(super) async fn condition(
    s: &Shared,
    key: &str,
    headers: &HeaderMap,
) -> Result<Expect, ApiError> {
    if let Some(v) = headers.get(axum::http::header::IF_MATCH) {
        let rev = v
            .to_str()
            .ok()
            .map(|t| t.trim().trim_matches('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| ApiError::bad_request("If-Match must be a revision number"))?;
        return Ok(if rev == 0 {
            Expect::Absent
        } else {
            Expect::Revision(rev)
        });
    }
    Ok(match s.coord.get(key).await.map_err(store_error)? {
        Some((_, rev)) => Expect::Revision(rev),
        None => Expect::Absent,
    })
}

pub(super) async fn put(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let spec: FunctionSpec = sluice_worker::api::parse_json(&body, "function spec")?;
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = keys::function(&spec.name);
    let expect = condition(&s, &key, &headers).await?;
    let value = serde_json::to_vec(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let rev = s
        .coord
        .put_if(&key, value.clone(), expect)
        .await
        .map_err(store_error)?;
    // Read your own write: the watch brings the same event a moment later.
    s.functions.put(key.as_bytes(), &value, rev);
    let status = match expect {
        Expect::Absent => StatusCode::CREATED,
        Expect::Revision(_) => StatusCode::OK,
    };
    Ok(with_revision((status, Json(spec)).into_response(), rev))
}

pub(super) async fn list(State(s): State<Shared>) -> Json<Vec<FunctionSpec>> {
    Json(
        s.functions
            .snapshot()
            .into_iter()
            .map(|(_, v)| (*v.value).clone())
            .collect(),
    )
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let v = s
        .functions
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("unknown function {name:?}")))?;
    Ok(with_revision(
        Json((*v.value).clone()).into_response(),
        v.mod_revision,
    ))
}

pub(super) async fn delete(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = keys::function(&name);
    match condition(&s, &key, &headers).await? {
        Expect::Absent => Err(ApiError::not_found(format!("unknown function {name:?}"))),
        Expect::Revision(rev) => {
            let at = s.coord.delete_if(&key, rev).await.map_err(store_error)?;
            s.functions.delete(key.as_bytes(), at);
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
