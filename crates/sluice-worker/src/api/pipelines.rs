//! `/v1/pipelines`: deploy, update, list, show and delete pipelines, and invoke them
//! synchronously (raw bytes in, the sink's bytes out, per-stage timing in `x-sluice-stages`) or
//! asynchronously (stored like function invocations, under the name `pipeline:<name>`).

use super::asynch::{accept_and_run, Target};
use super::invoke::parse_json;
use super::{blocking, refuse_in_cluster, ApiError, Shared};
use crate::pipeline::{DeployRequest, Finished, PipelineError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        let msg = e.to_string();
        match e {
            PipelineError::Unknown(_) => ApiError::not_found(msg),
            PipelineError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", msg),
            PipelineError::Invalid(_) => ApiError::bad_request(msg),
            PipelineError::Deploy(_) => ApiError::new(StatusCode::BAD_GATEWAY, "start_failed", msg),
            PipelineError::Failed(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "pipeline_error", msg)
            }
            PipelineError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", msg),
        }
    }
}

/// The request; deploying validates it (a refusal is a 400, logged with its reason).
fn parse_request(body: Result<Bytes, BytesRejection>) -> Result<DeployRequest, ApiError> {
    parse_json(&body?, "pipeline request")
}

async fn persist(s: &Shared, req: &DeployRequest) -> Result<(), ApiError> {
    let store = s.store.clone();
    let stored = req.clone();
    blocking(move || store.put_pipeline(&stored.spec.name, &stored)).await?;
    Ok(())
}

pub(super) async fn create(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    refuse_in_cluster(&s)?;
    let req = parse_request(body)?;
    let view = s.pipelines.deploy(req.clone(), false).await?;
    persist(&s, &req).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn update(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    refuse_in_cluster(&s)?;
    let req = parse_request(body)?;
    if req.spec.name != name {
        return Err(ApiError::bad_request(format!(
            "the spec is named {:?}, the path {name:?}",
            req.spec.name
        )));
    }
    let view = s.pipelines.deploy(req.clone(), true).await?;
    persist(&s, &req).await?;
    Ok(Json(view).into_response())
}

pub(super) async fn list(State(s): State<Shared>) -> Response {
    Json(s.pipelines.list()).into_response()
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.pipelines
        .view(&name)
        .map(|v| Json(v).into_response())
        .ok_or_else(|| PipelineError::Unknown(name).into())
}

pub(super) async fn delete(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    refuse_in_cluster(&s)?;
    s.pipelines.delete(&name).await?;
    let store = s.store.clone();
    blocking(move || store.delete_pipeline(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `det=0.4/12.1/4,cls=…`: per stage, queue ms / total ms / batch size.
fn stages_header(f: &Finished) -> String {
    f.stages
        .iter()
        .map(|t| {
            format!(
                "{}={:.3}/{:.3}/{}",
                t.stage, t.queue_ms, t.total_ms, t.batch
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) async fn invoke(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = body?;
    if s.engine.status().draining {
        return Err(crate::engine::InvokeError::Draining.into());
    }
    let f = s.pipelines.invoke(&name, input).await?;
    let mut headers = HeaderMap::new();
    let ctype = if f.json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", f.total_ms)) {
        headers.insert("x-sluice-total-ms", v);
    }
    if let Ok(v) = HeaderValue::from_str(&stages_header(&f)) {
        headers.insert("x-sluice-stages", v);
    }
    Ok((headers, f.body).into_response())
}

pub(super) async fn invoke_async(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = body?;
    if s.pipelines.view(&name).is_none() {
        return Err(PipelineError::Unknown(name).into());
    }
    accept_and_run(&s, Target::Pipeline(name), input, None).await
}
