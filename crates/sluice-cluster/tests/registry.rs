//! Registry and routing across real processes: a function registered through router A is
//! visible through router B and on every worker, invoked through B; updates are
//! compare-and-swap (a stale revision gets 409); workers refuse local registration; deletes
//! reach the workers; an asynchronous invocation accepted twice under one idempotency key is
//! stored and run once, and readable through the other router.

mod common;

use common::http::{call_with, json};
use common::{call, function, wait_for, Cluster};
use std::time::Duration;

#[test]
fn register_through_one_router_invoke_through_another() {
    let c = Cluster::start(2, 2, 3, "[async]\nack_wait_s = 2.0\n");
    let (a, b) = (c.routers[0].addr, c.routers[1].addr);
    let spec = function("echo");
    let created = call(a, "POST", "/v1/functions", Some(&spec.to_string()));
    assert_eq!(created.0, 201, "{created:?}");
    let rev = created.2["x-sluice-revision"].clone();

    wait_for(Duration::from_secs(5), "router B sees the function", || {
        call(b, "GET", "/v1/functions/echo", None).0 == 200
    });
    for w in &c.workers {
        wait_for(
            Duration::from_secs(5),
            "every worker mirrors the function",
            || call(w.addr, "GET", "/v1/functions/echo", None).0 == 200,
        );
    }
    let r = call(b, "POST", "/v1/functions/echo/invoke", Some(r#"{"x": 1}"#));
    assert_eq!(r.0, 200, "{r:?}");
    assert_eq!(json(&r)["echo"]["x"], 1);
    assert!(
        r.2.contains_key("x-sluice-worker") && r.2.contains_key("x-sluice-load"),
        "{:?}",
        r.2
    );
    // Router B counts how its policy placed the call (one pick: home, warm or spilled).
    let metrics = call(b, "GET", "/metrics", None).1;
    let placed: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("sluice_router_placements_total{kind="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(placed >= 1, "{metrics}");
    assert!(
        metrics.contains("sluice_router_placements_total{kind=\"fallback\"}"),
        "{metrics}"
    );

    // Compare-and-swap: the current revision wins once, then is stale.
    let mut v2 = spec.clone();
    v2["timeout_ms"] = 30_000.into();
    let body = v2.to_string();
    let ok = call_with(
        a,
        "POST",
        "/v1/functions",
        Some(&body),
        &[("If-Match", &rev)],
    );
    assert_eq!(ok.0, 200, "{ok:?}");
    let stale = call_with(
        b,
        "POST",
        "/v1/functions",
        Some(&body),
        &[("If-Match", &rev)],
    );
    assert_eq!(stale.0, 409, "{stale:?}");
    assert_eq!(json(&stale)["error"]["code"], "conflict");

    // A struct is an object, as the schema says (serde alone would take an array of its fields).
    let mut arr = spec.clone();
    arr["resources"] = serde_json::json!([]);
    let refused = call(a, "POST", "/v1/functions", Some(&arr.to_string()));
    assert_eq!(refused.0, 400, "{refused:?}");

    // Workers take their registry from etcd only.
    let local = call(
        c.workers[0].addr,
        "POST",
        "/v1/functions",
        Some(&spec.to_string()),
    );
    assert_eq!(local.0, 409, "{local:?}");
    assert_eq!(json(&local)["error"]["code"], "cluster_member");
    let load = json(&call(c.workers[0].addr, "GET", "/v1/load", None));
    assert!(load["tokens"].as_u64().unwrap_or(0) > 0, "{load}");

    // Asynchronous: the same idempotency key is one invocation, readable on the other router.
    let key = [("Idempotency-Key", "it-registry-1")];
    let first = call_with(
        a,
        "POST",
        "/v1/functions/echo/invoke-async",
        Some(r#"{"y": 2}"#),
        &key,
    );
    let again = call_with(
        a,
        "POST",
        "/v1/functions/echo/invoke-async",
        Some(r#"{"y": 2}"#),
        &key,
    );
    assert_eq!((first.0, again.0), (202, 202), "{first:?} {again:?}");
    assert_eq!(json(&first)["id"], "it-registry-1");
    let mut rec = serde_json::Value::Null;
    wait_for(Duration::from_secs(20), "the invocation finishes", || {
        rec = json(&call(b, "GET", "/v1/invocations/it-registry-1", None));
        rec["done"] == true
    });
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert_eq!(rec["result"]["echo"]["y"], 2, "{rec}");

    // Readiness, status, delete.
    assert_eq!(call(a, "GET", "/readyz", None).0, 200);
    assert_eq!(c.routers[1].workers(), 2);
    assert_eq!(call(b, "DELETE", "/v1/functions/echo", None).0, 204);
    for w in &c.workers {
        wait_for(
            Duration::from_secs(5),
            "workers drop the deleted function",
            || call(w.addr, "GET", "/v1/functions/echo", None).0 == 404,
        );
    }
    assert_eq!(
        call(a, "POST", "/v1/functions/echo/invoke", Some("{}")).0,
        404
    );
}
