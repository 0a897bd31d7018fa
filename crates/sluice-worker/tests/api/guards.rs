//! What sits in front of every route: the token check, the body limit, the JSON depth limit,
//! unknown routes; and the worker-wide routes (status, drain).

use crate::support::{function, harness};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_route_but_healthz_needs_the_token() {
    let h = harness(|c| c.auth_token = Some("s3cret".into())).await;
    let r = h.call("GET", "/v1/functions", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    let unknown = h.call("GET", "/no/such/route", None).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "routes are not revealed"
    );
    assert_eq!(h.call("GET", "/healthz", None).await.status, StatusCode::OK);
    for (auth, status) in [
        ("Bearer s3cret", StatusCode::OK),
        ("bearer s3cret", StatusCode::OK),
        ("Bearer s3cret2", StatusCode::UNAUTHORIZED),
        ("Basic s3cret", StatusCode::UNAUTHORIZED),
    ] {
        let req = Request::get("/v1/functions")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .expect("request");
        assert_eq!(h.send(req).await.status, status, "{auth}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_and_json_too_deep_are_refused() {
    let h = harness(|c| c.max_body_bytes = 1024).await;
    h.register(&function("f", json!({}))).await;
    let big = format!("\"{}\"", "x".repeat(2000));
    let r = h.call("POST", "/v1/functions/f/invoke", Some(&big)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(r.headers[header::CONNECTION], "close");
    // No Content-Length: the body is cut off as it grows past the limit.
    let req = Request::post("/v1/functions/f/invoke")
        .body(Body::from(big))
        .expect("request");
    assert_eq!(h.send(req).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let r = h.call("POST", "/v1/functions/f/invoke", Some(&deep)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.message().contains("64"), "{}", r.text);
    let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let r = h.call("POST", "/v1/functions/f/invoke", Some(&ok)).await;
    assert_eq!(r.status, StatusCode::OK, "64 levels are fine: {}", r.text);
    let r = h.call("GET", "/no/such/route", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn status_reports_limits_and_a_drained_worker_refuses_new_invocations() {
    let h = harness(|_| {}).await;
    h.register(&function("f", json!({}))).await;
    let s = h.call("GET", "/v1/status", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.json["devices"], "simulated");
    assert!(s.json["limits_not_enforced"].is_array(), "{}", s.text);
    assert_eq!(s.json["async"]["queued"], 0);
    let d = h.call("POST", "/v1/drain", None).await;
    assert_eq!(d.status, StatusCode::ACCEPTED);
    for path in ["/v1/functions/f/invoke", "/v1/functions/f/invoke-async"] {
        let r = h.call("POST", path, Some("{}")).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            "{path}"
        );
    }
}
