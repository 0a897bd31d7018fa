//! Synchronous invocations through a router, and the forwarding loop the dispatchers share.
//!
//! A call goes to the worker the balancer picks. It is sent to another worker only when the
//! first provably did not run it: the connection failed before the request was written, or the
//! worker answered that it is draining (503 `draining`) or does not know the function yet (its
//! registry mirror lags the router's by a watch event; retried for up to 3 s, and a worker that
//! answers so three times, e.g. one whose GPUs cannot hold the function, is passed over). A request that
//! was sent and got no answer is never repeated here: the caller gets 502 `worker_lost`.

use super::{draining, no_worker, Shared};
use crate::forward::{ForwardError, Reply};
use crate::model::{Load, LOAD_HEADER};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_worker::api::ApiError;
use std::time::{Duration, Instant};

/// What a call runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A function, by name.
    Function(String),
    /// A pipeline, by name.
    Pipeline(String),
}

impl Target {
    fn path(&self) -> String {
        match self {
            Target::Function(f) => format!("/v1/functions/{f}/invoke"),
            Target::Pipeline(p) => format!("/v1/pipelines/{p}/invoke"),
        }
    }

    fn name(&self) -> &str {
        match self {
            Target::Function(n) | Target::Pipeline(n) => n,
        }
    }
}

/// How a forwarded call ended.
#[derive(Debug)]
pub enum Outcome {
    /// A worker answered (success or the function's failure).
    Answered {
        /// Its answer.
        reply: Reply,
        /// Which worker.
        worker: String,
    },
    /// The request was sent and the worker was lost: it may have run.
    Lost(ForwardError),
    /// No worker could take it (none live, all refused a connection, or all draining).
    NoWorker,
}

/// The error code in a worker's JSON error body.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str().map(str::to_string)
}

/// Forwards `body` for `target` to a worker, retrying elsewhere only when it was not run.
pub async fn forward(s: &Shared, target: &Target, body: Bytes, limit: Duration) -> Outcome {
    let mut exclude: Vec<String> = Vec::new();
    let unknown_until = Instant::now() + Duration::from_secs(3);
    let mut unknown_on: Vec<String> = Vec::new();
    let (ctype, function) = match target {
        Target::Function(f) => ("application/json", Some(f.as_str())),
        Target::Pipeline(_) => ("application/octet-stream", None),
    };
    for _ in 0..64 {
        let only = match target {
            Target::Pipeline(p) => Some(s.pipeline_workers(p)),
            Target::Function(_) => None,
        };
        let Some(pick) = s.balancer.pick(target.name(), only.as_deref(), &exclude) else {
            return Outcome::NoWorker;
        };
        let r = s
            .client
            .call(
                &pick.addr,
                Method::POST,
                &target.path(),
                body.clone(),
                Some(ctype),
                limit,
            )
            .await;
        match r {
            Ok(reply) => {
                let load = reply
                    .headers
                    .get(LOAD_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Load::parse);
                s.balancer.done(&pick.id, load, function);
                let code = (!reply.status.is_success())
                    .then(|| error_code(&reply.body))
                    .flatten();
                match (reply.status, code.as_deref()) {
                    (StatusCode::SERVICE_UNAVAILABLE, Some("draining")) => {
                        exclude.push(pick.id);
                        s.metrics.retried();
                    }
                    (StatusCode::NOT_FOUND, Some("not_found"))
                        if Instant::now() < unknown_until =>
                    {
                        // Its mirror may lag by a watch event; a worker that keeps not knowing
                        // the function (it cannot run it there) is passed over.
                        unknown_on.push(pick.id.clone());
                        if unknown_on.iter().filter(|w| **w == pick.id).count() >= 3 {
                            exclude.push(pick.id);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => {
                        return Outcome::Answered {
                            reply,
                            worker: pick.id,
                        }
                    }
                }
            }
            Err(e @ ForwardError::NotSent { .. }) => {
                tracing::debug!("{e}; trying another worker");
                s.balancer.done(&pick.id, None, None);
                s.balancer.suspect(&pick.id);
                exclude.push(pick.id);
                s.metrics.retried();
            }
            Err(e @ ForwardError::Lost { .. }) => {
                s.balancer.done(&pick.id, None, None);
                return Outcome::Lost(e);
            }
        }
    }
    Outcome::NoWorker
}

/// A worker's answer as the router's response, with `x-sluice-worker` naming the worker.
pub fn relay(reply: Reply, worker: &str) -> Response {
    let mut resp = (reply.status, reply.body).into_response();
    let h = resp.headers_mut();
    for (k, v) in reply.headers.iter() {
        let n = k.as_str();
        if n.starts_with("x-sluice-") || n == "content-type" || n == "retry-after" {
            h.insert(k.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(worker) {
        h.insert("x-sluice-worker", v);
    }
    resp
}

/// The worker was lost with the request: 502.
pub fn lost(e: ForwardError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "worker_lost", e.to_string())
}

/// How long to wait for a worker's answer to a call of `function`.
pub fn limit_for(s: &Shared, function: &str) -> Duration {
    let own = s
        .functions
        .get(function)
        .map_or(60_000, |v| v.value.timeout_ms);
    Duration::from_millis(own) + Duration::from_secs(s.cfg.queue_allowance_s)
}

pub(super) async fn sync(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if s.is_draining() {
        return Err(draining());
    }
    let body = body?;
    if !s.functions.contains(&name) {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    let limit = limit_for(&s, &name);
    match forward(&s, &Target::Function(name.clone()), body, limit).await {
        Outcome::Answered { reply, worker } => {
            s.metrics.forwarded(reply.status.is_success());
            Ok(relay(reply, &worker))
        }
        Outcome::Lost(e) => {
            s.metrics.forwarded(false);
            Err(lost(e))
        }
        Outcome::NoWorker => Err(no_worker(&format!("function {name:?}"))),
    }
}

/// `POST /v1/functions/{name}/prewarm?count=N`: prewarms on the worker the function's calls
/// would go to now.
pub(super) async fn prewarm(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if !s.functions.contains(&name) {
        return Err(ApiError::not_found(format!("unknown function {name:?}")));
    }
    let pick = s
        .balancer
        .pick(&name, None, &[])
        .ok_or_else(|| no_worker(&format!("function {name:?}")))?;
    let path = match q {
        Some(q) => format!("/v1/functions/{name}/prewarm?{q}"),
        None => format!("/v1/functions/{name}/prewarm"),
    };
    let r = s
        .client
        .call(
            &pick.addr,
            Method::POST,
            &path,
            Bytes::new(),
            None,
            Duration::from_secs(30),
        )
        .await;
    s.balancer.done(&pick.id, None, None);
    match r {
        Ok(reply) => Ok(relay(reply, &pick.id)),
        Err(e) => Err(lost(e)),
    }
}
