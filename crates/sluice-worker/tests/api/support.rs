//! A worker built in this process (`Worker::start`: store, devices, launcher, engine) with
//! simulated GPUs and a private data directory, its API router driven with tower's `oneshot`:
//! no worker process and no port. Functions run the fixture `tests/fixtures/api/function.py`
//! in real sandboxes.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_worker::api;
use sluice_worker::config::WorkerConfig;
use sluice_worker::server::Worker;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// A running in-process worker and its router.
pub struct Harness {
    pub worker: Worker,
    pub app: Router,
    /// The data directory's parent, removed when the harness goes.
    _dir: tempfile::TempDir,
}

/// An answer: status, headers, the body as text and (if it is JSON) as a value.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error answer.
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

/// Starts a worker with the embedded defaults, simulated GPUs, a private data directory, and
/// whatever `tweak` changes.
pub async fn harness(tweak: impl FnOnce(&mut WorkerConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = WorkerConfig::embedded();
    cfg.data_dir = dir.path().join("data");
    cfg.listen = "127.0.0.1:0".parse().expect("address");
    cfg.gpu.force_simulated = true;
    cfg.start_timeout_ms = 20_000;
    tweak(&mut cfg);
    let worker = Worker::start(cfg).await.expect("the worker starts");
    let app = api::router(worker.state.clone());
    Harness {
        worker,
        app,
        _dir: dir,
    }
}

impl Harness {
    /// One request through the router.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, b.len());
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .expect("request");
        self.send(req).await
    }

    /// One prepared request through the router.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Registers `spec`, expecting 201.
    pub async fn register(&self, spec: &Value) {
        let r = self
            .call("POST", "/v1/functions", Some(&spec.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    /// Submits `input` to `function` asynchronously; returns the id.
    pub async fn submit(&self, function: &str, input: &Value) -> String {
        let path = format!("/v1/functions/{function}/invoke-async");
        let r = self.call("POST", &path, Some(&input.to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        r.json["id"].as_str().expect("an id").to_string()
    }

    /// Polls an asynchronous invocation until it is done (at most 30 s).
    pub async fn wait_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .call("GET", &format!("/v1/invocations/{id}"), None)
                .await;
            if r.json["done"] == true {
                return r.json;
            }
            assert!(
                Instant::now() < deadline,
                "{id} not done in 30 s: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/api/function.py")
}

/// A spec running the fixture, with `extra` fields merged in (`env` entries added).
pub fn function(name: &str, extra: Value) -> Value {
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python");
    let mut spec = json!({
        "name": name,
        "command": ["python3", fixture().display().to_string()],
        "env": {"SLUICE_SDK": sdk.display().to_string()},
        "resources": {"memory_mb": 256},
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            match (k.as_str(), v.as_object()) {
                ("env", Some(env)) => {
                    for (ek, ev) in env {
                        spec["env"][ek] = ev.clone();
                    }
                }
                _ => spec[k] = v.clone(),
            }
        }
    }
    spec
}
