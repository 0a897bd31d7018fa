//! The Gpu-let applications import as specs, and plans of them render as tables.

use std::path::{Path, PathBuf};

use sluice_pipeline::{gpulet::load_app, plan, render, render_with_model, Goal, PerfModel, Policy};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gpulet-2080ti")
}

#[test]
fn traffic_imports_as_a_fan_out() {
    let spec = load_app(&data().join("traffic.json")).unwrap();
    assert_eq!(spec.name, "traffic");
    let names: Vec<&str> = spec.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ssd-mobilenetv1", "googlenet", "vgg16"]);
    assert_eq!(spec.edges(), [(0, 1), (0, 2)]);
    assert_eq!(spec.slo_ms, 136.0);
    assert_eq!(spec.stages[2].memory_mb, 2920);
    assert_eq!(spec.stages[0].max_batch, 32);
    assert!((spec.stages[0].output_kb - 3.0 * 300.0 * 300.0 * 4.0 / 1024.0).abs() < 1e-9);
}

#[test]
fn game_imports_with_profile_keys() {
    let spec = load_app(&data().join("game.json")).unwrap();
    assert_eq!(spec.stages.len(), 7);
    assert_eq!(spec.sources().len(), 7);
    assert!(spec.edges().is_empty());
    assert_eq!(spec.slo_ms, 95.0);
    assert_eq!(spec.stages[0].name, "lenet1");
    assert_eq!(spec.stages[0].model(), "lenet");
    assert_eq!(spec.stages[0].memory_mb, 50);
    assert_eq!(spec.stages[6].model(), "resnet50");
    assert!((spec.stages[0].output_kb - 28.0 * 28.0 * 4.0 / 1024.0).abs() < 1e-9);
}

#[test]
fn missing_or_broken_apps_are_errors() {
    assert!(load_app(&data().join("nope.json")).is_err());
    let dir = std::env::temp_dir().join(format!("sluice-gpulet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Name":"x","Input":[{"ID":0,"InputDim":[1],"InputType":"FP32","output":[1]}],
           "Models":[{"ID":1,"input":[7],"output":[2],"model":"lenet","max_batch":4,"SLO":10}]}"#,
    )
    .unwrap();
    let err = load_app(&bad).unwrap_err().to_string();
    assert!(err.contains("unknown ID 7"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plans_render_as_tables() {
    let model = PerfModel::gpulet(&data(), 2).unwrap();
    let spec = load_app(&data().join("traffic.json")).unwrap();
    let p = plan(
        &spec,
        &model,
        Policy::MinResources,
        Goal::MinResources { load_rps: 0.3 },
    )
    .unwrap();
    let plain = render(&p, &spec);
    assert!(plain.contains("plan for traffic by min-resources"));
    assert!(plain.contains("vgg16"));
    assert!(plain.contains("predicted: capacity"));
    let rich = render_with_model(&p, &spec, &model);
    assert!(rich.contains("hand-off ssd-mobilenetv1 → vgg16"));
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(
        serde_json::from_str::<sluice_pipeline::Plan>(&json).unwrap(),
        p
    );
}
