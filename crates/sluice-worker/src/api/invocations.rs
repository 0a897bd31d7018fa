//! Finding accepted (asynchronous) invocations: `GET /v1/invocations` lists them newest first,
//! a page at a time (`?function=&status=&limit=&cursor=`; every parameter checked, with a 400
//! that names it), and `GET /v1/invocations/{id}` shows one with its result, its error and the
//! tail of what its function wrote to stdout and stderr while it ran.
//!
//! Paging: `limit` is 1–1000 (default 50); a page answers `next_cursor`, the id to pass as
//! `cursor` for the next (older) page, or `null` at the oldest. A page examines at most
//! [`SCAN_BUDGET`](crate::store::SCAN_BUDGET) records, so a filter that matches rarely may answer
//! fewer than `limit` (even none) with a `next_cursor` to go on from.

use super::asynch::PIPELINE_PREFIX;
use super::{blocking, ApiError, Shared};
use crate::function::check_name;
use crate::store::{parse_id, InvocationRecord, ListQuery, Status};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

/// The query of `GET /v1/invocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    function: Option<String>,
    status: Option<Status>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl ListParams {
    /// Checks every parameter; the error names the one that is wrong.
    fn query(self) -> Result<ListQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be in 1..={MAX_LIMIT}, got {limit}"
            )));
        }
        if let Some(f) = &self.function {
            let ok = match f.strip_prefix(PIPELINE_PREFIX) {
                Some(p) => sluice_pipeline::spec::valid_name(p),
                None => check_name(f).is_ok(),
            };
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "function {f:?} is not a function name (1-63 characters of a-z, 0-9, '-', \
                     '_') nor pipeline:<name>"
                )));
            }
        }
        let before = match &self.cursor {
            None => None,
            Some(c) => Some(parse_id(c).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "cursor {c:?} is not an invocation id (use a page's next_cursor)"
                ))
            })?),
        };
        Ok(ListQuery {
            function: self.function,
            status: self.status,
            before,
            limit,
            ..ListQuery::default()
        })
    }
}

pub(super) async fn list(
    State(s): State<Shared>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let q = params.query()?;
    let store = s.store.clone();
    let page = blocking(move || store.list_invocations(&q)).await?;
    let items: Vec<Value> = (page.invocations.iter())
        .map(|r| {
            json!({
                "id": r.id, "function": r.function, "status": r.status, "error": r.error,
                "attempts": r.attempts, "accepted_ms": r.accepted_ms, "started_ms": r.started_ms,
                "finished_ms": r.finished_ms, "done": r.status.is_finished(),
            })
        })
        .collect();
    Ok(Json(
        json!({"invocations": items, "next_cursor": page.next}),
    ))
}

/// One invocation as `GET /v1/invocations/{id}` answers it.
fn view(r: &InvocationRecord) -> Value {
    let parse = |b: &Vec<u8>| {
        serde_json::from_slice::<Value>(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
    };
    json!({
        "id": r.id,
        "function": r.function,
        "status": r.status,
        "result": r.result.as_ref().map(parse),
        "error": r.error,
        "attempts": r.attempts,
        "accepted_ms": r.accepted_ms,
        "started_ms": r.started_ms,
        "finished_ms": r.finished_ms,
        "done": r.status.is_finished(),
        "logs": r.logs.as_ref().map(|l| &l.text),
        "logs_truncated": r.logs.as_ref().is_some_and(|l| l.truncated),
    })
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = s.store.clone();
    let i = id.clone();
    blocking(move || store.get_invocation(&i))
        .await?
        .map(|r| Json(view(&r)))
        .ok_or_else(|| ApiError::not_found(format!("unknown invocation {id:?}")))
}
