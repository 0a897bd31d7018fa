//! Integration tests of the worker: the real `sluice worker` binary, real sandboxed Python
//! functions (the SDK helper in sdk/python), the HTTP API and the CLI. Each test starts its own
//! worker on a free loopback port with a private data directory.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn echo_fn(name: &str) -> Value {
    common::function(name, json!({}))
}

#[test]
fn register_invoke_cold_then_warm() {
    let w = Worker::start(&[]);
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions",
        Some(&echo_fn("echo").to_string()),
    );
    assert_eq!(s, 201, "{body}");
    let (s, _, _) = http(
        &w,
        "POST",
        "/v1/functions",
        Some(&echo_fn("echo").to_string()),
    );
    assert_eq!(s, 200, "re-registering replaces");
    let (s, body, h) = http(&w, "POST", "/v1/functions/echo/invoke", Some(r#"{"a":1}"#));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"echo": {"a": 1}})
    );
    assert_eq!(h.get("x-sluice-cold").map(String::as_str), Some("true"));
    let (s, _, h) = http(&w, "POST", "/v1/functions/echo/invoke", Some(r#"{"a":2}"#));
    assert_eq!(s, 200);
    assert_eq!(h.get("x-sluice-cold").map(String::as_str), Some("false"));
    let cold: f64 = h["x-sluice-cold-start-ms"].parse().unwrap();
    assert_eq!(cold, 0.0);
    for k in ["x-sluice-queue-ms", "x-sluice-exec-ms", "x-sluice-total-ms"] {
        assert!(h[k].parse::<f64>().unwrap() >= 0.0);
    }
    let (s, body, _) = http(&w, "GET", "/v1/functions", None);
    assert_eq!(s, 200);
    assert!(body.contains("\"echo\""));
    let (s, _, _) = http(&w, "DELETE", "/v1/functions/echo", None);
    assert_eq!(s, 204);
    let (s, _, _) = http(&w, "POST", "/v1/functions/echo/invoke", Some("{}"));
    assert_eq!(s, 404);
}

#[test]
fn async_invocation_and_prewarm() {
    let w = Worker::start(&[]);
    http(
        &w,
        "POST",
        "/v1/functions",
        Some(&echo_fn("echo").to_string()),
    );
    let (s, body, _) = http(&w, "POST", "/v1/functions/echo/prewarm?count=2", None);
    assert_eq!(s, 202, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["started"], 2);
    common::wait_for(Duration::from_secs(20), || {
        let (_, b, _) = http(&w, "GET", "/v1/status", None);
        serde_json::from_str::<Value>(&b).unwrap()["sandboxes"]["idle"] == 2
    });
    let (_, _, h) = http(&w, "POST", "/v1/functions/echo/invoke", Some("1"));
    assert_eq!(
        h.get("x-sluice-cold").map(String::as_str),
        Some("false"),
        "prewarmed"
    );
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/echo/invoke-async",
        Some(r#"{"x":7}"#),
    );
    assert_eq!(s, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = common::wait_done(&w, &id);
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["result"], json!({"echo": {"x": 7}}));
    let (s, _, _) = http(&w, "GET", "/v1/invocations/nope", None);
    assert_eq!(s, 404);
}

#[test]
fn a_prewarm_on_a_full_gpu_pushes_what_it_displaces_to_host() {
    // One simulated GPU of 1 GiB, two functions of 600 MiB: the second prewarm makes room by
    // pushing the first one's idle sandbox to host, and that move is carried out (counted).
    let w = Worker::start(&["[gpu]", "simulated_memory_gib = 1.0"]);
    let to_host = |w: &Worker| -> f64 {
        let (_, text, _) = http(w, "GET", "/metrics", None);
        text.lines()
            .filter(|l| l.starts_with("sluice_memory_moved_bytes") && l.contains("to_host"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let mut f = echo_fn(name);
        f["resources"] = json!({"gpu": true, "gpu_memory_mb": 600, "memory_mb": 256});
        let (s, body, _) = http(&w, "POST", "/v1/functions", Some(&f.to_string()));
        assert_eq!(s, 201, "{body}");
        let path = format!("/v1/functions/{name}/prewarm?count=1");
        let (s, body, _) = http(&w, "POST", &path, None);
        assert_eq!(s, 202, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["started"], 1);
        common::wait_for(Duration::from_secs(20), || {
            let (_, b, _) = http(&w, "GET", "/v1/status", None);
            serde_json::from_str::<Value>(&b).unwrap()["sandboxes"]["idle"] == i + 1
        });
    }
    assert_eq!(
        to_host(&w),
        (600u64 << 20) as f64,
        "a's 600 MiB went to host"
    );
    // The first is still warm (its memory comes back on its next call).
    let (s, _, h) = http(&w, "POST", "/v1/functions/a/invoke", Some("{}"));
    assert_eq!(s, 200);
    assert_eq!(h.get("x-sluice-cold").map(String::as_str), Some("false"));
}

#[test]
fn every_error_status() {
    let w = Worker::start(&[
        "max_body_bytes = 1000",
        "max_queued_per_function = 1",
        "cpu_slots = 1",
    ]);
    let mut spec = echo_fn("e");
    spec["timeout_ms"] = json!(1500);
    http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    let cases: Vec<(&str, &str, Option<String>, u16)> = vec![
        ("POST", "/v1/functions", Some("{not json".into()), 400),
        (
            "POST",
            "/v1/functions",
            Some(r#"{"name":"Bad Name","command":["x"]}"#.into()),
            400,
        ),
        // serde would take an array for a struct (its fields in order); the schema says object.
        (
            "POST",
            "/v1/functions",
            Some(r#"{"name":"arr","command":["x"],"resources":[]}"#.into()),
            400,
        ),
        (
            "POST",
            "/v1/functions",
            Some(r#"["arr",["x"]]"#.into()),
            400,
        ),
        ("POST", "/v1/functions/e/invoke", Some("{oops".into()), 400),
        (
            "POST",
            "/v1/functions/nosuch/invoke",
            Some("{}".into()),
            404,
        ),
        ("GET", "/v1/functions/nosuch", None, 404),
        ("GET", "/v1/no/such/route", None, 404),
        (
            "POST",
            "/v1/functions/e/invoke",
            Some(format!("\"{}\"", "x".repeat(2000))),
            413,
        ),
        ("POST", "/v1/functions/e/prewarm?count=0", None, 400),
    ];
    for (m, p, b, want) in cases {
        let (s, body, _) = http(&w, m, p, b.as_deref());
        assert_eq!(s, want, "{m} {p}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{m} {p}: not JSON: {body}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{body}"
        );
    }
    // 429: one invocation sleeping, one queued (the per-function bound), the third rejected.
    let w2 = w.clone_addr();
    let t1 = std::thread::spawn(move || {
        http(
            &w2,
            "POST",
            "/v1/functions/e/invoke",
            Some(r#"{"do":"sleep","seconds":1}"#),
        )
        .0
    });
    common::wait_for(Duration::from_secs(10), || {
        common::status(&w)["sandboxes"]["busy"] == 1
    });
    let w3 = w.clone_addr();
    let t2 = std::thread::spawn(move || {
        http(
            &w3,
            "POST",
            "/v1/functions/e/invoke",
            Some(r#"{"do":"sleep","seconds":0.1}"#),
        )
        .0
    });
    common::wait_for(Duration::from_secs(5), || common::status(&w)["queued"] == 1);
    let (s, body, h) = http(&w, "POST", "/v1/functions/e/invoke", Some("{}"));
    // One CPU slot: the first runs, the second waits in the queue, the third exceeds the bound.
    assert_eq!(s, 429, "{body}");
    assert_eq!(h.get("retry-after").map(String::as_str), Some("1"));
    assert_eq!(t1.join().unwrap(), 200);
    assert_eq!(t2.join().unwrap(), 200);
}

#[test]
fn crash_timeout_hang_and_huge_output() {
    let w = Worker::start(&["max_response_bytes = 100000"]);
    let mut spec = echo_fn("b");
    spec["timeout_ms"] = json!(1000);
    http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/b/invoke",
        Some(r#"{"do":"crash"}"#),
    );
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("crashed"), "{body}");
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/b/invoke",
        Some(r#"{"do":"fail"}"#),
    );
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("asked to fail"), "{body}");
    let started = Instant::now();
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/b/invoke",
        Some(r#"{"do":"sleep","seconds":30}"#),
    );
    assert_eq!(s, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hung function was killed at its timeout"
    );
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/b/invoke",
        Some(r#"{"do":"huge","bytes":1000000}"#),
    );
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("exceeded"), "{body}");
    // The worker is still healthy and the function still works after all that.
    let (s, _, _) = http(&w, "POST", "/v1/functions/b/invoke", Some("{}"));
    assert_eq!(s, 200);
}

#[test]
fn a_function_that_cannot_start_is_a_clear_error() {
    let w = Worker::start(&[]);
    let spec = common::function("broken", json!({"FAIL_START": "1"}));
    http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    let (s, body, _) = http(&w, "POST", "/v1/functions/broken/invoke", Some("{}"));
    assert_eq!(s, 502, "{body}");
    assert!(
        body.contains("FAIL_START"),
        "stderr tail reaches the caller: {body}"
    );
}

#[test]
fn auth_is_enforced_when_configured() {
    let w = Worker::start(&["auth_token = \"s3cret\""]);
    let (s, _, _) = common::http_with(&w, "GET", "/v1/status", None, None);
    assert_eq!(s, 401);
    let (s, _, _) = common::http_with(&w, "GET", "/v1/status", None, Some("wrong"));
    assert_eq!(s, 401);
    let (s, _, _) = common::http_with(&w, "GET", "/v1/status", None, Some("s3cret"));
    assert_eq!(s, 200);
    let (s, _, _) = common::http_with(&w, "GET", "/healthz", None, None);
    assert_eq!(s, 200, "health needs no token");
}

#[test]
fn status_metrics_openapi_and_policy_selection() {
    let w = Worker::start(&["[scheduler]", "policy = \"fcfs\""]);
    http(&w, "POST", "/v1/functions", Some(&echo_fn("m").to_string()));
    http(&w, "POST", "/v1/functions/m/invoke", Some("{}"));
    let (_, body, _) = http(&w, "GET", "/v1/status", None);
    let st: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["policy"], "fcfs");
    assert_eq!(st["devices"], "simulated");
    assert!(st["note"].as_str().unwrap().contains("simulated"));
    let (_, metrics, _) = http(&w, "GET", "/metrics", None);
    for name in [
        "sluice_invocations_total{function=\"m\",outcome=\"ok\"} 1",
        "sluice_cold_starts_total{cause=\"first\"} 1",
        "sluice_cold_starts_total{cause=\"elsewhere\"} 0",
        "sluice_latency_seconds_bucket",
        "phase=\"end_to_end\"",
        "sluice_queue_length",
        "sluice_sandboxes",
        "sluice_gpu_memory_total_bytes",
        "sluice_gpu_processes",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    let (s, body, _) = http(&w, "GET", "/openapi.json", None);
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    for path in [
        "/v1/functions/{name}/invoke",
        "/v1/pipelines",
        "/v1/pipelines/{name}",
        "/v1/pipelines/{name}/invoke",
        "/v1/pipelines/{name}/invoke-async",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI"
        );
    }
}

#[test]
fn draining_answers_503_and_finishes_what_it_accepted() {
    let w = Worker::start(&[]);
    http(&w, "POST", "/v1/functions", Some(&echo_fn("d").to_string()));
    let w2 = w.clone_addr();
    let running = std::thread::spawn(move || {
        http(
            &w2,
            "POST",
            "/v1/functions/d/invoke",
            Some(r#"{"do":"sleep","seconds":1}"#),
        )
        .0
    });
    common::wait_for(Duration::from_secs(10), || {
        common::status(&w)["sandboxes"]["busy"] == 1
    });
    assert_eq!(http(&w, "POST", "/v1/drain", None).0, 202);
    let (s, body, _) = http(&w, "POST", "/v1/functions/d/invoke", Some("{}"));
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let (s, _, _) = http(&w, "POST", "/v1/functions/d/invoke-async", Some("{}"));
    assert_eq!(s, 503);
    assert_eq!(running.join().unwrap(), 200, "accepted work still finishes");
}
