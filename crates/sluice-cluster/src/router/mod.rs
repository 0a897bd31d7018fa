//! The router: a stateless process serving the worker's public API in front of many workers.
//! Reads come from watch caches of etcd (members, functions, pipelines, assignments);
//! registrations are compare-and-swap writes to etcd; invocations are forwarded to the worker
//! the balancer picks; asynchronous ones go through JetStream and this router's dispatchers.
//!
//! - [`functions`]: `/v1/functions` (registry in etcd);
//! - [`invoke`]: synchronous invocations (retried elsewhere only when nothing was sent);
//! - [`asynch`]: `invoke-async` and `/v1/invocations/{id}`;
//! - [`dispatch`]: the dispatchers that run accepted invocations;
//! - [`pipelines`]: `/v1/pipelines` (registry in etcd, replicas placed by the controller);
//! - [`ops`]: status, metrics, health, readiness, drain, OpenAPI.

pub mod asynch;
pub mod dispatch;
pub mod functions;
pub mod invoke;
pub mod ops;
pub mod pipelines;

use crate::balance::Balancer;
use crate::cache::Cache;
use crate::config::RouterConfig;
use crate::error::ClusterError;
use crate::etcd::{mirror, Coordinator};
use crate::forward::WorkerClient;
use crate::keys;
use crate::model::{Assignment, Member, PipelineRecord};
use crate::queue::AsyncQueue;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_worker::api::ApiError;
use sluice_worker::function::FunctionSpec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every handler, dispatcher and the controller share.
pub struct RouterState {
    /// The configuration in force.
    pub cfg: RouterConfig,
    /// This router's id.
    pub id: String,
    /// etcd.
    pub coord: Coordinator,
    /// `workers/`.
    pub members: Arc<Cache<Member>>,
    /// `functions/`.
    pub functions: Arc<Cache<FunctionSpec>>,
    /// `pipelines/`.
    pub pipelines: Arc<Cache<PipelineRecord>>,
    /// `assign/`, keyed `<worker>/<pipeline>`.
    pub assignments: Arc<Cache<Assignment>>,
    /// Worker choice and load view.
    pub balancer: Arc<Balancer>,
    /// Calls to workers.
    pub client: WorkerClient,
    /// JetStream, when configured.
    pub queue: Option<AsyncQueue>,
    /// Set by `POST /v1/drain` or shutdown: no new requests, no new dispatches.
    pub draining: AtomicBool,
    /// Whether this router leads the pipeline controller now.
    pub leader: AtomicBool,
    /// Counters for `/metrics`.
    pub metrics: ops::Metrics,
    /// When it started.
    pub started: Instant,
}

/// The shared state.
pub type Shared = Arc<RouterState>;

impl RouterState {
    /// Whether the router refuses new work.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The workers assigned `pipeline` that are members now.
    pub fn pipeline_workers(&self, pipeline: &str) -> Vec<String> {
        self.assignments
            .snapshot()
            .into_iter()
            .filter_map(|(k, _)| {
                let (w, p) = keys::split_assignment(&k)?;
                (p == pipeline && self.members.contains(w)).then(|| w.to_string())
            })
            .collect()
    }
}

/// A router ready to serve.
pub struct Router {
    /// Its state.
    pub state: Shared,
}

