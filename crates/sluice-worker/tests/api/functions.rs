//! `/v1/functions`: register, update, list, show, delete; synchronous invocation and its errors.

use crate::support::{function, harness};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn functions_are_registered_updated_listed_shown_and_deleted() {
    let h = harness(|_| {}).await;
    let spec = function("crud", json!({}));
    h.register(&spec).await;
    let again = h
        .call("POST", "/v1/functions", Some(&spec.to_string()))
        .await;
    assert_eq!(again.status, StatusCode::OK, "an update: {}", again.text);
    let list = h.call("GET", "/v1/functions", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json.as_array().map(Vec::len), Some(1), "{}", list.text);
    let one = h.call("GET", "/v1/functions/crud", None).await;
    assert_eq!(
        (one.status, &one.json["name"]),
        (StatusCode::OK, &json!("crud"))
    );
    assert_eq!(one.json["timeout_ms"], 60_000, "defaults filled in");
    let gone = h.call("GET", "/v1/functions/nope", None).await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let del = h.call("DELETE", "/v1/functions/crud", None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let del = h.call("DELETE", "/v1/functions/crud", None).await;
    assert_eq!(del.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_specs_are_refused_naming_the_field() {
    let h = harness(|_| {}).await;
    let cases = [
        ("{not json".to_string(), "invalid function spec"),
        (
            json!({"name": "Bad Name", "command": ["x"]}).to_string(),
            "name",
        ),
        (json!({"name": "a", "command": []}).to_string(), "command"),
        (
            json!({"name": "a", "command": ["x"], "colour": 1}).to_string(),
            "colour",
        ),
        (
            json!({"name": "a", "command": ["x"], "resources": {"memory_mb": 1}}).to_string(),
            "resources.memory_mb",
        ),
        (
            json!({"name": "a", "command": ["x"],
                   "resources": {"gpu": true, "gpu_memory_mb": 1 << 20}})
            .to_string(),
            "resources.gpu_memory_mb",
        ),
    ];
    for (body, needle) in cases {
        let r = h.call("POST", "/v1/functions", Some(&body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.message().contains(needle), "{needle:?} not in {}", r.text);
    }
    let list = h.call("GET", "/v1/functions", None).await;
    assert_eq!(list.json, json!([]), "nothing registered");
}

#[tokio::test]
async fn a_sync_invocation_answers_with_timing_and_each_failure_with_its_status() {
    let h = harness(|_| {}).await;
    h.register(&function("f", json!({"timeout_ms": 1500})))
        .await;
    let ok = h
        .call("POST", "/v1/functions/f/invoke", Some(r#"{"x": 1}"#))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json, json!({"echo": {"x": 1}}));
    assert_eq!(ok.headers["x-sluice-cold"], "true");
    assert!(ok.headers.contains_key("x-sluice-exec-ms"));
    let cases = [
        (
            "/v1/functions/nope/invoke",
            "{}",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/functions/f/invoke",
            "{nope",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/v1/functions/f/invoke",
            r#"{"do": "fail"}"#,
            StatusCode::BAD_GATEWAY,
            "function_error",
        ),
        (
            "/v1/functions/f/invoke",
            r#"{"do": "sleep", "seconds": 5}"#,
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
        ),
        (
            "/v1/functions/f/invoke",
            r#"{"do": "crash"}"#,
            StatusCode::BAD_GATEWAY,
            "crashed",
        ),
    ];
    for (path, body, status, code) in cases {
        let r = h.call("POST", path, Some(body)).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{path} {body}: {}",
            r.text
        );
    }
    let again = h.call("POST", "/v1/functions/f/invoke", Some("7")).await;
    assert_eq!(again.json, json!({"echo": {"value": 7}}), "a fresh sandbox");
}

#[tokio::test]
async fn a_function_that_cannot_start_fails_with_its_stderr_and_a_hint() {
    let h = harness(|_| {}).await;
    h.register(&function(
        "broken",
        json!({"env": {"START": "missing-module"}}),
    ))
    .await;
    let r = h
        .call("POST", "/v1/functions/broken/invoke", Some("{}"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_GATEWAY, "start_failed")
    );
    assert!(r.message().contains("ModuleNotFoundError"), "{}", r.text);
    assert!(
        r.message().contains("scripts/install-python-deps.sh"),
        "{}",
        r.text
    );
}
