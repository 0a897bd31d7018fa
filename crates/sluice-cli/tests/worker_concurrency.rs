//! Integration tests of how many invocations run at once: device tokens (`cpu_slots`) bound
//! them, and a function's `concurrency` lets one sandbox (one process) serve several together.

mod common;

use common::{http, Worker};
use serde_json::{json, Value};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A starting worker sweeps empty `sluice/<id>` cgroups, which can catch another worker's
/// sandbox between creating its cgroup and joining it (a failed cold start); these tests time
/// what runs in parallel, so they run one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn echo_fn(name: &str) -> Value {
    common::function(name, json!({}))
}

#[test]
fn concurrency_is_bounded_by_cpu_slots() {
    let _one = one_at_a_time();
    let w = Worker::start(&["cpu_slots = 1"]);
    http(&w, "POST", "/v1/functions", Some(&echo_fn("c").to_string()));
    http(&w, "POST", "/v1/functions/c/invoke", Some("{}"));
    let started = Instant::now();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let w = w.clone_addr();
            std::thread::spawn(move || {
                http(
                    &w,
                    "POST",
                    "/v1/functions/c/invoke",
                    Some(r#"{"do":"sleep","seconds":0.4}"#),
                )
                .0
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "one slot runs them one at a time"
    );
}

/// A worker with two CPU slots and the behaviours function `p` registered with `concurrency`,
/// one sandbox of it warmed by a first call.
fn warm_worker(concurrency: u32) -> Worker {
    let w = Worker::start(&["cpu_slots = 2"]);
    let mut spec = echo_fn("p");
    spec["concurrency"] = json!(concurrency);
    let (s, body, _) = http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    assert_eq!(s, 201, "{body}");
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/p/invoke",
        Some(r#"{"do":"pid"}"#),
    );
    assert_eq!(s, 200, "warm-up: {body}");
    w
}

/// Sends each input to `p` at once, `gap` apart; returns the (status, pid, instance) answers
/// (the instance tells processes apart where PID namespaces make pids repeat) and the wall
/// time they took.
fn at_once(w: &Worker, inputs: &[&str], gap: Duration) -> (Vec<(u16, u64, String)>, Duration) {
    let started = Instant::now();
    let handles: Vec<_> = inputs
        .iter()
        .map(|input| {
            let (w, input) = (w.clone_addr(), input.to_string());
            let h = std::thread::spawn(move || {
                let (s, body, _) = http(&w, "POST", "/v1/functions/p/invoke", Some(&input));
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let instance = v["instance"].as_str().unwrap_or_default().to_string();
                (s, v["pid"].as_u64().unwrap_or(0), instance)
            });
            std::thread::sleep(gap);
            h
        })
        .collect();
    let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (out, started.elapsed())
}

const SLEEP: &str = r#"{"do":"sleep","seconds":0.5}"#;

#[test]
fn concurrency_two_runs_two_invocations_in_one_sandbox() {
    let _one = one_at_a_time();
    let w = warm_worker(2);
    let (out, took) = at_once(&w, &[SLEEP, SLEEP], Duration::ZERO);
    assert!(
        out.iter().all(|(s, pid, _)| *s == 200 && *pid > 0),
        "{out:?}"
    );
    assert_eq!(out[0].1, out[1].1, "one process served both: {out:?}");
    assert_eq!(out[0].2, out[1].2, "one process served both: {out:?}");
    assert!(
        took < Duration::from_millis(900),
        "ran together, not one after the other: {took:?}"
    );
}

#[test]
fn concurrency_one_runs_them_in_two_sandboxes() {
    let _one = one_at_a_time();
    let w = warm_worker(1);
    let (out, _) = at_once(&w, &[SLEEP, SLEEP], Duration::ZERO);
    assert!(
        out.iter().all(|(s, pid, _)| *s == 200 && *pid > 0),
        "{out:?}"
    );
    assert_ne!(out[0].2, out[1].2, "a second sandbox: {out:?}");
}

#[test]
fn a_crash_fails_every_invocation_in_the_shared_sandbox_and_frees_their_slots() {
    let _one = one_at_a_time();
    let w = warm_worker(2);
    let long = r#"{"do":"sleep","seconds":2}"#;
    let crash = r#"{"do":"crash"}"#;
    let (out, took) = at_once(&w, &[long, crash], Duration::from_millis(300));
    assert!(
        out.iter().all(|(s, _, _)| *s == 502),
        "both crashed: {out:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "the sleeper did not run on: {took:?}"
    );
    let (s, body, _) = http(
        &w,
        "POST",
        "/v1/functions/p/invoke",
        Some(r#"{"do":"pid"}"#),
    );
    assert_eq!(s, 200, "a new sandbox: {body}");
    // Both slots are free again: two sleeps still run together.
    let (out, took) = at_once(&w, &[SLEEP, SLEEP], Duration::ZERO);
    assert!(out.iter().all(|(s, _, _)| *s == 200), "{out:?}");
    assert!(took < Duration::from_millis(900), "{took:?}");
    let (_, status, _) = http(&w, "GET", "/v1/status", None);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["sandboxes"]["busy"], 0, "{status}");
}

/// A cold start holds no GPU token while its sandbox starts: with one token, a warm call that
/// arrives during another function's cold start runs at once, and the cold-started call, its
/// sandbox ready while the token is busy, waits for the token and then runs in that sandbox.
#[test]
fn a_cold_start_leaves_the_gpu_token_to_a_warm_call_and_waits_for_it_when_ready() {
    let _one = one_at_a_time();
    let w = Worker::start(&["[scheduler.slots]", "tokens_per_gpu = 1"]);
    let gpu_fn = |name: &str, env: Value| {
        let mut spec = common::function(name, env);
        spec["resources"]["gpu"] = json!(true);
        let (s, body, _) = http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
        assert_eq!(s, 201, "{body}");
    };
    gpu_fn("warm", json!({}));
    gpu_fn("slow", json!({"SLOW_START": "0.6"}));
    let (s, body, _) = http(&w, "POST", "/v1/functions/warm/invoke", Some("{}"));
    assert_eq!(s, 200, "warm-up: {body}");

    let cold = {
        let w = w.clone_addr();
        std::thread::spawn(move || http(&w, "POST", "/v1/functions/slow/invoke", Some("{}")))
    };
    // `slow` is dispatched first; its sandbox takes 0.6 s to start.
    std::thread::sleep(Duration::from_millis(150));
    let (s, body, h) = http(
        &w,
        "POST",
        "/v1/functions/warm/invoke",
        Some(r#"{"do":"sleep","seconds":1.2}"#),
    );
    assert_eq!(s, 200, "{body}");
    let queued: f64 = h["x-sluice-queue-ms"].parse().unwrap();
    assert!(
        queued < 300.0,
        "the warm call waited {queued} ms: the cold start held the only token"
    );
    let (s, body, h) = cold.join().unwrap();
    assert_eq!(s, 200, "{body}");
    assert_eq!(h["x-sluice-cold"], "true");
    let total: f64 = h["x-sluice-total-ms"].parse().unwrap();
    assert!(
        total >= 1_200.0,
        "ready after 0.6 s, it ran only once the warm call gave the token back ({total} ms)"
    );
}

#[test]
fn waits_in_line_that_add_up_to_a_cold_start_buy_a_sandbox_ahead() {
    let _one = one_at_a_time();
    // Four simulated GPUs, so that most idle while one sandbox of `line` is busy.
    let w = Worker::start(&["[gpu]", "simulated_count = 4"]);
    let mut spec = common::function("line", json!({"SLOW_START": "1.5"}));
    spec["resources"]["gpu"] = json!(true);
    let (s, body, _) = http(&w, "POST", "/v1/functions", Some(&spec.to_string()));
    assert_eq!(s, 201, "{body}");
    // Two calls measure its cold start (1.5 s and more) and its service time (0.25 s).
    let call = r#"{"do":"sleep","seconds":0.25}"#;
    for i in 0..2 {
        let (s, body, _) = http(&w, "POST", "/v1/functions/line/invoke", Some(call));
        assert_eq!(s, 200, "warm-up {i}: {body}");
    }
    // Calls every 100 ms: each waits in the sandbox's line (0.25 s, 0.5 s, ...: under a cold
    // start), and once the waits add up to one a sandbox is bought ahead.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let w = w.clone_addr();
            let h = std::thread::spawn(move || {
                http(&w, "POST", "/v1/functions/line/invoke", Some(call)).0
            });
            std::thread::sleep(Duration::from_millis(100));
            h
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let (_, metrics, _) = http(&w, "GET", "/metrics", None);
    let bought: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_sandboxes_bought_total "))
        .unwrap_or_else(|| panic!("no sluice_sandboxes_bought_total in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(bought >= 1.0, "no sandbox bought ahead\n{}", w.log());
    assert!(!w.log().contains("failed to start"), "{}", w.log());
}
