use super::*;
use crate::plan::Instance;
use crate::spec::StageSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gpulet-2080ti")
}

fn stage(name: &str, model: &str, after: &[&str]) -> StageSpec {
    StageSpec {
        name: name.into(),
        command: Vec::new(),
        image: None,
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
fn an_unbatched_server_is_md1() {
    // Batch 1, 10 ms, 0.05 items/ms: ρ = 0.5; P(W > x) = ρ·e^{−u·x/T}, u the M/D/1 root.
    let l = identical(|_| 10.0, 1, 5.0, 0.05, 1);
    let u = crate::queueing::decay_root(0.5, SERVICE_CV);
    let wait = 10.0 / u * 50f64.ln();
    // Wait and service jitter combine in quadrature around their means.
    let mean = 10.0 + 0.5 * 10.0 / u;
    let e = wait - 0.5 * 10.0 / u;
    let s = crate::queueing::Z99 * SERVICE_CV * 10.0;
    assert!((l.p99() - (mean + (e * e + s * s).sqrt())).abs() < 1e-9);
    // Overload and no load.
    assert!(identical(|_| 10.0, 1, 5.0, 0.1, 1).p99().is_infinite());
    let idle = identical(|_| 10.0, 1, 5.0, 0.0, 1);
    assert!((idle.p99() - 10.0 * (1.0 + crate::queueing::Z99 * SERVICE_CV)).abs() < 1e-9);
    // More instances sharing the load wait less.
    assert!(
        identical(|_| 10.0, 1, 5.0, 0.15, 4).p99()
            < identical(|_| 10.0, 1, 5.0, 0.0375, 1).p99() + 10.0
    );
    assert!(
        identical(|_| 10.0, 1, 5.0, 0.15, 4).p99() < identical(|_| 10.0, 1, 5.0, 0.15, 2).p99()
    );
}

#[test]
fn batches_fill_or_time_out() {
    let svc = |b: u32| 10.0 + b as f64;
    // 0.1 items/ms with a 5 ms timeout: batches of 1 + Poisson(0.5), the timeout fires.
    let s = server(svc, 8, 5.0, 0.1, 1);
    assert!(s.batch > 1.4 && s.batch < 2.5, "{}", s.batch);
    assert_eq!(s.fill_ms, 5.0);
    // 4 items/ms fills 8 well within the timeout.
    let s = server(svc, 8, 5.0, 4.0, 1);
    assert!(s.batch > 7.0, "{}", s.batch);
    assert!(s.fill_ms < 5.0);
    // A cap of one never waits for a batch.
    assert_eq!(server(svc, 1, 5.0, 0.05, 1).fill_ms, 0.0);
    // Under load batches grow toward the cap so the server keeps up: 2b + 10 ms at 0.2 items/ms
    // falls behind with batches of three or fewer.
    let s = server(|b| 2.0 * b as f64 + 10.0, 8, 0.0, 0.2, 1);
    assert!(s.batch > 3.0, "{}", s.batch);
    assert!(0.2 / s.rate() < 1.0);
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
    assert!(ev.p99_ms(cap * 1.01) > spec.slo_ms || ev.p99_ms(cap * 1.05) > spec.slo_ms);
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
