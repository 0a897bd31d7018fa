//! The pipeline runtime end to end: the real worker deploys pipelines of real (Python) stage
//! processes, routes requests through chains, fan-out and fan-in, batches, hands data over in
//! shared memory between co-located stages, survives a stage that dies, leaks no segment, keeps
//! pipelines across a restart, and refuses bad requests with clear errors.

mod common;

use common::{http, repo, shm_groups, shm_root, wait_done, wait_for, Worker};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

fn stage(name: &str, mode: &str, after: &[&str], extra: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stages/stage.py");
    let mut s = json!({
        "name": name,
        "command": ["python3", script.display().to_string(), mode],
        "env": {"SLUICE_SDK": repo().join("sdk/python").display().to_string()},
        "after": after,
        "max_batch": 4,
        "max_wait_ms": 2,
    });
    if let (Some(dst), Some(src)) = (s.as_object_mut(), extra.as_object()) {
        dst.extend(src.clone());
    }
    s
}

fn request(name: &str, stages: Vec<Value>) -> String {
    json!({
        "spec": {"name": name, "slo_ms": 1000, "stages": stages},
        // The stages' working directory, bound read-only into their sandboxes (all of /tmp
        // would be refused: it holds the worker's data directory).
        "base_dir": stage_dir().display().to_string(),
    })
    .to_string()
}

fn create(w: &Worker, body: &str) -> Value {
    let (code, b, _) = http(w, "POST", "/v1/pipelines", Some(body));
    assert_eq!(code, 201, "{b}\n{}", w.log());
    serde_json::from_str(&b).unwrap()
}

/// Files left in this worker's shared-memory groups of `pipeline`.
fn shm_files(w: &Worker, pipeline: &str) -> Vec<PathBuf> {
    shm_groups(w, pipeline)
        .iter()
        .flat_map(|g| std::fs::read_dir(g).into_iter().flatten().flatten())
        .map(|f| f.path())
        .collect()
}

