//! The simulated evaluation end to end on the bundled Gpu-let data (reduced: fewer GPU counts
//! and requests per probe), plus an OCR-style app read from a profile CSV and a spec file.

use sluice_pipeline::planner::Policy;
use sluice_sim::pipeline::evaluate::{self, EvalConfig, Evaluation};
use sluice_sim::pipeline::PeakConfig;
use std::path::PathBuf;

const GPULET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/gpulet-2080ti");

fn small(ocr: Option<(PathBuf, PathBuf)>) -> EvalConfig {
    EvalConfig {
        gpu_counts: vec![1, 2],
        peak: PeakConfig {
            requests: 1_000,
            ..PeakConfig::default()
        },
        check_requests: 1_000,
        ..EvalConfig::new(GPULET.into(), ocr)
    }
}

fn check_shape(ev: &Evaluation, apps: &[&str]) {
    let names: Vec<&str> = ev.apps.iter().map(|a| a.app.as_str()).collect();
    assert_eq!(names, apps);
    for app in &ev.apps {
        assert_eq!(app.max_load.len(), 2 * Policy::ALL.len(), "{}", app.app);
        for r in &app.max_load {
            assert!(r.simulated_peak_rps >= 0.0 && r.simulated_peak_rps.is_finite());
            if r.error.is_none() {
                assert!(r.instances > 0 && r.gpus_used > 0.0, "{r:?}");
                assert!(r.gpus_used <= f64::from(r.gpus) + 1e-9, "{r:?}");
            }
            if let Some(c) = &r.check {
                assert!(c.simulated_p99_ms > 0.0, "{r:?}");
                assert!(c.load_rps < r.simulated_peak_rps, "{r:?}");
            }
        }
        // 70% of a passing peak passes too, but for noise near the knee.
        let checks: Vec<bool> = app
            .max_load
            .iter()
            .filter_map(|r| r.check.as_ref().map(|c| c.meets_slo))
            .collect();
        let passing = checks.iter().filter(|&&m| m).count();
        assert!(2 * passing >= checks.len(), "{}: {checks:?}", app.app);
        assert_eq!(app.gains.len(), 2);
        for g in &app.gains {
            let baseline = Policy::ALL
                .iter()
                .find(|p| p.to_string() == g.best_baseline);
            assert!(baseline.is_some_and(|p| p.is_baseline()), "{g:?}");
            let best = app
                .max_load
                .iter()
                .filter(|r| r.gpus == g.gpus && r.baseline)
                .map(|r| r.simulated_peak_rps)
                .fold(0.0, f64::max);
            assert_eq!(g.best_baseline_rps, best);
        }
        let low = app
            .low_load
            .as_ref()
            .expect("a baseline has a positive peak");
        assert_eq!(low.rows.len(), Policy::ALL.len());
        assert_eq!(low.gpus_available, 2);
        assert!(low.load_rps > 0.0);
    }
}

#[test]
fn gpulet_apps_evaluate_every_policy_and_report_gains() {
    let cfg = small(None);
    let apps = evaluate::load_apps(&cfg).expect("Gpu-let data loads");
    let ev = evaluate::run(&cfg, &apps, &|_| {}).expect("evaluation");
    check_shape(&ev, &["traffic", "game"]);
    let md = evaluate::render_markdown(&ev);
    for needle in [
        "## Summary against Camelot's claims",
        "## traffic",
        "## game",
        "| max-load",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
    let json = serde_json::to_string(&ev).expect("json");
    let back: Evaluation = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back.apps.len(), 2);
    let again = evaluate::run(&cfg, &apps, &|_| {}).expect("evaluation");
    assert_eq!(again, ev, "the evaluation is deterministic");
}

#[test]
fn an_ocr_style_app_comes_from_a_profile_csv_and_a_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb\n");
    for (model, base) in [("det", 8.0), ("rec", 3.0)] {
        for batch in [1u32, 2, 4, 8] {
            for share in [50u32, 100] {
                let ms = base * (0.6 + 0.4 * f64::from(batch)) * 100.0 / f64::from(share);
                csv.push_str(&format!("{model},{batch},{share},{ms},40,10,20,300\n"));
            }
        }
    }
    let profile = dir.path().join("profile.csv");
    std::fs::write(&profile, csv).expect("write profile");
    let spec = dir.path().join("pipeline.yaml");
    std::fs::write(
        &spec,
        "name: ocr\nslo_ms: 200\nstages:\n  - name: det\n    max_batch: 8\n  - name: rec\n    after: [det]\n    max_batch: 8\n",
    )
    .expect("write spec");
    let cfg = EvalConfig {
        gpu_counts: vec![1, 2],
        ..small(Some((profile, spec)))
    };
    let apps = evaluate::load_apps(&cfg).expect("apps load");
    assert_eq!(apps.len(), 3);
    let ocr = &apps[2..];
    let ev = evaluate::run(&cfg, ocr, &|_| {}).expect("evaluation");
    check_shape(&ev, &["ocr"]);
    assert!(ev.apps[0].source.contains("no contention model"));
    let missing = EvalConfig {
        ocr: Some((
            dir.path().join("nope.csv"),
            dir.path().join("pipeline.yaml"),
        )),
        ..cfg
    };
    let err = evaluate::load_apps(&missing)
        .err()
        .expect("missing profile");
    assert!(err.to_string().contains("nope.csv"), "{err}");
}
