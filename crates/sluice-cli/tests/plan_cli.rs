//! End-to-end tests of `sluice plan` and the input checks of `sluice profile`: the real binary on
//! the Gpu-let `game` application and the OCR example's spec and measured profile. A plan is
//! deterministic and within the hard constraints; bad input is a clear error (exit 1), never a
//! panic.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn plan_json(args: &[&str]) -> Value {
    let out = sluice(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON plan")
}

/// Per GPU, the SM shares given out never exceed 100%.
fn assert_within_gpus(plan: &Value) {
    let gpus = plan["gpus"].as_u64().unwrap();
    for g in 0..gpus {
        let sm: u64 = plan["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["gpu"].as_u64() == Some(g))
            .map(|x| x["sm_share"].as_u64().unwrap())
            .sum();
        assert!(sm <= 100, "GPU {g} gets {sm}%");
    }
}

#[test]
fn a_gpulet_app_plans_deterministically_within_its_gpus() {
    let game = repo("data/gpulet-2080ti/game.json");
    if !game.exists() {
        println!("skipping: {} is not there", game.display());
        return;
    }
    let game = game.display().to_string();
    let args = ["plan", game.as_str(), "--gpus", "2", "--json"];
    let first = plan_json(&args);
    assert_eq!(first, plan_json(&args), "same input, same plan");
    assert_eq!(first["policy"], "max-load");
    assert_eq!(first["gpus"], 2);
    assert_within_gpus(&first);
    let predicted = &first["predicted"];
    assert!(predicted["capacity_rps"].as_f64().unwrap() > 0.0);
    assert!(predicted["p99_ms"].as_f64().unwrap() <= 95.0 + 1e-6);
    let laius = plan_json(&[
        "plan",
        game.as_str(),
        "--load",
        "20",
        "--policy",
        "laius",
        "--json",
    ]);
    assert_eq!(laius["policy"], "laius");
    assert_within_gpus(&laius);
    let text = sluice(&["plan", game.as_str(), "--gpus", "1", "--explain"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("why:") && text.contains("resnet50"), "{text}");
}

#[test]
fn the_ocr_example_plans_from_its_measured_profile() {
    let spec = repo("examples/pipelines/ocr/pipeline.yaml")
        .display()
        .to_string();
    let plan = plan_json(&[
        "plan",
        spec.as_str(),
        "--load",
        "2",
        "--max-gpus",
        "1",
        "--json",
    ]);
    assert_eq!(plan["policy"], "min-resources");
    assert_within_gpus(&plan);
    for x in plan["instances"].as_array().unwrap() {
        assert!(
            x["sm_share"].as_u64().unwrap() >= 10,
            "below the profile's smallest measured share: {x}"
        );
    }
    assert!(plan["predicted"]["p99_ms"].as_f64().unwrap() <= 2000.0);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile_dir();
    let cyclic = dir.join("cyclic.yaml");
    std::fs::write(
        &cyclic,
        "name: x\nslo_ms: 5\nstages:\n - {name: a, after: [b]}\n - {name: b, after: [a]}\n",
    )
    .unwrap();
    let ocr = repo("examples/pipelines/ocr/pipeline.yaml")
        .display()
        .to_string();
    let cyclic = cyclic.display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (
            &["plan", "/nonexistent/p.yaml", "--gpus", "1"],
            "cannot read",
        ),
        (&["plan", cyclic.as_str(), "--gpus", "1"], "cycle"),
        (
            &["plan", ocr.as_str(), "--gpus", "1", "--policy", "nope"],
            "unknown policy",
        ),
        (&["plan", ocr.as_str(), "--gpus", "0"], "at least 1"),
        (
            &[
                "plan",
                ocr.as_str(),
                "--gpus",
                "1",
                "--profile",
                "/nonexistent.csv",
            ],
            "cannot read the profile",
        ),
        (
            &["profile", ocr.as_str(), "--inputs", "/nonexistent.png"],
            "cannot read input",
        ),
    ];
    for (args, needle) in cases {
        let out = sluice(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-plan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
