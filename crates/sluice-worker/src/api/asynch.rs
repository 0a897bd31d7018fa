//! Asynchronous invocations: `POST /v1/functions/{name}/invoke-async` answers 202 with an id
//! once the invocation is durably accepted; `GET /v1/invocations/{id}` reports it. Accepted
//! invocations survive a crash: [`resume`] re-runs them at start (at-least-once).

use super::invoke::json_input;
use super::{blocking, ApiError, Shared};
use crate::engine::InvokeError;
use crate::store::{InvocationRecord, Outcome, Status};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) async fn submit(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = json_input(body?)?;
    let store = s.store.clone();
    let n = name.clone();
    if blocking(move || store.get_function(&n)).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    accept_and_run(&s, Target::Function(name), input).await
}

/// What an asynchronous invocation runs.
pub(super) enum Target {
    Function(String),
    Pipeline(String),
}

/// Stored name prefix of asynchronous pipeline invocations (`:` is not allowed in function
/// names, so the two never collide).
const PIPELINE_PREFIX: &str = "pipeline:";

impl Target {
    fn stored_name(&self) -> String {
        match self {
            Target::Function(f) => f.clone(),
            Target::Pipeline(p) => format!("{PIPELINE_PREFIX}{p}"),
        }
    }

    fn from_stored(name: String) -> Target {
        match name.strip_prefix(PIPELINE_PREFIX) {
            Some(p) => Target::Pipeline(p.to_string()),
            None => Target::Function(name),
        }
    }
}

/// Durably accepts an invocation of `target`, answers 202 with its id, and runs it.
pub(super) async fn accept_and_run(
    s: &Shared,
    target: Target,
    input: Bytes,
) -> Result<Response, ApiError> {
    if s.engine.status().draining {
        return Err(InvokeError::Draining.into());
    }
    let store = s.store.clone();
    let (n, bytes) = (target.stored_name(), input.to_vec());
    let rec = blocking(move || store.accept(&n, &bytes, now_ms())).await?;
    tokio::spawn(run(s.clone(), rec.id.clone(), target, input));
    Ok((StatusCode::ACCEPTED, Json(json!({"id": rec.id}))).into_response())
}

/// Runs one accepted invocation and records its outcome.
async fn run(s: Shared, id: String, target: Target, input: Bytes) {
    let store = s.store.clone();
    let i = id.clone();
    if let Err(e) = blocking(move || store.mark_running(&i, now_ms())).await {
        tracing::error!("cannot mark {id} running: {}", e.message);
    }
    let outcome = match target {
        Target::Function(function) => match s.engine.invoke(&function, input).await {
            Ok(ok) => Outcome::Succeeded(ok.body.to_vec()),
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Target::Pipeline(name) => match s.pipelines.invoke(&name, input).await {
            Ok(f) => Outcome::Succeeded(f.body.to_vec()),
            Err(e) => Outcome::Failed(e.to_string()),
        },
    };
    let store = s.store.clone();
    let i = id.clone();
    if let Err(e) = blocking(move || store.finish(&i, outcome, now_ms())).await {
        tracing::error!("cannot record the outcome of {id}: {}", e.message);
    }
}

/// Re-runs every accepted invocation that had not finished when the worker stopped.
pub async fn resume(s: Shared) -> Result<usize, ApiError> {
    let store = s.store.clone();
    let max = s.engine.config().async_max_attempts;
    let records = blocking(move || store.recover(max, now_ms())).await?;
    let n = records.len();
    for r in records {
        let target = Target::from_stored(r.function);
        tokio::spawn(run(s.clone(), r.id, target, Bytes::from(r.input)));
    }
    Ok(n)
}

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
        "done": matches!(r.status, Status::Succeeded | Status::Failed),
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
