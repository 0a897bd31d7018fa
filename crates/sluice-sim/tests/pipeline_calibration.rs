//! Calibration of the planner's analytic p99 (`PerfModel`) against the pipeline simulator on a
//! fixed set of hand-made plans of the Gpu-let apps — spatial with one and several instances per
//! stage, batching, co-location, a chain with hand-offs, and time-sharing with fan-out — each at
//! a light and a heavy load. The model must stay within 15% of the simulated p99 on average and
//! within 35% on every case (the wider example, `examples/pipeline_calibration.rs`, covers the
//! planners' own plans).

use sluice_pipeline::gpulet::load_app;
use sluice_pipeline::model::PerfModel;
use sluice_pipeline::{Instance, PipelineSpec, Plan};
use sluice_sim::pipeline::{simulate, PeakConfig};
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/gpulet-2080ti"
    ))
}

/// `(stage, gpu, share, batch)` per instance.
fn plan(
    spec: &PipelineSpec,
    model: &PerfModel,
    policy: &str,
    xs: &[(usize, u32, u32, u32)],
) -> Plan {
    Plan {
        pipeline: spec.name.clone(),
        policy: policy.into(),
        gpus: model.cluster.count,
        instances: xs
            .iter()
            .map(|&(stage, gpu, sm_share, batch)| Instance {
                stage,
                gpu,
                sm_share,
                batch,
                memory_mb: model.memory_mb(spec, stage),
            })
            .collect(),
        predicted: Default::default(),
        explain: Vec::new(),
    }
}

/// (predicted − simulated) / simulated p99 of `p` at `load`, percent.
fn error_pct(spec: &PipelineSpec, model: &PerfModel, p: &Plan, load: f64) -> f64 {
    let cfg = PeakConfig {
        requests: 6_000,
        ..PeakConfig::default()
    }
    .run_config(load);
    let run = simulate(spec, p, model, &model.cluster, &cfg).expect("simulates");
    assert_eq!(run.dropped, 0, "{} at {load}", p.policy);
    let predicted = model.p99_ms(spec, p, load);
    (predicted - run.e2e_ms.p99) / run.e2e_ms.p99 * 100.0
}

#[test]
fn the_analytic_p99_tracks_the_simulator() {
    let dir = data();
    let traffic = load_app(&dir.join("traffic.json")).expect("traffic");
    let game = load_app(&dir.join("game.json")).expect("game");
    let one = PerfModel::gpulet(&dir, 1).expect("data");
    let four = PerfModel::gpulet(&dir, 4).expect("data");
    let lenets = |share: u32, batch: u32| -> Vec<(usize, u32, u32, u32)> {
        (0..6).map(|s| (s, 0, share, batch)).collect()
    };
    let mut game_spatial = lenets(5, 2);
    game_spatial.extend([(6, 0, 30, 2), (6, 0, 30, 2)]);
    let mut game_ts = lenets(100, 1);
    game_ts.push((6, 0, 100, 1));
    let resnets: Vec<(usize, u32, u32, u32)> = (0..6)
        .map(|s| (s, 0, 10, 4))
        .chain((0..4).map(|g| (6, g, 40, 1)))
        .collect();
    let chain = [
        (0, 0, 15, 1),
        (1, 0, 10, 1),
        (2, 0, 45, 1),
        (2, 1, 45, 1),
        (0, 1, 15, 1),
    ];
    let cases: Vec<(&PipelineSpec, &PerfModel, Plan, [f64; 2])> = vec![
        (
            &game,
            &one,
            plan(&game, &one, "max-load", &game_spatial),
            [25.0, 70.0],
        ),
        (
            &game,
            &one,
            plan(&game, &one, "time-sharing", &game_ts),
            [4.0, 14.0],
        ),
        (
            &game,
            &four,
            plan(&game, &four, "laius", &resnets),
            [40.0, 100.0],
        ),
        (
            &traffic,
            &four,
            plan(&traffic, &four, "max-load", &chain),
            [1.0, 12.0],
        ),
    ];
    let mut errors = Vec::new();
    for (spec, model, p, loads) in &cases {
        for &load in loads {
            let e = error_pct(spec, model, p, load);
            eprintln!("{} {} at {load} rps: error {e:+.1}%", spec.name, p.policy);
            assert!(
                e.abs() < 35.0,
                "{} {} at {load} rps: error {e:+.1}%",
                spec.name,
                p.policy
            );
            errors.push(e);
        }
    }
    let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    let bias = errors.iter().sum::<f64>() / errors.len() as f64;
    assert!(mean_abs < 15.0, "mean |error| {mean_abs:.1}% ({errors:?})");
    assert!(bias.abs() < 10.0, "mean error {bias:+.1}% ({errors:?})");
}
