//! Asynchronous invocations: submit (202), get (with result, error and logs), the listing with
//! its filters, bounds and cursor, and a function's logs.

use crate::support::{function, harness};
use axum::http::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn an_accepted_invocation_keeps_its_result_and_what_its_function_wrote() {
    let h = harness(|_| {}).await;
    h.register(&function("f", json!({}))).await;
    let id = h
        .submit("f", &json!({"do": "print", "text": "hello"}))
        .await;
    let done = h.wait_done(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], json!({"printed": true}));
    let logs = done["logs"].as_str().unwrap_or_default();
    assert!(
        logs.contains("starting\n"),
        "a cold start's output is its own: {logs:?}"
    );
    assert!(logs.contains("to stdout: hello\n"), "{logs:?}");
    assert!(logs.contains("to stderr: hello\n"), "{logs:?}");
    assert_eq!(done["logs_truncated"], false);
    // A warm one holds only its own output; a crash keeps what was written before it.
    let warm = h
        .submit("f", &json!({"do": "print", "text": "again"}))
        .await;
    let warm = h.wait_done(&warm).await;
    let logs = warm["logs"].as_str().unwrap_or_default();
    assert!(
        !logs.contains("hello") && logs.contains("again"),
        "{logs:?}"
    );
    let crash = h.submit("f", &json!({"do": "crash"})).await;
    let crash = h.wait_done(&crash).await;
    assert_eq!(crash["status"], "failed");
    assert!(
        crash["logs"]
            .as_str()
            .unwrap_or_default()
            .contains("crashing now"),
        "{crash}"
    );
    let unknown = h
        .call("GET", "/v1/invocations/inv-000000009999", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown = h
        .call("POST", "/v1/functions/nope/invoke-async", Some("{}"))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

fn ids(page: &Value) -> Vec<String> {
    (page["invocations"].as_array().into_iter().flatten())
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn invocations_are_listed_newest_first_by_function_and_status_a_page_at_a_time() {
    let h = harness(|_| {}).await;
    h.register(&function("a", json!({}))).await;
    h.register(&function("b", json!({}))).await;
    let mut all = Vec::new();
    for (f, input) in [
        ("a", json!(1)),
        ("b", json!(2)),
        ("a", json!({"do": "fail"})),
        ("a", json!(3)),
    ] {
        let id = h.submit(f, &input).await;
        h.wait_done(&id).await;
        all.push(id);
    }
    let newest_first: Vec<String> = all.iter().rev().cloned().collect();
    let page = h.call("GET", "/v1/invocations", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(ids(&page.json), newest_first);
    assert_eq!(page.json["next_cursor"], Value::Null);
    assert!(
        page.json["invocations"][0].get("result").is_none(),
        "summaries only"
    );
    let a = h.call("GET", "/v1/invocations?function=a", None).await;
    assert_eq!(
        ids(&a.json),
        [all[3].clone(), all[2].clone(), all[0].clone()]
    );
    let failed = h
        .call("GET", "/v1/invocations?function=a&status=failed", None)
        .await;
    assert_eq!(ids(&failed.json), [all[2].clone()]);
    assert!(failed.json["invocations"][0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("asked to fail")));
    // Two at a time, following the cursor to the end.
    let mut seen = Vec::new();
    let mut path = "/v1/invocations?limit=2".to_string();
    loop {
        let p = h.call("GET", &path, None).await;
        assert!(ids(&p.json).len() <= 2);
        seen.extend(ids(&p.json));
        match p.json["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/invocations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    for (query, needle) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("status=done", "status"),
        ("function=Not%20A%20Name", "function"),
        ("cursor=42", "cursor"),
        ("colour=red", "colour"),
    ] {
        let r = h
            .call("GET", &format!("/v1/invocations?{query}"), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert!(r.message().contains(needle), "{query}: {}", r.text);
    }
}

#[tokio::test]
async fn a_functions_logs_are_read_and_followed_by_seq() {
    let h = harness(|_| {}).await;
    h.register(&function("f", json!({}))).await;
    let r = h
        .call(
            "POST",
            "/v1/functions/f/invoke",
            Some(r#"{"do": "print", "text": "one"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let logs = h.call("GET", "/v1/functions/f/logs", None).await;
    assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
    let text: String = (logs.json["entries"].as_array().into_iter().flatten())
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        text.contains("starting") && text.contains("to stdout: one"),
        "{text:?}"
    );
    let stderr = (logs.json["entries"].as_array().into_iter().flatten()).any(|e| {
        e["stream"] == "stderr"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("to stderr: one"))
    });
    assert!(stderr, "{}", logs.text);
    let next = logs.json["next"].as_u64().unwrap_or(0);
    h.call(
        "POST",
        "/v1/functions/f/invoke",
        Some(r#"{"do": "print", "text": "two"}"#),
    )
    .await;
    let more = h
        .call("GET", &format!("/v1/functions/f/logs?after={next}"), None)
        .await;
    let text: String = (more.json["entries"].as_array().into_iter().flatten())
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(text.contains("two") && !text.contains("one"), "{text:?}");
    assert_eq!(more.json["dropped"], false);
    let unknown = h.call("GET", "/v1/functions/nope/logs", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = h.call("GET", "/v1/functions/f/logs?limit=0", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // One above the documented maximum (2^53 - 1): refused, as the OpenAPI document says.
    let bad = h
        .call("GET", "/v1/functions/f/logs?after=9007199254740992", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let top = h
        .call("GET", "/v1/functions/f/logs?after=9007199254740991", None)
        .await;
    assert_eq!(top.status, StatusCode::OK);
}