fn metric(w: &Worker, needle: &str) -> f64 {
    let (_, text, _) = http(w, "GET", "/metrics", None);
    text.lines()
        .filter(|l| l.contains(needle) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn dag_with_fan_out_and_fan_in_hands_over_in_place_and_leaks_nothing() {
    let w = Worker::start(&[]);
    let body = request(
        "dagtest",
        vec![
            stage("up", "upper", &[], json!({})),
            stage("check", "shmcheck", &["up"], json!({})),
            stage("rev", "rev", &["up"], json!({})),
            stage("join", "join", &["check", "rev"], json!({})),
        ],
    );
    let view = create(&w, &body);
    assert_eq!(view["policy"], "unprofiled");
    assert_eq!(
        view["status"]["plan"]["instances"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    for i in 0..5 {
        let input = format!("abc{i}");
        let (code, out, headers) = http(&w, "POST", "/v1/pipelines/dagtest/invoke", Some(&input));
        assert_eq!(code, 200, "{out}\n{}", w.log());
        let up = input.to_uppercase();
        let rev: String = up.chars().rev().collect();
        assert_eq!(out, format!("{up}|{rev}"));
        let stages = &headers["x-sluice-stages"];
        for s in ["up=", "check=", "rev=", "join="] {
            assert!(stages.contains(s), "{stages}");
        }
    }
    assert!(
        metric(
            &w,
            "sluice_pipeline_handoffs_total{pipeline=\"dagtest\",kind=\"shm\"}"
        ) >= 20.0
    );
    assert_eq!(metric(&w, "kind=\"copy\""), 0.0);
    // The group is where this test looks (else the checks below would hold vacuously).
    assert!(
        !shm_groups(&w, "dagtest").is_empty(),
        "no shared-memory group of dagtest under {}",
        shm_root(&w).display()
    );
    wait_for(Duration::from_secs(5), || {
        shm_files(&w, "dagtest").is_empty()
    });
    let (_, b, _) = http(&w, "GET", "/v1/pipelines/dagtest", None);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["status"]["completed"], 5);
    assert_eq!(v["status"]["stages"][3]["latency"]["count"], 5);
    assert_eq!(http(&w, "DELETE", "/v1/pipelines/dagtest", None).0, 204);
    // DELETE answers once the stages' tasks have let go of the group (seen in CI before it
    // waited: one directory left when checked at once).
    assert_eq!(
        shm_groups(&w, "dagtest").len(),
        0,
        "the group directory is removed with the pipeline"
    );
    assert_eq!(
        http(&w, "POST", "/v1/pipelines/dagtest/invoke", Some("x")).0,
        404
    );
}

#[test]
fn concurrent_requests_are_batched() {
    let w = Worker::start(&[]);
    let body = request(
        "batchtest",
        vec![stage(
            "up",
            "upper",
            &[],
            json!({"max_batch": 8, "max_wait_ms": 300}),
        )],
    );
    create(&w, &body);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let w = w.clone_addr();
            std::thread::spawn(move || {
                let input = format!("item{i}");
                let (code, out, h) =
                    http(&w, "POST", "/v1/pipelines/batchtest/invoke", Some(&input));
                assert_eq!(code, 200, "{out}");
                assert_eq!(out, input.to_uppercase());
                h["x-sluice-stages"]
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            })
        })
        .collect();
    let batches: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(batches.iter().all(|&b| (1..=8).contains(&b)), "{batches:?}");
    assert!(
        batches.iter().any(|&b| b > 1),
        "no batching happened: {batches:?}"
    );
}

#[test]
fn a_dying_stage_fails_its_request_restarts_and_leaks_no_segment() {
    let w = Worker::start(&[]);
    let body = request(
        "dietest",
        vec![
            stage("up", "rev", &[], json!({})),
            stage("mid", "die", &["up"], json!({})),
            stage("last", "rev", &["mid"], json!({})),
        ],
    );
    create(&w, &body);
    let (code, out, _) = http(&w, "POST", "/v1/pipelines/dietest/invoke", Some("eid"));
    assert_eq!(code, 502, "{out}");
    assert!(out.contains("mid"), "the error names the stage: {out}");
    assert!(!shm_groups(&w, "dietest").is_empty());
    wait_for(Duration::from_secs(5), || {
        shm_files(&w, "dietest").is_empty()
    });
    let (code, out, _) = http(&w, "POST", "/v1/pipelines/dietest/invoke", Some("fine"));
    assert_eq!(code, 200, "{out}\n{}", w.log());
    assert_eq!(out, "fine");
    wait_for(Duration::from_secs(5), || {
        shm_files(&w, "dietest").is_empty()
    });
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let w = Worker::start(&[]);
    let good = request("okpipe", vec![stage("a", "upper", &[], json!({}))]);
    create(&w, &good);
    let cases = [
        ("{not json", 400, "invalid pipeline request"),
        (
            &request("cyc", vec![stage("a", "upper", &["b"], json!({})), stage("b", "upper", &["a"], json!({}))]),
            400,
            "cycle",
        ),
        (
            &request("unk", vec![stage("a", "upper", &["zz"], json!({}))]),
            400,
            "zz",
        ),
        (
            &request("nocmd", vec![json!({"name": "a"})]),
            400,
            "no command",
        ),
        (
            &request("badstart", vec![json!({"name": "a", "command": ["/nonexistent/stage"]})]),
            502,
            "nonexistent",
        ),
        (&good, 409, "already exists"),
        (
            &json!({"spec": {"name": "big", "slo_ms": 10, "stages": [stage("a", "upper", &[], json!({}))]},
                    "base_dir": "/tmp", "gpus": 3})
            .to_string(),
            400,
            "this worker has 1",
        ),
        (
            &json!({"spec": {"name": "rel", "slo_ms": 10, "stages": [stage("a", "upper", &[], json!({}))]},
                    "base_dir": "relative/dir"})
            .to_string(),
            400,
            "absolute",
        ),
        (
            &json!({"spec": {"name": "prof", "slo_ms": 10, "stages": [stage("a", "upper", &[], json!({}))]},
                    "base_dir": "/tmp", "profile_csv": "model,batch\na,zz\n"})
            .to_string(),
            400,
            "profile",
        ),
        (
            &json!({"spec": {"name": "ctl", "slo_ms": 10, "stages": [stage("a", "upper", &[], json!({}))]},
                    "base_dir": "/tmp", "controller": {"high": 0.2, "low": 0.5}})
            .to_string(),
            400,
            "controller",
        ),
        (
            &json!({"spec": {"name": "pol", "slo_ms": 10, "stages": [stage("a", "upper", &[], json!({}))]},
                    "base_dir": "/tmp", "profile_csv": profile_csv(), "policy": "fastest"})
            .to_string(),
            400,
            "unknown policy",
        ),
    ];
    for (body, status, needle) in cases {
        let (code, out, _) = http(&w, "POST", "/v1/pipelines", Some(body));
        assert_eq!(code, status, "{out}");
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
    let (_, list, _) = http(&w, "GET", "/v1/pipelines", None);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (code, out, _) = http(&w, "POST", "/v1/pipelines/okpipe/invoke", Some("still"));
    assert_eq!((code, out.as_str()), (200, "STILL"));
    assert_eq!(http(&w, "GET", "/v1/pipelines/nope", None).0, 404);
    assert_eq!(http(&w, "PUT", "/v1/pipelines/other", Some(&good)).0, 400);
}

#[test]
fn pipelines_survive_a_restart_and_run_asynchronously() {
    let mut w = Worker::start(&[]);
    let body = request(
        "keeptest",
        vec![
            stage("a", "upper", &[], json!({})),
            stage("b", "rev", &["a"], json!({})),
        ],
    );
    create(&w, &body);
    let (code, out, _) = http(
        &w,
        "POST",
        "/v1/pipelines/keeptest/invoke-async",
        Some("xyz"),
    );
    assert_eq!(code, 202, "{out}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_done(&w, &id);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], "ZYX");
    let dir = w.dir.clone();
    w.kill9();
    let w = Worker::start_in(dir, &[]);
    wait_for(Duration::from_secs(30), || {
        http(&w, "POST", "/v1/pipelines/keeptest/invoke", Some("abc")).1 == "CBA"
    });
}

/// A profile for a stage model `m`: 50 ms per batch of one at a full share, slower as the share
/// shrinks and the batch grows.
fn profile_csv() -> String {
    let mut csv = String::from("model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb\n");
    for b in [1u32, 2, 4] {
        for share in [10u32, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
            let ms = 50.0 * (1.0 + 0.5 * (b as f64 - 1.0)) * 100.0 / share as f64;
            csv.push_str(&format!("m,{b},{share},{ms:.1},50,10,10,100\n"));
        }
    }
    csv
}

fn policy_and_generation(w: &Worker, name: &str) -> (String, u64) {
    let (_, b, _) = http(w, "GET", &format!("/v1/pipelines/{name}"), None);
    let v: Value = serde_json::from_str(&b).unwrap();
    (
        v["policy"].as_str().unwrap_or_default().to_string(),
        v["status"]["generation"].as_u64().unwrap_or(0),
    )
}

#[test]
fn the_controller_re_plans_up_under_load_and_down_when_idle() {
    let w = Worker::start(&[]);
    let body = json!({
        "spec": {"name": "replan", "slo_ms": 2000, "load_rps": 0.5,
                 "stages": [stage("a", "upper", &[], json!({"model": "m"}))]},
        // The stages' working directory, bound read-only into their sandboxes (all of /tmp
        // would be refused: it holds the worker's data directory).
        "base_dir": stage_dir().display().to_string(),
        "profile_csv": profile_csv(),
        "controller": {"high": 0.85, "low": 0.4, "window_s": 1.0, "cooldown_s": 2.0, "headroom": 1.5},
    })
    .to_string();
    let view = create(&w, &body);
    assert_eq!(view["policy"], "min-resources", "{view}");
    let capacity = view["status"]["plan"]["predicted"]["capacity_rps"]
        .as_f64()
        .unwrap();
    assert!(capacity > 0.5, "{view}");
    let (_, first) = policy_and_generation(&w, "replan");
    // Offer about three times the planned capacity until the controller switches to max-load.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gap = Duration::from_secs_f64(1.0 / (3.0 * capacity));
    let load = {
        let (w, stop) = (w.clone_addr(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let w2 = w.clone_addr();
                std::thread::spawn(move || {
                    http(&w2, "POST", "/v1/pipelines/replan/invoke", Some("x"))
                });
                std::thread::sleep(gap);
            }
        })
    };
    wait_for(Duration::from_secs(30), || {
        policy_and_generation(&w, "replan").0 == "max-load"
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let (_, up) = policy_and_generation(&w, "replan");
    assert!(up > first);
    // Idle: after the window and the cooldown it goes back to the least resources.
    wait_for(Duration::from_secs(30), || {
        policy_and_generation(&w, "replan").0 == "min-resources"
    });
    let (code, out, _) = http(&w, "POST", "/v1/pipelines/replan/invoke", Some("still"));
    assert_eq!((code, out.as_str()), (200, "STILL"));
    assert!(w.log().contains("re-planning"), "{}", w.log());
    // Every change is in the status, with its reason, and the idle plan is made for no less
    // than the deployed load (0.5 req/s), not for a trickle.
    let (_, b, _) = http(&w, "GET", "/v1/pipelines/replan", None);
    let v: Value = serde_json::from_str(&b).unwrap();
    let history = v["history"].as_array().expect("history");
    let reasons: Vec<&str> = history
        .iter()
        .filter_map(|h| h["reason"].as_str())
        .collect();
    assert_eq!(reasons.first(), Some(&"created"), "{v}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("high load") || r.starts_with("target missed")),
        "{v}"
    );
    let last = history.last().expect("a change");
    assert!(
        last["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("low load"),
        "{v}"
    );
    assert!(
        last["planned_load_rps"].as_f64().unwrap_or(0.0) >= 0.5,
        "{v}"
    );
    assert_eq!(
        v["autoscale"],
        json!({"enabled": true, "min_load_rps": 0.5}),
        "{v}"
    );
}

/// Offers `rate` requests per second to pipeline `name` until `stop` is set.
fn offer(
    w: &Worker,
    name: &str,
    rate: f64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let w = w.clone_addr();
    let path = format!("/v1/pipelines/{name}/invoke");
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut sent = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let due = start + Duration::from_secs_f64(f64::from(sent) / rate);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            let (w2, p) = (w.clone_addr(), path.clone());
            std::thread::spawn(move || http(&w2, "POST", &p, Some("x")));
            sent += 1;
        }
    })
}

#[test]
fn the_load_meter_reads_the_offered_rate_and_autoscale_can_be_off() {
    let w = Worker::start(&[]);
    let body = json!({
        "spec": {"name": "steady", "slo_ms": 2000, "load_rps": 1.0,
                 "stages": [stage("a", "upper", &[], json!({"model": "m"}))]},
        "base_dir": stage_dir().display().to_string(),
        "profile_csv": profile_csv(),
        "policy": "max-load",
        "controller": {"high": 0.85, "low": 0.4, "window_s": 1.0, "cooldown_s": 1.0, "headroom": 1.5},
        "autoscale": {"enabled": false},
    })
    .to_string();
    let view = create(&w, &body);
    assert_eq!(view["autoscale"]["enabled"], false, "{view}");
    let capacity = view["status"]["plan"]["predicted"]["capacity_rps"]
        .as_f64()
        .unwrap();
    assert!(
        capacity > 10.0,
        "4 req/s must be low load for this test: {view}"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = offer(&w, "steady", 4.0, stop.clone());
    let mut readings = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(9);
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        let (_, b, _) = http(&w, "GET", "/v1/pipelines/steady", None);
        let v: Value = serde_json::from_str(&b).unwrap();
        if let Some(l) = v["measured_load_rps"].as_f64() {
            readings.push(l);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    // The meter averages over 10 s, so the first seconds read low; the later readings see 4/s.
    let late = &readings[readings.len().saturating_sub(4)..];
    assert!(
        late.len() == 4 && late.iter().all(|l| (3.0..=5.0).contains(l)),
        "measured load for a steady 4 req/s: {readings:?}"
    );
    // Low load for many windows, but autoscaling is off: the plan is the one deployed.
    let (_, b, _) = http(&w, "GET", "/v1/pipelines/steady", None);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["policy"], "max-load", "{v}");
    assert_eq!(v["history"].as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn sluice_load_sends_what_it_promises_in_pipeline_order_and_flags_a_missed_target() {
    let w = Worker::start(&[]);
    // Stage names out of alphabetical order; a target no request can meet.
    let body = json!({
        "spec": {"name": "order", "slo_ms": 0.001, "stages": [
            stage("zeta", "upper", &[], json!({})),
            stage("alpha", "rev", &["zeta"], json!({}))]},
        "base_dir": stage_dir().display().to_string(),
    })
    .to_string();
    create(&w, &body);
    let input = w.dir.join("input.txt");
    std::fs::write(&input, "abc").unwrap();
    let run = |json: bool| {
        let mut args = vec![
            "load".to_string(),
            "--pipeline".into(),
            "order".into(),
            "--rates".into(),
            "4".into(),
            "--duration".into(),
            "2".into(),
            "--inputs".into(),
            input.display().to_string(),
        ];
        if json {
            args.push("--json".into());
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .env("SLUICE_URL", format!("http://{}", w.addr))
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v: Value = serde_json::from_str(&run(true)).expect("JSON");
    let r = &v[0];
    assert_eq!(r["sent"], 8, "4 req/s for 2 s: {v}");
    assert_eq!(r["ok"], 8, "{v}");
    assert_eq!(r["meets_target"], false, "{v}");
    let names: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(names, ["zeta", "alpha"], "{v}");
    let text = run(false);
    assert!(text.contains("ABOVE the 0 ms target"), "{text}");
    assert!(
        text.find("zeta").unwrap() < text.find("alpha").unwrap(),
        "{text}"
    );
}

/// The stage fixtures' directory (the pipelines' base directory).
fn stage_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stages")
}
