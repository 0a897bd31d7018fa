//! Queue and admission against the real worker: nothing that can never run is queued or blocks
//! others, an overloaded function answers 429 with a computed `Retry-After` (sync and async
//! alike) instead of queueing past its bound, a caller that hangs up takes its queued
//! invocation with it, deleting a function ends its queued invocations, and a sandbox that
//! died while idle is never sent work.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn spec(name: &str, extra: Value) -> Value {
    let mut s = common::function(name, json!({}));
    if let (Some(dst), Some(src)) = (s.as_object_mut(), extra.as_object()) {
        dst.extend(src.clone());
    }
    s
}

fn register(w: &Worker, spec: &Value) -> (u16, String) {
    let (s, b, _) = http(w, "POST", "/v1/functions", Some(&spec.to_string()));
    (s, b)
}

/// The sum of a Prometheus counter's samples whose labels contain every one of `labels`.
fn counter(w: &Worker, name: &str, labels: &[&str]) -> f64 {
    let (_, text, _) = http(w, "GET", "/metrics", None);
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn queued(w: &Worker) -> u64 {
    let (_, body, _) = http(w, "GET", "/v1/status", None);
    serde_json::from_str::<Value>(&body).unwrap()["queued"]
        .as_u64()
        .unwrap()
}

fn busy_sandboxes(w: &Worker) -> u64 {
    let (_, body, _) = http(w, "GET", "/v1/status", None);
    serde_json::from_str::<Value>(&body).unwrap()["sandboxes"]["busy"]
        .as_u64()
        .unwrap()
}

/// Sends one sync invocation of `sleep seconds` on its own thread; returns its status.
fn invoke_in_background(
    w: &Worker,
    name: &str,
    seconds: f64,
) -> std::thread::JoinHandle<(u16, String)> {
    let w = w.clone_addr();
    let path = format!("/v1/functions/{name}/invoke");
    std::thread::spawn(move || {
        let body = json!({"do": "sleep", "seconds": seconds}).to_string();
        let (s, b, _) = http(&w, "POST", &path, Some(&body));
        (s, b)
    })
}

#[test]
fn what_can_never_fit_is_refused_and_blocks_nothing() {
    let w = Worker::start(&[]);
    let gpu = |mb: u64| json!({"resources": {"gpu": true, "gpu_memory_mb": mb, "memory_mb": 256}});
    for (name, extra) in [
        ("big", gpu(10_000_000)),
        (
            "cpu-absurd",
            json!({"resources": {"gpu_memory_mb": u64::MAX / 2}}),
        ),
    ] {
        let (s, body) = register(&w, &spec(name, extra));
        assert_eq!(s, 400, "{body}");
        assert!(body.contains("resources.gpu_memory_mb"), "{body}");
        let (s, _, _) = http(&w, "GET", &format!("/v1/functions/{name}"), None);
        assert_eq!(s, 404, "not stored");
    }
    assert_eq!(register(&w, &spec("small", gpu(100))).0, 201);
    let (s, body, _) = http(&w, "POST", "/v1/functions/small/invoke", Some("{}"));
    assert_eq!(s, 200, "{body}");
}

#[test]
fn a_stored_function_that_no_longer_fits_fails_at_once_and_blocks_nothing() {
    let mut w = Worker::start(&[]);
    let dir = w.dir.clone();
    let gpu = |mb: u64| json!({"resources": {"gpu": true, "gpu_memory_mb": mb, "memory_mb": 256}});
    assert_eq!(register(&w, &spec("big", gpu(4096))).0, 201);
    assert_eq!(register(&w, &spec("small", gpu(100))).0, 201);
    assert!(w.term(Duration::from_secs(20)));
    // The same data on a worker whose (simulated) GPU holds 1 GiB: "big" is still registered.
    let w = Worker::start_in(dir.clone(), &["[gpu]", "simulated_memory_gib = 1.0"]);
    let started = Instant::now();
    let (s, body, _) = http(&w, "POST", "/v1/functions/big/invoke", Some("{}"));
    assert_eq!(s, 409, "{body}");
    assert!(
        body.contains("unplaceable") && body.contains("4096 MiB"),
        "{body}"
    );
    let (s, body, _) = http(&w, "POST", "/v1/functions/big/invoke-async", Some("{}"));
    assert_eq!(s, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body, _) = http(&w, "POST", "/v1/functions/small/invoke", Some("{}"));
    assert_eq!(s, 200, "another GPU function still starts: {body}");
    let rec = common::wait_done(&w, &id);
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"].as_str().unwrap().contains("can never start"),
        "{rec}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(queued(&w), 0);
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn overload_is_refused_by_predicted_wait_with_a_computed_retry_after() {
    // One order over all invocations (fcfs), so another function's queue counts too.
    let w = Worker::start(&["cpu_slots = 1", "[scheduler]", "policy = \"fcfs\""]);
    let f = spec("slow", json!({"max_queue_ms": 1000}));
    assert_eq!(register(&w, &f).0, 201);
    assert_eq!(register(&w, &spec("fill", json!({}))).0, 201);
    // Teach the estimator the function's time (0.4 s).
    for _ in 0..2 {
        let (s, _, _) = http(
            &w,
            "POST",
            "/v1/functions/slow/invoke",
            Some(r#"{"do":"sleep","seconds":0.4}"#),
        );
        assert_eq!(s, 200);
    }
    let started = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| invoke_in_background(&w, "slow", 0.4))
        .collect();
    let results: Vec<(u16, String)> = calls.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&String> = results
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok + refused.len(), 10, "{results:?}");
    assert!(
        (2..=5).contains(&ok),
        "about 1 s of queue at 0.4 s each is admitted: {results:?}"
    );
    assert!(
        refused.iter().all(|b| b.contains("overloaded")),
        "{refused:?}"
    );
    // Admitted calls waited at most about their bound: the last ends within ~1 s + 2 runs.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A refusal says how long until the queue ahead has drained below the bound: six
    // invocations of `fill` (never run: the 0.5 s default estimate), one running and five
    // queued, predict 2.75 s, 1.75 s over the bound.
    let holds: Vec<_> = (0..6)
        .map(|_| invoke_in_background(&w, "fill", 0.4))
        .collect();
    common::wait_for(Duration::from_secs(5), || queued(&w) == 5);
    let (s, body, h) = http(&w, "POST", "/v1/functions/slow/invoke", Some("{}"));
    assert_eq!(s, 429, "{body}");
    assert_eq!(
        h.get("retry-after").map(String::as_str),
        Some("2"),
        "{body}"
    );
    for h in holds {
        assert_eq!(h.join().unwrap().0, 200);
    }
}

#[test]
fn async_submissions_are_admitted_at_submit_and_never_fail_queue_full_later() {
    let w = Worker::start(&["cpu_slots = 1"]);
    let f = spec("slow", json!({"max_queue_ms": 1000}));
    assert_eq!(register(&w, &f).0, 201);
    let (s, _, _) = http(
        &w,
        "POST",
        "/v1/functions/slow/invoke",
        Some(r#"{"do":"sleep","seconds":0.3}"#),
    );
    assert_eq!(s, 200);
    let (mut ids, mut refused) = (Vec::new(), 0);
    for i in 0..20 {
        let body = json!({"do": "sleep", "seconds": 0.3, "i": i}).to_string();
        let (s, b, h) = http(&w, "POST", "/v1/functions/slow/invoke-async", Some(&body));
        match s {
            202 => ids.push(serde_json::from_str::<Value>(&b).unwrap()["id"].to_string()),
            429 => {
                assert!(h.contains_key("retry-after"), "{h:?}");
                refused += 1;
            }
            other => panic!("{other}: {b}"),
        }
    }
    assert!(refused > 0 && !ids.is_empty(), "{} accepted", ids.len());
    for id in ids {
        let rec = common::wait_done(&w, id.trim_matches('"'));
        assert_eq!(
            rec["status"], "succeeded",
            "an accepted one never fails later: {rec}"
        );
    }
}

/// Sends the `nth` sync invocation of a run of them and hangs up, before any answer, once the
/// worker has queued it (it counts as queued, or already as abandoned).
fn hang_up_once_queued(w: &Worker, name: &str, nth: u64) {
    let mut s = TcpStream::connect(w.addr).unwrap();
    let body = r#"{"do":"sleep","seconds":0.3}"#;
    let req = format!(
        "POST /v1/functions/{name}/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    common::wait_for(Duration::from_secs(5), || {
        // The counter first: one abandoned between the two reads is counted in neither.
        let abandoned = counter(w, "sluice_invocations_total", &["outcome=\"abandoned\""]);
        abandoned as u64 + queued(w) >= nth
    });
}

#[test]
fn a_caller_that_hangs_up_takes_its_queued_invocation_with_it() {
    let w = Worker::start(&["cpu_slots = 1"]);
    assert_eq!(register(&w, &spec("a", json!({}))).0, 201);
    assert_eq!(
        http(&w, "POST", "/v1/functions/a/invoke", Some("{}")).0,
        200
    );
    let busy = invoke_in_background(&w, "a", 1.0);
    common::wait_for(Duration::from_secs(5), || busy_sandboxes(&w) == 1);
    for n in 1..=8 {
        hang_up_once_queued(&w, "a", n);
    }
    common::wait_for(Duration::from_secs(5), || queued(&w) == 0);
    assert_eq!(busy.join().unwrap().0, 200);
    let started = Instant::now();
    assert_eq!(
        http(&w, "POST", "/v1/functions/a/invoke", Some("{}")).0,
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a fresh call does not wait behind the abandoned ones"
    );
    let ok = counter(
        &w,
        "sluice_invocations_total",
        &["function=\"a\"", "outcome=\"ok\""],
    );
    assert_eq!(ok, 3.0, "none of the 8 abandoned invocations ran");
    let gone = counter(
        &w,
        "sluice_invocations_total",
        &["function=\"a\"", "outcome=\"abandoned\""],
    );
    assert_eq!(gone, 8.0);
}

#[test]
fn deleting_a_function_ends_its_queued_invocations_for_good() {
    let mut w = Worker::start(&["cpu_slots = 1"]);
    let dir = w.dir.clone();
    assert_eq!(register(&w, &spec("d", json!({}))).0, 201);
    let running = invoke_in_background(&w, "d", 1.0);
    common::wait_for(Duration::from_secs(10), || busy_sandboxes(&w) == 1);
    let waiting = invoke_in_background(&w, "d", 0.1);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, b, _) = http(&w, "POST", "/v1/functions/d/invoke-async", Some("{}"));
        assert_eq!(s, 202, "{b}");
        ids.push(
            serde_json::from_str::<Value>(&b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    common::wait_for(Duration::from_secs(5), || queued(&w) == 3);
    assert_eq!(http(&w, "DELETE", "/v1/functions/d", None).0, 204);
    let (s, body) = waiting.join().unwrap();
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("deleted"), "{body}");
    assert_eq!(running.join().unwrap().0, 200, "the running one finishes");
    for id in &ids {
        let rec = common::wait_done(&w, id);
        assert_eq!(rec["status"], "failed", "{rec}");
        assert!(rec["error"].as_str().unwrap().contains("deleted"), "{rec}");
    }
    assert!(w.term(Duration::from_secs(20)));
    let w = Worker::start_in(dir.clone(), &["cpu_slots = 1"]);
    for id in &ids {
        let (_, body, _) = http(&w, "GET", &format!("/v1/invocations/{id}"), None);
        let rec: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (rec["status"].as_str(), rec["attempts"].as_u64()),
            (Some("failed"), Some(0))
        );
    }
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sandbox_that_died_while_idle_is_never_sent_work() {
    let w = Worker::start(&[]);
    assert_eq!(register(&w, &spec("e", json!({}))).0, 201);
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/e/invoke",
        Some(r#"{"do":"exit_after","seconds":0.05}"#),
    );
    assert_eq!(s, 200, "{body}");
    // The function exits 50 ms after answering: wait until its sandbox is gone.
    let pid = w.pid().expect("the worker runs");
    common::wait_for(Duration::from_secs(10), || {
        common::live_descendants(pid) == 0
    });
    for _ in 0..2 {
        let (s, body, _) = http(&w, "POST", "/v1/functions/e/invoke", Some("{}"));
        assert_eq!(s, 200, "{body}");
    }
    assert!(w.log().contains("exited while idle"), "{}", w.log());
}

#[test]
fn a_prewarm_that_fails_frees_its_creation_slot_for_waiting_invocations() {
    let w = Worker::start(&["[scheduler.keepalive]", "max_concurrent_creates = 1"]);
    let failing = spec(
        "failing",
        json!({"env": {"SLUICE_SDK": common::repo().join("sdk/python").display().to_string(),
                       "SLOW_START": "0.5", "FAIL_START": "1"}}),
    );
    assert_eq!(register(&w, &failing).0, 201);
    assert_eq!(register(&w, &spec("ok", json!({}))).0, 201);
    let (s, body, _) = http(&w, "POST", "/v1/functions/failing/prewarm?count=1", None);
    assert_eq!(s, 202, "{body}");
    // The only creation slot is the prewarm's until it fails; this cold start waits for it.
    let started = Instant::now();
    let (s, body, _) = http(&w, "POST", "/v1/functions/ok/invoke", Some("{}"));
    assert_eq!(s, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it started once the slot was free: {:?}",
        started.elapsed()
    );
}
