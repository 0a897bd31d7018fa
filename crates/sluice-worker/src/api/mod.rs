//! The HTTP/JSON API. Handlers only turn requests into calls on the [`Engine`] and the
//! [`Store`] and results into responses; the OpenAPI description is served at `/openapi.json`.
//! In front of every route (unknown ones included) sit the token check (`auth`) and the body
//! limits (`body`); JSON bodies are checked for nesting depth (`depth`) before they are parsed.

mod asynch;
mod auth;
mod body;
mod depth;
mod error;
mod functions;
mod images;
mod invocations;
mod invoke;
mod logs;
mod pipelines;
mod strict;

pub use asynch::{resume as resume_async, AsyncTasks};
pub use error::ApiError;
pub use invoke::parse_json;

use crate::engine::Engine;
use crate::pipeline::Pipelines;
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// What every handler shares.
pub struct AppState {
    /// Runs invocations; holds the registered functions and the configuration.
    pub engine: Engine,
    /// The durable store: registered functions, pipelines and accepted asynchronous
    /// invocations.
    pub store: Arc<Store>,
    /// The deployed pipelines.
    pub pipelines: Pipelines,
    /// Asynchronous invocations being run, so a graceful stop can wait for their outcomes.
    pub async_tasks: AsyncTasks,
    /// Container images: store, imports, references.
    pub images: Arc<crate::images::Images>,
}

/// The state as handlers receive it (axum's `State`); cheap to clone.
pub type Shared = Arc<AppState>;

const OPENAPI: &str = include_str!("openapi.json");

/// The API router.
pub fn router(state: Shared) -> Router {
    let cfg = state.engine.config();
    let doc: Arc<str> = openapi_doc(state.engine.largest_gpu_memory()).into();
    let limits = body::Limits {
        max_bytes: cfg.max_body_bytes,
        timeout: std::time::Duration::from_millis(cfg.http.body_timeout_ms),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/functions", post(functions::put).get(functions::list))
        .route(
            "/v1/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route("/v1/functions/{name}/invoke", post(invoke::sync))
        .route("/v1/functions/{name}/invoke-async", post(asynch::submit))
        .route("/v1/functions/{name}/prewarm", post(functions::prewarm))
        .route("/v1/functions/{name}/logs", get(logs::get))
        .route("/v1/invocations", get(invocations::list))
        .route("/v1/invocations/{id}", get(invocations::get))
        .route("/v1/images", post(images::import).get(images::list))
        .route("/v1/images/gc", post(images::gc))
        .route(
            "/v1/images/{digest}",
            get(images::get).delete(images::delete),
        )
        .route(
            "/v1/pipelines",
            post(pipelines::create).get(pipelines::list),
        )
        .route(
            "/v1/pipelines/{name}",
            get(pipelines::get)
                .put(pipelines::update)
                .delete(pipelines::delete),
        )
        .route("/v1/pipelines/{name}/invoke", post(pipelines::invoke))
        .route(
            "/v1/pipelines/{name}/invoke-async",
            post(pipelines::invoke_async),
        )
        .route("/v1/status", get(status))
        .route("/v1/load", get(load))
        .route("/v1/drain", post(drain))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(move || openapi(doc.clone())))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(middleware::from_fn_with_state(limits, body::read))
        .layer(middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(axum::extract::DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(state)
}

async fn status(State(s): State<Shared>) -> Response {
    let counts = {
        let store = s.store.clone();
        tokio::task::spawn_blocking(move || store.counts()).await
    };
    let mut v = serde_json::to_value(s.engine.status()).unwrap_or_default();
    if let (Ok(Ok(c)), Some(obj)) = (counts, v.as_object_mut()) {
        obj.insert(
            "async".into(),
            serde_json::json!({"queued": c.queued, "running": c.running,
                "succeeded": c.succeeded, "failed": c.failed}),
        );
    }
    axum::Json(v).into_response()
}

/// `GET /v1/load`: queued, running, tokens, draining, and the warm functions and deployed
/// pipelines (cluster routers poll it for locality hints).
async fn load(State(s): State<Shared>) -> Response {
    let l = s.engine.load();
    let pipelines: Vec<String> = s.pipelines.list().into_iter().map(|p| p.name).collect();
    axum::Json(serde_json::json!({
        "queued": l.queued, "running": l.running, "tokens": l.tokens,
        "draining": s.engine.status().draining,
        "warm": s.engine.warm_functions(),
        "pipelines": pipelines,
    }))
    .into_response()
}

/// The `x-sluice-load` header value: `<queued>,<running>,<tokens>`.
pub(crate) fn load_header(s: &AppState) -> Option<axum::http::HeaderValue> {
    let l = s.engine.load();
    axum::http::HeaderValue::from_str(&format!("{},{},{}", l.queued, l.running, l.tokens)).ok()
}

/// A cluster member's registry comes from etcd: local registration changes are refused.
pub(crate) fn refuse_in_cluster(s: &AppState) -> Result<(), ApiError> {
    if s.engine.config().cluster.enabled() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cluster_member",
            "this worker is a cluster member: register functions and pipelines through a router",
        ));
    }
    Ok(())
}

/// Stops accepting invocations (503 from now on); queued and running ones finish.
async fn drain(State(s): State<Shared>) -> Response {
    s.engine.drain();
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"draining": true})),
    )
        .into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics_text(&s),
    )
        .into_response()
}

/// The engine's families then the pipelines', as one OpenMetrics document.
fn metrics_text(s: &AppState) -> String {
    let engine = s.engine.metrics_text();
    let engine = engine.strip_suffix("# EOF\n").unwrap_or(&engine);
    format!("{engine}{}", s.pipelines.metrics_text())
}

async fn openapi(doc: Arc<str>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// The OpenAPI document with this worker's bound on `resources.gpu_memory_mb` (its largest
/// device, in MiB) filled in, so the document refuses exactly what registration refuses.
fn openapi_doc(largest_gpu_memory: u64) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(OPENAPI) else {
        return OPENAPI.to_string();
    };
    let field = &mut doc["components"]["schemas"]["Resources"]["properties"]["gpu_memory_mb"];
    if field.is_object() {
        field["maximum"] = serde_json::json!(largest_gpu_memory >> 20);
    }
    doc.to_string()
}

/// Runs a blocking store call off the async threads; a store error is a 500 that says what
/// failed (a damaged record is named as damage, never reported as absent).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}
