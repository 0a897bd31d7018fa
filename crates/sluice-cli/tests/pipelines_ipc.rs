//! CUDA IPC hand-off in the pipeline runtime, end to end through the real worker, without a GPU:
//! the stages (tests/fixtures/stages/ipc_stage.py) fake device memory behind made-up 64-byte
//! handles, and each stage's `SLUICE_DEVICE_HANDOFF=cuda-ipc` switch makes the worker use the
//! cuda-ipc output mode on its simulated GPU. Checked: a co-located consumer gets the producer's
//! exact handle (no copy), the producer gets a release for every handle once its requests are done
//! (the consumer failing the item or not), a dead producer's handles are never handed out, a
//! consumer that needs a copy gets a clear error where the worker cannot open device memory, and the
//! switch itself (`off`, bad values).

mod common;

use common::{http, repo, shm_groups, wait_for, Worker};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

fn stage(name: &str, mode: &str, after: &[&str], extra: Value) -> Value {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stages/ipc_stage.py");
    let mut s = json!({
        "name": name,
        "command": ["python3", script.display().to_string(), mode],
        "env": {
            "SLUICE_SDK": repo().join("sdk/python").display().to_string(),
            "SLUICE_DEVICE_HANDOFF": "cuda-ipc",
        },
        "after": after,
        "max_batch": 4,
        "max_wait_ms": 2,
        "handoff": ["cuda-ipc", "shm", "copy"],
    });
    if let (Some(dst), Some(src)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in src {
            match (k.as_str(), dst.get_mut("env")) {
                ("env", Some(Value::Object(env))) => {
                    env.extend(v.as_object().cloned().unwrap_or_default())
                }
                _ => {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }
    s
}

fn create(w: &Worker, name: &str, stages: Vec<Value>) {
    let body = json!({
        "spec": {"name": name, "slo_ms": 1000, "stages": stages},
        // The stages' working directory, bound read-only into their sandboxes (all of /tmp
        // would be refused: it holds the worker's data directory).
        "base_dir": stage_dir().display().to_string(),
    })
    .to_string();
    let (code, b, _) = http(w, "POST", "/v1/pipelines", Some(&body));
    assert_eq!(code, 201, "{b}\n{}", w.log());
}

fn invoke(w: &Worker, name: &str, input: &str) -> (u16, String) {
    let (code, out, _) = http(
        w,
        "POST",
        &format!("/v1/pipelines/{name}/invoke"),
        Some(input),
    );
    (code, out)
}

/// The handles (hex) the fixture recorded in `ipclog-<file>` of the pipeline's shared-memory
/// group directory (the one directory its sandboxes share with this test).
fn logged(w: &Worker, pipeline: &str, file: &str) -> Vec<String> {
    let group = shm_groups(w, pipeline)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no shared-memory group for {pipeline}"));
    std::fs::read_to_string(group.join(format!("ipclog-{file}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn set(v: Vec<String>) -> BTreeSet<String> {
    v.into_iter().collect()
}

fn metric(w: &Worker, needle: &str) -> f64 {
    let (_, text, _) = http(w, "GET", "/metrics", None);
    text.lines()
        .filter(|l| l.contains(needle) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn handoffs(w: &Worker, pipeline: &str, kind: &str) -> f64 {
    metric(
        w,
        &format!("sluice_pipeline_handoffs_total{{pipeline=\"{pipeline}\",kind=\"{kind}\"}}"),
    )
}

/// The bytes a fixture handle carries after its prefix, counter and pid.
fn payload_of(handle_hex: &str) -> Vec<u8> {
    let bytes: Vec<u8> = (0..handle_hex.len() / 2)
        .map(|i| u8::from_str_radix(&handle_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(bytes.starts_with(b"fakeipc:"), "{handle_hex}");
    let mut payload = bytes[20..].to_vec();
    while payload.last() == Some(&0) {
        payload.pop();
    }
    payload
}

#[test]
fn co_located_consumer_gets_the_exact_handle_and_every_handle_is_released() {
    const PIPE: &str = "ipcpair";
    let w = Worker::start(&[]);
    create(
        &w,
        PIPE,
        vec![
            stage("p", "produce", &[], json!({})),
            stage("c", "consume", &["p"], json!({})),
        ],
    );
    for i in 0..5 {
        let input = format!("item-{i}");
        let (code, out) = invoke(&w, PIPE, &input);
        assert_eq!(code, 200, "{out}\n{}", w.log());
        let (hex, rest) = out.split_once(':').expect("handle:len:device");
        assert_eq!(hex.len(), 128, "{out}");
        assert_eq!(payload_of(hex), input.as_bytes(), "{out}");
        assert_eq!(rest, format!("{}:0", input.len()), "{out}");
    }
    // The consumer failing the item still ends the buffer's life.
    let (code, out) = invoke(&w, PIPE, "fail-this-one");
    assert_eq!(code, 502, "{out}");
    assert!(out.contains("refused the device input"), "{out}");
    let exports = logged(&w, PIPE, "exports");
    assert_eq!(exports.len(), 6);
    assert_eq!(set(logged(&w, PIPE, "seen")), set(exports.clone()));
    assert_eq!(handoffs(&w, PIPE, "cuda-ipc"), 6.0);
    assert_eq!(handoffs(&w, PIPE, "copy"), 0.0);
    assert_eq!(handoffs(&w, PIPE, "shm"), 0.0);
    wait_for(Duration::from_secs(5), || {
        set(logged(&w, PIPE, "releases")) == set(exports.clone())
    });
    // Each exactly once (the helper would note a second release of a handle it no longer holds).
    assert_eq!(logged(&w, PIPE, "releases").len(), 6);
}

#[test]
fn a_dead_producers_handles_are_never_handed_out() {
    const PIPE: &str = "ipcdeath";
    let w = Worker::start(&[]);
    // `c` waits for both `p` and the slow `s`: `p` exits 300 ms after answering, so its output
    // is held by the worker when its process dies.
    create(
        &w,
        PIPE,
        vec![
            stage("p", "produce", &[], json!({})),
            stage("s", "slow", &[], json!({})),
            stage("c", "consume", &["p", "s"], json!({})),
        ],
    );
    let (code, out) = invoke(&w, PIPE, "die-after-answering");
    assert_eq!(code, 502, "{out}\n{}", w.log());
    assert!(
        out.contains("stage p died before stage c could open its output"),
        "{out}"
    );
    let dead = logged(&w, PIPE, "exports");
    assert_eq!(dead.len(), 1);
    assert!(
        logged(&w, PIPE, "seen").is_empty(),
        "the consumer was handed a dead producer's handle"
    );
    // The producer is restarted, and a fresh handle goes through and is released.
    let (code, out) = invoke(&w, PIPE, "alive");
    assert_eq!(code, 200, "{out}\n{}", w.log());
    let (first, second) = out.split_once('|').unwrap();
    assert_eq!(payload_of(&first[..128]), b"alive");
    assert_eq!(second, "bytes:alive");
    let exports = logged(&w, PIPE, "exports");
    assert_eq!(exports.len(), 2);
    let fresh = exports[1].clone();
    assert_eq!(logged(&w, PIPE, "seen"), vec![fresh.clone()]);
    wait_for(Duration::from_secs(5), || {
        logged(&w, PIPE, "releases") == vec![fresh.clone()]
    });
    // Nothing is ever released for the dead process's buffer (the driver freed it with the
    // process; its handle must not reach the new one).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(logged(&w, PIPE, "releases"), vec![fresh]);
    assert!(!logged(&w, PIPE, "releases").contains(&dead[0]));
}

#[test]
fn a_consumer_that_needs_a_copy_gets_a_clear_error_without_a_driver() {
    const PIPE: &str = "ipccopy";
    let w = Worker::start(&[]);
    // `far` does not take CUDA IPC hand-offs: the worker must copy the device buffer to host,
    // which needs the CUDA driver (and, with one, a real handle: these are made up).
    create(
        &w,
        PIPE,
        vec![
            stage("p", "produce", &[], json!({})),
            stage("near", "consume", &["p"], json!({})),
            stage(
                "far",
                "consume",
                &["p"],
                json!({"handoff": ["shm", "copy"]}),
            ),
        ],
    );
    let (code, out) = invoke(&w, PIPE, "payload");
    assert_eq!(code, 502, "{out}\n{}", w.log());
    assert!(
        out.contains("stage p: cannot copy its CUDA IPC output (GPU 0) to host"),
        "{out}"
    );
    assert!(
        out.contains("CUDA IPC is not available") || out.contains("cuIpcOpenMemHandle"),
        "{out}"
    );
    assert_eq!(handoffs(&w, PIPE, "cuda-ipc"), 1.0);
    assert_eq!(handoffs(&w, PIPE, "copy"), 1.0);
    let exports = logged(&w, PIPE, "exports");
    assert_eq!(exports.len(), 1);
    wait_for(Duration::from_secs(5), || {
        logged(&w, PIPE, "releases") == exports
    });
}

#[test]
fn the_device_handoff_switch_can_be_off_and_is_validated() {
    const PIPE: &str = "ipcoff";
    let w = Worker::start(&[]);
    let off = json!({"env": {"SLUICE_DEVICE_HANDOFF": "off"}});
    create(
        &w,
        PIPE,
        vec![
            stage("p", "produce", &[], off),
            stage("c", "consume", &["p"], json!({})),
        ],
    );
    // Told shm, the producer's DeviceOutput fails the item (the helper never copies device
    // memory itself) and is freed at once.
    let (code, out) = invoke(&w, PIPE, "x");
    assert_eq!(code, 502, "{out}");
    assert!(
        out.contains("DeviceOutput, but the worker asked for shm output"),
        "{out}"
    );
    assert_eq!(logged(&w, PIPE, "releases"), logged(&w, PIPE, "exports"));
    let bad = json!({
        "spec": {"name": "ipcbad", "slo_ms": 1000, "stages": [
            stage("p", "produce", &[], json!({"env": {"SLUICE_DEVICE_HANDOFF": "gpu"}}))
        ]},
        // The stages' working directory, bound read-only into their sandboxes (all of /tmp
        // would be refused: it holds the worker's data directory).
        "base_dir": stage_dir().display().to_string(),
    })
    .to_string();
    let (code, out, _) = http(&w, "POST", "/v1/pipelines", Some(&bad));
    assert_eq!(code, 400, "{out}");
    assert!(out.contains("SLUICE_DEVICE_HANDOFF"), "{out}");
}

/// The stage fixtures' directory (the pipelines' base directory).
fn stage_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stages")
}