impl Router {
    /// Connects to etcd (and NATS, if configured), starts the watch caches, the load poller,
    /// the dispatchers and (if enabled) the controller campaign.
    pub async fn start(cfg: RouterConfig) -> Result<Router, ClusterError> {
        cfg.validate().map_err(ClusterError::Invalid)?;
        let coord = Coordinator::connect(&cfg.etcd).await?;
        let members: Arc<Cache<Member>> = Cache::new(keys::WORKERS);
        let functions: Arc<Cache<FunctionSpec>> = Cache::new(keys::FUNCTIONS);
        let pipelines: Arc<Cache<PipelineRecord>> = Cache::new(keys::PIPELINES);
        let assignments: Arc<Cache<Assignment>> = Cache::new(keys::ASSIGN);
        tokio::spawn(mirror(coord.clone(), members.clone()));
        tokio::spawn(mirror(coord.clone(), functions.clone()));
        tokio::spawn(mirror(coord.clone(), pipelines.clone()));
        tokio::spawn(mirror(coord.clone(), assignments.clone()));
        if !members.wait_synced(Duration::from_secs(5)).await {
            tracing::warn!("etcd not reachable yet: serving from an empty registry until it is");
        }
        let queue = match &cfg.nats {
            Some(url) => Some(connect_queue(url, &cfg).await?),
            None => None,
        };
        let seed = sluice_policy::placement::Key::of_str(&format!(
            "{}-{}",
            cfg.router_id(),
            crate::now_ms()
        ))
        .0;
        let balancer =
            Balancer::new(members.clone(), &cfg.routing, seed).map_err(ClusterError::Invalid)?;
        let client = WorkerClient::new(cfg.cluster_token.clone());
        let state = Arc::new(RouterState {
            id: cfg.router_id(),
            coord,
            members,
            functions,
            pipelines,
            assignments,
            balancer: balancer.clone(),
            client: client.clone(),
            queue,
            draining: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            metrics: ops::Metrics::default(),
            started: Instant::now(),
            cfg,
        });
        tokio::spawn(balancer.poll_loads(client, Duration::from_millis(state.cfg.load_poll_ms)));
        if let Some(q) = &state.queue {
            tokio::spawn(dispatch::run(state.clone(), q.clone()));
        }
        if state.cfg.controller.enabled {
            tokio::spawn(crate::controller::run(state.clone()));
        }
        Ok(Router { state })
    }

    /// Serves the API on `listener` until `shutdown` resolves; then stops taking work.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ClusterError> {
        let state = self.state.clone();
        axum::serve(listener, app(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.draining.store(true, Ordering::Relaxed);
            })
            .await
            .map_err(|e| ClusterError::Invalid(format!("serving failed: {e}")))
    }
}

/// Connects to NATS, retrying for up to 30 s (it may start after the router).
async fn connect_queue(url: &str, cfg: &RouterConfig) -> Result<AsyncQueue, ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match AsyncQueue::connect(url, cfg.queue.clone()).await {
            Ok(q) => return Ok(q),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!("NATS not ready ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The router's HTTP application.
pub fn app(state: Shared) -> axum::Router {
    let limit = state.cfg.max_body_bytes;
    let api = axum::Router::new()
        .route("/v1/functions", post(functions::put).get(functions::list))
        .route(
            "/v1/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route("/v1/functions/{name}/invoke", post(invoke::sync))
        .route("/v1/functions/{name}/invoke-async", post(asynch::submit))
        .route("/v1/functions/{name}/prewarm", post(invoke::prewarm))
        .route("/v1/invocations/{id}", get(asynch::get))
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
        .route("/v1/status", get(ops::status))
        .route("/v1/drain", post(ops::drain))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::ready))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Bearer-token check, when a token is configured.
async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = s.cfg.auth_token.as_deref() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// 503 with `Retry-After`: no worker can take the work now.
pub fn no_worker(what: &str) -> ApiError {
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_worker",
            format!("no worker can take {what} now"),
        )
    }
}

/// 503: the router is draining.
pub fn draining() -> ApiError {
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the router is draining and accepts no new requests",
        )
    }
}

/// A cluster-store failure as an API error: a lost compare-and-swap is 409, etcd away 503.
pub fn store_error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Conflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        ClusterError::Etcd(_) | ClusterError::Nats(_) => ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        },
        ClusterError::Invalid(_) => ApiError::bad_request(e.to_string()),
        ClusterError::Malformed { .. } => ApiError::internal(e.to_string()),
    }
}
