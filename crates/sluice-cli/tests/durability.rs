//! The kill -9 test: a worker accepts asynchronous invocations, is SIGKILLed while they run, and
//! after a restart on the same data directory every registered function is still there and every
//! accepted invocation completes or is reported failed; none vanishes.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};

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
    std::thread::sleep(std::time::Duration::from_millis(500));
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
