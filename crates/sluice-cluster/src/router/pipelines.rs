//! `/v1/pipelines` on a router. A pipeline is registered in etcd (`pipelines/<name>`, a
//! [`PipelineRecord`]: the worker's deploy request plus replica bounds from the query,
//! `?min_replicas=N&max_replicas=M`); the elected controller places whole replicas on workers
//! and the workers deploy them. Invocations go to a worker holding a replica.

use super::asynch::accept;
use super::functions::{condition, REVISION_HEADER};
use super::invoke::{forward, lost, relay, Outcome, Target};
use super::{draining, no_worker, store_error, Shared};
use crate::etcd::Expect;
use crate::keys;
use crate::model::PipelineRecord;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_worker::api::ApiError;
use sluice_worker::pipeline::DeployRequest;
use std::time::Duration;

/// Replica bounds given with a registration.
#[derive(Deserialize)]
pub(super) struct Replicas {
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
}

fn record(body: Result<Bytes, BytesRejection>, r: &Replicas) -> Result<PipelineRecord, ApiError> {
    let request: DeployRequest = sluice_worker::api::parse_json(&body?, "pipeline request")?;
    let rec = PipelineRecord {
        request,
        min_replicas: r.min_replicas.unwrap_or(1),
        max_replicas: r.max_replicas.unwrap_or(8).max(r.min_replicas.unwrap_or(1)),
    };
    rec.validate().map_err(ApiError::bad_request)?;
    Ok(rec)
}

/// What the router knows of a pipeline: its record, revision and the workers assigned it.
fn view(s: &Shared, name: &str) -> Option<Value> {
    let v = s.pipelines.get(name)?;
    let r = &v.value;
    Some(json!({
        "name": name,
        "revision": v.mod_revision,
        "slo_ms": r.request.spec.slo_ms,
        "stages": r.request.spec.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "policy": r.request.policy,
        "min_replicas": r.min_replicas,
        "max_replicas": r.max_replicas,
        "workers": s.pipeline_workers(name),
    }))
}

async fn write(
    s: &Shared,
    rec: &PipelineRecord,
    expect: Expect,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let name = rec.request.spec.name.clone();
    let value = serde_json::to_vec(rec).map_err(|e| ApiError::internal(e.to_string()))?;
    let key = keys::pipeline(&name);
    let rev = s
        .coord
        .put_if(&key, value.clone(), expect)
        .await
        .map_err(store_error)?;
    s.pipelines.put(key.as_bytes(), &value, rev);
    let mut body = view(s, &name).unwrap_or_else(|| json!({"name": name}));
    body["revision"] = json!(rev);
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&rev.to_string()) {
        resp.headers_mut().insert(REVISION_HEADER, v);
    }
    Ok(resp)
}

pub(super) async fn create(
    State(s): State<Shared>,
    Query(q): Query<Replicas>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let rec = record(body, &q)?;
    write(&s, &rec, Expect::Absent, StatusCode::CREATED)
        .await
        .map_err(|e| match e.status {
            StatusCode::CONFLICT => ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!(
                    "pipeline {:?} already exists (update it instead)",
                    rec.request.spec.name
                ),
            ),
            _ => e,
        })
}

pub(super) async fn update(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Replicas>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let rec = record(body, &q)?;
    if rec.request.spec.name != name {
        return Err(ApiError::bad_request(format!(
            "the spec is named {:?}, the path {name:?}",
            rec.request.spec.name
        )));
    }
    match condition(&s, &keys::pipeline(&name), &headers).await? {
        Expect::Absent => Err(ApiError::not_found(format!("unknown pipeline {name:?}"))),
        e => write(&s, &rec, e, StatusCode::OK).await,
    }
}

pub(super) async fn list(State(s): State<Shared>) -> Json<Vec<Value>> {
    Json(
        s.pipelines
            .snapshot()
            .into_iter()
            .filter_map(|(n, _)| view(&s, &n))
            .collect(),
    )
}

/// One pipeline, with each replica's status as its worker reports it.
pub(super) async fn get(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut v =
        view(&s, &name).ok_or_else(|| ApiError::not_found(format!("unknown pipeline {name:?}")))?;
    let mut replicas = Vec::new();
    for w in s.pipeline_workers(&name) {
        let Some(m) = s.members.get(&w) else { continue };
        let r = s
            .client
            .get_json::<Value>(
                &m.value.addr,
                &format!("/v1/pipelines/{name}"),
                Duration::from_secs(2),
            )
            .await;
        replicas.push(match r {
            Ok(status) => json!({"worker": w, "status": status}),
            Err(e) => json!({"worker": w, "error": e}),
        });
    }
    v["replicas"] = json!(replicas);
    Ok(Json(v))
}

pub(super) async fn delete(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = keys::pipeline(&name);
    match condition(&s, &key, &headers).await? {
        Expect::Absent => Err(ApiError::not_found(format!("unknown pipeline {name:?}"))),
        Expect::Revision(rev) => {
            let at = s.coord.delete_if(&key, rev).await.map_err(store_error)?;
            s.pipelines.delete(key.as_bytes(), at);
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

pub(super) async fn invoke(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if s.is_draining() {
        return Err(draining());
    }
    let body = body?;
    if !s.pipelines.contains(&name) {
        return Err(ApiError::not_found(format!("unknown pipeline {name:?}")));
    }
    match forward(
        &s,
        &Target::Pipeline(name.clone()),
        body,
        Duration::from_secs(600),
    )
    .await
    {
        Outcome::Answered { reply, worker } => Ok(relay(reply, &worker)),
        Outcome::Lost(e) => Err(lost(e)),
        Outcome::NoWorker => Err(no_worker(&format!(
            "pipeline {name:?} (no replica placed yet?)"
        ))),
    }
}

pub(super) async fn invoke_async(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    if !s.pipelines.contains(&name) {
        return Err(ApiError::not_found(format!("unknown pipeline {name:?}")));
    }
    accept(&s, &headers, &format!("pipeline:{name}"), body).await
}
