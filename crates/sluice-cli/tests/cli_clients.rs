//! The client commands (`sluice invoke`, `sluice fn`, `sluice pipeline`, `sluice load`) against a
//! real worker:
//! bad input exits 1 with a clear message, and short load runs (closed loop, trace replay) work.

mod common;

use common::{http, Worker};
use serde_json::Value;

/// `sluice invoke` and `sluice load` refuse bad input with a clear message and exit 1, and a short
/// closed-loop load run works.
#[test]
fn cli_clients_refuse_bad_input() {
    let w = Worker::start(&[]);
    http(
        &w,
        "POST",
        "/v1/functions",
        Some(&common::function("cli", serde_json::json!({})).to_string()),
    );
    let url = format!("http://{}", w.addr);
    let bad_spec = w.dir.join("cyclic.yaml");
    std::fs::write(
        &bad_spec,
        "name: p\nslo_ms: 5\nstages:\n - {name: a, command: [x], after: [b]}\n - {name: b, command: [x], after: [a]}\n",
    )
    .unwrap();
    let bad_spec = bad_spec.display().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_URL", &url)
            .output()
            .expect("run sluice");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["invoke", "cli", "{nope"], "not JSON"),
        (vec!["invoke", "nosuch", "{}"], "unknown function"),
        (
            vec![
                "load",
                "--closed",
                "1",
                "--duration",
                "0.2",
                "--functions",
                "nosuch",
            ],
            "unknown function",
        ),
        (
            vec!["load", "--closed", "0", "--functions", "cli"],
            "at least 1 client",
        ),
        (
            vec![
                "load",
                "--trace",
                "poisson:squeezenet=5;duration=1",
                "--functions",
                "nosuch",
            ],
            "not registered",
        ),
        (
            vec![
                "load",
                "--trace",
                "poisson:squeezenet=5;duration=1",
                "--functions",
                "cli",
                "--target-util",
                "0",
            ],
            "--target-util",
        ),
        (
            vec![
                "load",
                "--closed",
                "1",
                "--functions",
                "cli",
                "--input",
                "{bad",
            ],
            "not JSON",
        ),
        (
            vec!["fn", "register", "/no/such/function.json"],
            "/no/such/function.json",
        ),
        (
            vec!["pipeline", "create", "/no/such/pipeline.yaml"],
            "cannot read pipeline spec",
        ),
        (vec!["pipeline", "create", bad_spec.as_str()], "cycle"),
        (
            vec!["pipeline", "invoke", "nosuch", bad_spec.as_str()],
            "unknown pipeline",
        ),
        (vec!["pipeline", "status", "nosuch"], "unknown pipeline"),
        (
            vec![
                "load",
                "--pipeline",
                "nosuch",
                "--rates",
                "1",
                "--inputs",
                bad_spec.as_str(),
            ],
            "not deployed",
        ),
        (
            vec![
                "load",
                "--pipeline",
                "nosuch",
                "--rates",
                "0",
                "--inputs",
                bad_spec.as_str(),
            ],
            "--rates must be positive",
        ),
        (
            vec![
                "load",
                "--pipeline",
                "nosuch",
                "--rates",
                "1",
                "--inputs",
                "/no/such/input",
            ],
            "cannot read input",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} should mention {needle:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let (code, out, err) = run(&[
        "load",
        "--closed",
        "1",
        "--duration",
        "0.3",
        "--functions",
        "cli",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        v["completed"].as_u64().unwrap() > 0 && v["errors"] == 0,
        "{v}"
    );
    let (code, out, err) = run(&[
        "load",
        "--trace",
        "poisson:squeezenet=20;duration=1",
        "--functions",
        "cli",
        "--json",
        "-q",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        v["policies"][0]["invocations"], v["policies"][0]["completed"],
        "{v}"
    );
    // One measured cold start per cold invocation, for `sluice sim`'s
    // `device.cold_start_samples_ms`.
    let samples = v["cold_start_samples_ms"].as_array().expect("samples");
    assert_eq!(
        Some(samples.len() as u64),
        v["policies"][0]["cold_starts"].as_u64(),
        "{v}"
    );
    assert!(
        samples.iter().all(|s| s.as_f64().is_some_and(|x| x >= 0.0)),
        "{v}"
    );
    // `invoke --async` tells the truth in its exit status: 0 when the invocation succeeded,
    // 1 (with the reason) when it failed.
    let (code, out, err) = run(&["invoke", "cli", r#"{"do":"echo"}"#, "--async"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("\"succeeded\""), "{out}");
    let (code, out, err) = run(&["invoke", "cli", r#"{"do":"fail"}"#, "--async"]);
    assert_eq!(
        code,
        Some(1),
        "a failed async invocation exits 1: {out} {err}"
    );
    assert!(err.contains("failed"), "{err}");
    // `status` is a summary by default and JSON on request.
    let (code, out, err) = run(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("worker up "), "{out}");
    let (code, out, _) = run(&["status", "--json"]);
    assert_eq!(code, Some(0));
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
}
