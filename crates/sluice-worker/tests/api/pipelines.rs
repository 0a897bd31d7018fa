//! `/v1/pipelines` requests that are refused before anything starts, and unknown pipelines.

use crate::support::harness;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn bad_pipeline_requests_get_400_and_unknown_pipelines_404() {
    let h = harness(|_| {}).await;
    let stage =
        |name: &str, after: &[&str]| json!({"name": name, "command": ["true"], "after": after});
    let request = |name: &str, stages: Vec<serde_json::Value>| {
        json!({"spec": {"name": name, "slo_ms": 100, "stages": stages}, "base_dir": "/tmp"})
            .to_string()
    };
    let cases = [
        ("{nope".to_string(), "invalid pipeline request"),
        (
            request("cyc", vec![stage("a", &["b"]), stage("b", &["a"])]),
            "cycle",
        ),
        (request("unk", vec![stage("a", &["zz"])]), "zz"),
        (
            request("nocmd", vec![json!({"name": "a"})]),
            "stage a has no command",
        ),
        (
            json!({"spec": {"name": "rel", "slo_ms": 10, "stages": [stage("a", &[])]},
                   "base_dir": "relative"})
            .to_string(),
            "absolute",
        ),
        (
            json!({"spec": {"name": "g", "slo_ms": 10, "stages": [stage("a", &[])]},
                   "base_dir": "/tmp", "gpus": 3})
            .to_string(),
            "this worker has 1",
        ),
        (
            json!({"spec": {"name": "s", "slo_ms": 10,
                            "stages": [{"name": "a", "command": ["true"],
                                        "env": {"SLUICE_DEVICE_HANDOFF": "maybe"}}]},
                   "base_dir": "/tmp"})
            .to_string(),
            "stage a: SLUICE_DEVICE_HANDOFF",
        ),
    ];
    for (body, needle) in cases {
        let r = h.call("POST", "/v1/pipelines", Some(&body)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{body}"
        );
        assert!(r.message().contains(needle), "{needle:?} not in {}", r.text);
    }
    for (method, path) in [
        ("GET", "/v1/pipelines/nope"),
        ("DELETE", "/v1/pipelines/nope"),
        ("POST", "/v1/pipelines/nope/invoke"),
        ("POST", "/v1/pipelines/nope/invoke-async"),
    ] {
        let r = h.call(method, path, Some("x")).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
    }
    let other = request("other", vec![stage("a", &[])]);
    let r = h.call("PUT", "/v1/pipelines/mismatch", Some(&other)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(h.call("GET", "/v1/pipelines", None).await.json, json!([]));
}
