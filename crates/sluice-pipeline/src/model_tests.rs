use super::*;
use crate::plan::Instance;
use crate::spec::StageSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/gpulet-2080ti")
}

fn stage(name: &str, model: &str, after: &[&str]) -> StageSpec {
    StageSpec {
        name: name.into(),
        command: Vec::new(),
        env: BTreeMap::new(),
        model: Some(model.into()),
        after: after.iter().map(|s| s.to_string()).collect(),
        max_batch: 8,
        max_wait_ms: 5.0,
        memory_mb: 0,
        output_kb: 588.0,
        handoff: vec![Handoff::Shm, Handoff::Copy],
    }
}

fn chain() -> PipelineSpec {
    PipelineSpec {
        name: "chain".into(),
        slo_ms: 150.0,
        load_rps: 0.0,
        stages: vec![
            stage("detect", "ssd-mobilenetv1", &[]),
            stage("classify", "googlenet", &["detect"]),
        ],
    }
}

fn plan_on(gpus: [u32; 2]) -> Plan {
    Plan {
        pipeline: "chain".into(),
        policy: "max-load".into(),
        gpus: 2,
        instances: vec![
            Instance {
                stage: 0,
                gpu: gpus[0],
                sm_share: 50,
                batch: 4,
                memory_mb: 640,
            },
            Instance {
                stage: 1,
                gpu: gpus[1],
                sm_share: 50,
                batch: 4,
                memory_mb: 1720,
            },
        ],
        predicted: Default::default(),
        explain: Vec::new(),
    }
}

#[test]
fn mm1_tail_is_exact() {
    // ca² = 1 and cs² = 0.1: (1.1 / 2) of the M/M/1 p99 wait T/(1-ρ)·ln(100ρ).
    let q = queue_p99_ms(0.5, 10.0, 1.0);
    assert!((q - 10.0 * 1.1 / 2.0 / 0.5 * 50f64.ln()).abs() < 1e-9);
    assert_eq!(queue_p99_ms(0.005, 10.0, 1.0), 0.0);
    assert!(queue_p99_ms(1.0, 10.0, 1.0).is_infinite());
}

#[test]
fn batching_fills_or_times_out() {
    let svc = |b: u32| 10.0 + b as f64;
    // 0.1 items/ms with 5 ms timeout: 1.5 → 2 items after 5 ms.
    let t = tail(svc, 8, 5.0, 0.1);
    assert_eq!((t.batch, t.fill_ms), (2, 5.0));
    // 2 items/ms fills 8 in 3.5 ms.
    let t = tail(svc, 8, 5.0, 2.0);
    assert_eq!(t.batch, 8);
    assert!((t.fill_ms - 3.5).abs() < 1e-12);
    // A timeout batch that cannot keep up grows until it can.
    // 2b + 10 ms at 0.2 items/ms: batches of 1..3 fall behind, 4 keeps up (ρ = 0.9).
    let t = tail(|b| 2.0 * b as f64 + 10.0, 8, 0.0, 0.2);
    assert_eq!(t.batch, 4);
    assert!((t.rho - 0.9).abs() < 1e-12);
}

#[test]
fn hand_off_in_place_only_when_co_located() {
    let model = PerfModel::gpulet(&data(), 2).unwrap();
    let spec = chain();
    let same = model.evaluate(&spec, &plan_on([0, 0]));
    let split = model.evaluate(&spec, &plan_on([0, 1]));
    let link = &model.cluster.link;
    assert_eq!(same.edge_ms()[0].1, link.cost_ms(588.0, true));
    assert_eq!(split.edge_ms()[0].1, link.cost_ms(588.0, false));
    let mut copy_only = spec.clone();
    copy_only.stages[1].handoff = vec![Handoff::Copy];
    let ev = model.evaluate(&copy_only, &plan_on([0, 0]));
    assert_eq!(ev.edge_ms()[0].1, link.cost_ms(588.0, false));
}

#[test]
fn service_time_is_profile_times_contention() {
    let model = PerfModel::gpulet(&data(), 2).unwrap();
    let spec = chain();
    let together = plan_on([0, 0]);
    let solo = model.profiles.latency_ms("googlenet", 4, 50).unwrap();
    let slow = model.slowdown(&spec, &together, 1);
    assert!(slow > 1.0);
    assert!((model.batch_ms(&spec, &together, 1, 4) - solo * slow).abs() < 1e-9);
    assert_eq!(model.slowdown(&spec, &plan_on([0, 1]), 1), 1.0);
    let mut ts = together.clone();
    ts.policy = "time-sharing".into();
    let whole = model.profiles.latency_ms("googlenet", 4, 100).unwrap();
    assert_eq!(model.batch_ms(&spec, &ts, 1, 4), whole);
    assert!(model.batch_ms(&spec, &together, 9, 4).is_infinite());
}

#[test]
fn capacity_is_the_edge_of_the_slo() {
    let model = PerfModel::gpulet(&data(), 2).unwrap();
    let spec = chain();
    let plan = plan_on([0, 0]);
    let ev = model.evaluate(&spec, &plan);
    let cap = ev.capacity_rps();
    assert!(cap > 0.0);
    assert!(ev.p99_ms(cap) <= spec.slo_ms);
    assert!(ev.p99_ms(cap * 1.01) > spec.slo_ms);
    let bound = ev.stage_rps().into_iter().fold(f64::INFINITY, f64::min);
    assert!(cap < bound);
    let pred = model.predict(&spec, &plan, cap / 2.0);
    assert_eq!(pred.capacity_rps, cap);
    assert!(pred.p99_ms <= spec.slo_ms);
    assert_eq!(pred.gpus_used, 1.0);
}

#[test]
fn bandwidth_is_capped_per_gpu() {
    let model = PerfModel::gpulet(&data(), 1).unwrap();
    let spec = PipelineSpec {
        name: "bw".into(),
        slo_ms: 1000.0,
        load_rps: 0.0,
        stages: vec![stage("m", "mobilenet_v2", &[])],
    };
    let with = |n: usize| Plan {
        pipeline: "bw".into(),
        policy: "max-load".into(),
        gpus: 1,
        instances: (0..n)
            .map(|_| Instance {
                stage: 0,
                gpu: 0,
                sm_share: 100 / n as u32,
                batch: 8,
                memory_mb: 100,
            })
            .collect(),
        predicted: Default::default(),
        explain: Vec::new(),
    };
    // One instance cannot exceed the GPU; four quarter-GPU mobilenet_v2 (DRAM/SM ≈ 2) do.
    assert!(model.bandwidth_violation(&spec, &with(1)).is_none());
    let (g, demand) = model.bandwidth_violation(&spec, &with(4)).unwrap();
    assert_eq!(g, 0);
    assert!(demand > BANDWIDTH_CAP);
}
