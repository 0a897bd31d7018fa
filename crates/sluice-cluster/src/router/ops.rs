//! The router's operational routes: `GET /v1/status` (cluster view, with the worker status
//! fields summed so `sluice status` reads it), `/metrics` (OpenMetrics counters), `/healthz`
//! (liveness), `/readyz` (ready while not draining, etcd reachable and the registry synced),
//! `POST /v1/drain`, and the OpenAPI document (the worker's: the same public API).

use super::Shared;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const OPENAPI: &str = include_str!("../../../sluice-worker/src/api/openapi.json");

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    forwarded_ok: AtomicU64,
    forwarded_err: AtomicU64,
    retried: AtomicU64,
    accepted: AtomicU64,
    dispatched_ok: AtomicU64,
    dispatched_failed: AtomicU64,
}

impl Metrics {
    /// A synchronous call answered by a worker.
    pub fn forwarded(&self, ok: bool) {
        let c = if ok {
            &self.forwarded_ok
        } else {
            &self.forwarded_err
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A call sent elsewhere because the first worker did not run it.
    pub fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// An asynchronous invocation accepted.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// An asynchronous invocation finished by this router's dispatchers.
    pub fn dispatched(&self, ok: bool) {
        let c = if ok {
            &self.dispatched_ok
        } else {
            &self.dispatched_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn text(&self, s: &super::RouterState) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut o = String::new();
        let _ = writeln!(o, "# TYPE sluice_router_forwarded counter");
        let _ = writeln!(
            o,
            "sluice_router_forwarded_total{{outcome=\"ok\"}} {}",
            g(&self.forwarded_ok)
        );
        let _ = writeln!(
            o,
            "sluice_router_forwarded_total{{outcome=\"error\"}} {}",
            g(&self.forwarded_err)
        );
        let _ = writeln!(o, "# TYPE sluice_router_retried counter");
        let _ = writeln!(o, "sluice_router_retried_total {}", g(&self.retried));
        let _ = writeln!(o, "# TYPE sluice_router_async_accepted counter");
        let _ = writeln!(
            o,
            "sluice_router_async_accepted_total {}",
            g(&self.accepted)
        );
        let _ = writeln!(o, "# TYPE sluice_router_async_dispatched counter");
        let _ = writeln!(
            o,
            "sluice_router_async_dispatched_total{{outcome=\"succeeded\"}} {}",
            g(&self.dispatched_ok)
        );
        let _ = writeln!(
            o,
            "sluice_router_async_dispatched_total{{outcome=\"failed\"}} {}",
            g(&self.dispatched_failed)
        );
        let _ = writeln!(o, "# TYPE sluice_router_placements counter");
        let placed = s.balancer.placements();
        for (kind, n) in crate::balance::PLACEMENT_KINDS.iter().zip(placed) {
            let _ = writeln!(o, "sluice_router_placements_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(o, "# TYPE sluice_router_workers gauge");
        let _ = writeln!(o, "sluice_router_workers {}", s.members.len());
        let _ = writeln!(o, "# TYPE sluice_router_leader gauge");
        let _ = writeln!(
            o,
            "sluice_router_leader {}",
            u8::from(s.leader.load(Ordering::Relaxed))
        );
        o.push_str("# EOF\n");
        o
    }
}

pub(super) async fn status(State(s): State<Shared>) -> Json<serde_json::Value> {
    let workers = s.balancer.view();
    let gpus: Vec<_> = workers.iter().flat_map(|w| w.member.gpus.clone()).collect();
    let queued: u32 = workers.iter().map(|w| w.load.queued).sum();
    let running: u32 = workers.iter().map(|w| w.load.running).sum();
    let pending = match &s.queue {
        Some(q) => q.pending().await.ok(),
        None => None,
    };
    Json(json!({
        "role": "router",
        "router": s.id,
        "devices": "cluster",
        "gpus": gpus,
        "isolation": "per worker",
        "policy": "cluster routing",
        "functions": s.functions.len(),
        "pipelines": s.pipelines.len(),
        "queued": queued,
        "running": running,
        "sandboxes": {"starting": 0, "idle": 0, "busy": running},
        "draining": s.is_draining(),
        "uptime_s": s.started.elapsed().as_secs_f64(),
        "etcd": {"reachable": s.coord.healthy(), "revision": s.functions.revision()},
        "nats": s.queue.as_ref().map(|q| json!({"connected": q.connected(), "pending": pending})),
        "controller_leader": s.leader.load(Ordering::Relaxed),
        "workers": workers,
    }))
}

pub(super) async fn ready(State(s): State<Shared>) -> Response {
    let synced = s.members.synced() && s.functions.synced();
    if s.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else if !(synced && s.coord.healthy()) {
        (StatusCode::SERVICE_UNAVAILABLE, "etcd not reachable").into_response()
    } else {
        "ready".into_response()
    }
}

pub(super) async fn drain(State(s): State<Shared>) -> Response {
    s.draining.store(true, Ordering::Relaxed);
    (StatusCode::ACCEPTED, Json(json!({"draining": true}))).into_response()
}

pub(super) async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.text(&s),
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
