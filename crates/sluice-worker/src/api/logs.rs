//! `GET /v1/functions/{name}/logs?after=&limit=`: a function's recent output (stdout and stderr
//! of all its sandboxes, bounded per function: see [`crate::logs`]), oldest first, as entries
//! numbered across the worker. A client follows the logs by asking again with `after` = the
//! answer's `next`; `dropped` says that output after `after` was overwritten before it asked.

use super::{blocking, ApiError, Shared};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most entries one answer holds (a function's ring holds about this many at most).
pub const MAX_ENTRIES: usize = 1000;

/// The largest `after`: entry numbers stay exact integers in JSON (the OpenAPI maximum).
const MAX_AFTER: u64 = (1 << 53) - 1;

/// The query of the logs route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogParams {
    after: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(name): Path<String>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let after = p.after.unwrap_or(0);
    if after > MAX_AFTER {
        return Err(ApiError::bad_request(format!(
            "after must be at most {MAX_AFTER} (2^53 - 1, the largest integer a JSON client reads exactly), got {after}"
        )));
    }
    let limit = p.limit.unwrap_or(MAX_ENTRIES);
    if !(1..=MAX_ENTRIES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be in 1..={MAX_ENTRIES}, got {limit}"
        )));
    }
    let store = s.store.clone();
    let n = name.clone();
    if blocking(move || store.get_function(&n)).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    let page = s.engine.function_logs(&name, after, limit);
    Ok(Json(json!({
        "function": name,
        "entries": page.entries,
        "next": page.next,
        "dropped": page.dropped,
    })))
}
