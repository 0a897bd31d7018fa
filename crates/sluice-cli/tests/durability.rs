//! Durability against the real binary: after a SIGKILL every registered function is still there
//! and every accepted invocation completes or is reported failed, none vanishes; graceful
//! restarts charge no attempt to invocations that had not started; a damaged (empty) store is
//! refused, never taken for an empty one; two workers never share a data directory.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn kill9_then_restart_loses_nothing_accepted() {
    let mut w = Worker::start(&[]);
    let dir = w.dir.clone();
    let spec = common::function("slow", json!({}));
    assert_eq!(
        http(&w, "POST", "/v1/functions", Some(&spec.to_string())).0,
        201
    );
    let mut ids = Vec::new();
    for i in 0..12 {
        let (s, body, _) = http(
            &w,
            "POST",
            "/v1/functions/slow/invoke-async",
            Some(&json!({"do": "sleep", "seconds": 0.3, "i": i}).to_string()),
        );
        assert_eq!(s, 202, "{body}");
        ids.push(
            serde_json::from_str::<Value>(&body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Killed while some run: at least one has started (and been marked running).
    common::wait_for(std::time::Duration::from_secs(10), || {
        common::status(&w)["async"]["running"].as_u64() >= Some(1)
    });
    w.kill9();
    let w2 = Worker::start_in(dir.clone(), &[]);
    let (_, body, _) = http(&w2, "GET", "/v1/functions/slow", None);
    assert!(body.contains("\"slow\""), "function survived: {body}");
    for id in &ids {
        let rec = common::wait_done(&w2, id);
        assert!(
            rec["status"] == "succeeded" || rec["status"] == "failed",
            "{rec}"
        );
        if rec["status"] == "succeeded" {
            assert_eq!(rec["result"]["slept"], 0.3);
        }
    }
    drop(w2);
    let _ = std::fs::remove_dir_all(dir);
}

fn submit(w: &Worker, seconds: f64) -> String {
    let body = json!({"do": "sleep", "seconds": seconds}).to_string();
    let (s, b, _) = http(w, "POST", "/v1/functions/q/invoke-async", Some(&body));
    assert_eq!(s, 202, "{b}");
    serde_json::from_str::<Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn graceful_restarts_hand_queued_work_back_without_charging_attempts() {
    let cfg = ["cpu_slots = 1"];
    let mut w = Worker::start(&cfg);
    let dir = w.dir.clone();
    let spec = common::function("q", json!({}));
    assert_eq!(
        http(&w, "POST", "/v1/functions", Some(&spec.to_string())).0,
        201
    );
    let ids: Vec<String> = (0..8).map(|_| submit(&w, 0.3)).collect();
    for _ in 0..3 {
        // Stop while one runs and the rest wait: the running one finishes, the rest go back.
        common::wait_for(Duration::from_secs(20), || {
            let (_, b, _) = http(&w, "GET", "/v1/status", None);
            serde_json::from_str::<Value>(&b).unwrap()["async"]["running"] == 1
        });
        assert!(w.term(Duration::from_secs(30)), "SIGTERM ends the worker");
        w = Worker::start_in(dir.clone(), &cfg);
    }
    for id in &ids {
        let rec = common::wait_done(&w, id);
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(
            rec["attempts"], 1,
            "each ran once, whatever the restarts: {rec}"
        );
    }
    drop(w);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_empty_store_file_is_refused_with_how_to_recover() {
    let mut w = Worker::start(&[]);
    let dir = w.dir.clone();
    let spec = common::function("keep", json!({}));
    assert_eq!(
        http(&w, "POST", "/v1/functions", Some(&spec.to_string())).0,
        201
    );
    assert!(w.term(Duration::from_secs(20)));
    let store = dir.join("data/sluice.redb");
    std::fs::write(&store, b"").unwrap();
    let Err(refused) = Worker::spawn(dir.clone(), &[]) else {
        panic!("a worker started on an empty store file");
    };
    let log = refused.log;
    assert!(log.contains(&store.display().to_string()), "{log}");
    assert!(
        log.contains("empty (0 bytes)") && log.contains("move it aside"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_workers_cannot_share_a_data_directory() {
    let w = Worker::start(&[]);
    let Err(second) = Worker::spawn(w.dir.clone(), &[]) else {
        panic!("a second worker started on the same data directory");
    };
    let log = second.log;
    assert!(log.contains("in use by another worker"), "{log}");
    assert_eq!(
        http(&w, "GET", "/healthz", None).0,
        200,
        "the first is unharmed"
    );
}
