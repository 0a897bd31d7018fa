//! The pipeline engine against properties and closed forms: determinism, an M/D/1 queue,
//! batching rules, fan-in, time-sharing, hand-off costs, overload and bad inputs.

mod pipeline_fixture;

use pipeline_fixture::{cluster, plan, spec, stage, Linear};
use proptest::prelude::*;
use sluice_core::{Dur, Time};
use sluice_pipeline::{Handoff, PipelineSpec, Plan, ServiceModel};
use sluice_sim::pipeline::{simulate, simulate_traced, RunConfig, SimError, Trace};

fn chain() -> PipelineSpec {
    spec(
        "chain",
        50.0,
        vec![stage("a", &[], 8, 2.0), stage("b", &["a"], 8, 2.0)],
    )
}

fn deterministic(rate: f64, duration_s: f64) -> RunConfig {
    RunConfig {
        noise_cv: 0.0,
        ..RunConfig::new(rate, duration_s)
    }
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let s = chain();
    let p = plan(
        "max-load",
        2,
        &[(0, 0, 50, 4), (1, 0, 50, 8), (1, 1, 100, 8)],
    );
    let m = Linear {
        stages: vec![(0.5, 0.2), (1.0, 0.3)],
    };
    let cfg = RunConfig::new(400.0, 5.0);
    let one = simulate(&s, &p, &m, &cluster(2), &cfg).expect("run");
    let two = simulate(&s, &p, &m, &cluster(2), &cfg).expect("run");
    assert_eq!(one, two);
    assert_eq!(one.to_json(), two.to_json());
    assert!(one.completed > 1500, "{}", one.render_text());
    let other = simulate(&s, &p, &m, &cluster(2), &RunConfig { seed: 2, ..cfg }).expect("run");
    assert_ne!(one.e2e_ms, other.e2e_ms);
}

#[test]
fn single_stage_batch_one_matches_md1_mean_sojourn() {
    // M/D/1: mean sojourn = D + ρD / (2(1 − ρ)); D = 1 ms, ρ = 0.7 → 2.1667 ms.
    let s = spec("md1", 100.0, vec![stage("only", &[], 1, 0.0)]);
    let p = plan("max-load", 1, &[(0, 0, 100, 1)]);
    let m = Linear {
        stages: vec![(1.0, 0.0)],
    };
    let run = simulate(&s, &p, &m, &cluster(1), &deterministic(700.0, 300.0)).expect("run");
    let rho: f64 = 0.7;
    let expected = 1.0 + rho / (2.0 * (1.0 - rho));
    let got = run.e2e_ms.mean;
    assert!(
        (got - expected).abs() / expected < 0.04,
        "mean {got} vs {expected}"
    );
    assert!(
        (run.per_stage[0].utilisation - rho).abs() < 0.02,
        "{}",
        run.render_text()
    );
    assert_eq!(run.per_stage[0].mean_batch, 1.0);
    assert_eq!(run.completed, run.offered);
    assert!((run.throughput_rps - 700.0).abs() < 10.0);
}

/// Batches never exceed the plan's batch, start as soon as they are ready and their executor is
/// free, are ready no later than the oldest item's wait allows, and are partial only after it.
fn check_batching(s: &PipelineSpec, p: &Plan, trace: &Trace) {
    let mut prev_finish = vec![Time::ZERO; p.instances.len()];
    for b in &trace.batches {
        let x = &p.instances[b.instance];
        let wait = Dur::from_millis_f64(s.stages[x.stage].max_wait_ms);
        assert!(b.size >= 1 && b.size <= x.batch, "{b:?}");
        assert!(b.ready <= b.oldest_ready + wait, "{b:?}");
        if b.size < x.batch {
            assert!(
                b.start >= b.oldest_ready + wait,
                "partial batch started early: {b:?}"
            );
        }
        if !p.time_shared() {
            assert_eq!(b.start, b.ready.max(prev_finish[b.instance]), "{b:?}");
            prev_finish[b.instance] = b.finish;
        }
    }
}

#[test]
fn batching_respects_plan_batch_and_max_wait() {
    let s = chain();
    let p = plan("max-load", 1, &[(0, 0, 40, 4), (1, 0, 60, 6)]);
    let m = Linear {
        stages: vec![(0.4, 0.1), (0.6, 0.2)],
    };
    for rate in [50.0, 800.0, 2500.0] {
        let (run, trace) =
            simulate_traced(&s, &p, &m, &cluster(1), &RunConfig::new(rate, 4.0)).expect("run");
        check_batching(&s, &p, &trace);
        let sizes: Vec<u32> = trace.batches.iter().map(|b| b.size).collect();
        if rate >= 2500.0 {
            assert!(run.per_stage[0].mean_batch > 3.0, "{}", run.render_text());
        } else if rate <= 50.0 {
            assert!(run.per_stage[0].mean_batch < 1.5, "{}", run.render_text());
            assert!(sizes.contains(&1));
        }
    }
}

#[test]
fn fan_in_waits_for_every_branch() {
    let s = spec(
        "diamond",
        200.0,
        vec![
            stage("a", &[], 4, 1.0),
            stage("slow", &["a"], 4, 1.0),
            stage("fast", &["a"], 4, 1.0),
            stage("join", &["slow", "fast"], 4, 1.0),
        ],
    );
    let p = plan(
        "max-load",
        2,
        &[(0, 0, 30, 4), (1, 1, 100, 4), (2, 0, 30, 4), (3, 0, 40, 4)],
    );
    let m = Linear {
        stages: vec![(0.2, 0.1), (5.0, 1.0), (0.1, 0.05), (0.2, 0.1)],
    };
    let c = cluster(2);
    let (run, trace) = simulate_traced(&s, &p, &m, &c, &deterministic(60.0, 5.0)).expect("run");
    assert_eq!(run.completed, run.offered);
    let mut checked = 0;
    for req in 0..trace.requests.len() {
        let items: Vec<_> = trace.items.iter().filter(|i| i.request == req).collect();
        let at = |stage: usize| items.iter().find(|i| i.stage == stage).expect("item ran");
        let join = at(3);
        let arrive = |pred: usize| {
            let i = at(pred);
            let in_place = p.instances[i.instance].gpu == p.instances[join.instance].gpu;
            i.finish + Dur::from_millis_f64(c.link.cost_ms(s.stages[pred].output_kb, in_place))
        };
        assert_eq!(join.ready, arrive(1).max(arrive(2)), "request {req}");
        assert!(join.ready > at(2).finish, "request {req}");
        assert!(at(1).start >= at(0).finish && at(2).start >= at(0).finish);
        checked += 1;
    }
    assert!(checked > 200);
    let slow = &run.per_stage[1].latency_ms;
    assert!(run.e2e_ms.p50 > slow.p50, "{}", run.render_text());
}

#[test]
fn time_sharing_serialises_a_gpu_and_spatial_does_not() {
    let s = chain();
    let m = Linear {
        stages: vec![(1.0, 0.2), (1.5, 0.2)],
    };
    let overlaps = |p: &Plan| {
        let (_, trace) =
            simulate_traced(&s, p, &m, &cluster(1), &deterministic(300.0, 3.0)).expect("run");
        check_batching(&s, p, &trace);
        let mut on_gpu: Vec<_> = trace.batches.iter().filter(|b| b.gpu == 0).collect();
        on_gpu.sort_by_key(|b| b.start);
        on_gpu
            .windows(2)
            .filter(|w| w[1].start < w[0].finish)
            .count()
    };
    let shared = plan("time-sharing", 1, &[(0, 0, 100, 4), (1, 0, 100, 4)]);
    assert_eq!(overlaps(&shared), 0);
    let spatial = plan("even-split", 1, &[(0, 0, 50, 4), (1, 0, 50, 4)]);
    assert!(overlaps(&spatial) > 10);
}

#[test]
fn time_sharing_takes_ready_batches_in_ready_order() {
    let s = chain();
    let m = Linear {
        stages: vec![(1.0, 0.2), (1.5, 0.2)],
    };
    let p = plan("time-sharing", 1, &[(0, 0, 100, 4), (1, 0, 100, 4)]);
    let (_, trace) =
        simulate_traced(&s, &p, &m, &cluster(1), &RunConfig::new(600.0, 3.0)).expect("run");
    let mut waited = 0;
    for w in trace.batches.windows(2) {
        // When a batch waited for the GPU, no batch that became ready later went before it.
        if w[1].start > w[1].ready {
            waited += 1;
            let jumped = trace
                .batches
                .iter()
                .any(|b| b.start >= w[0].start && b.start < w[1].start && b.ready > w[1].ready);
            assert!(!jumped, "{:?}", w[1]);
        }
    }
    assert!(waited > 10);
}

#[test]
fn hand_off_is_in_place_only_on_one_gpu_with_a_kind_both_ends_accept() {
    let c = cluster(2);
    let m = Linear {
        stages: vec![(0.5, 0.1), (0.5, 0.1)],
    };
    let gap = |s: &PipelineSpec, consumer_gpu: u32| {
        let p = plan("max-load", 2, &[(0, 0, 50, 2), (1, consumer_gpu, 50, 2)]);
        let (_, trace) = simulate_traced(s, &p, &m, &c, &deterministic(50.0, 2.0)).expect("run");
        let mut gaps: Vec<Dur> = (0..trace.requests.len())
            .filter_map(|r| {
                let of = |st| trace.items.iter().find(|i| i.request == r && i.stage == st);
                Some(of(1)?.ready - of(0)?.finish)
            })
            .collect();
        gaps.dedup();
        assert_eq!(gaps.len(), 1, "hand-off cost should be constant: {gaps:?}");
        gaps[0]
    };
    let s = chain();
    let kb = s.stages[0].output_kb;
    assert_eq!(gap(&s, 0), Dur::from_millis_f64(c.link.cost_ms(kb, true)));
    assert_eq!(gap(&s, 1), Dur::from_millis_f64(c.link.cost_ms(kb, false)));
    let mut copy_only = chain();
    copy_only.stages[1].handoff = vec![Handoff::Copy];
    assert_eq!(
        gap(&copy_only, 0),
        Dur::from_millis_f64(c.link.cost_ms(kb, false))
    );
    let mut no_common_kind = chain();
    no_common_kind.stages[0].handoff = vec![Handoff::CudaIpc, Handoff::Copy];
    assert_eq!(
        gap(&no_common_kind, 0),
        Dur::from_millis_f64(c.link.cost_ms(kb, false))
    );
    no_common_kind.stages[1].handoff = vec![Handoff::CudaIpc];
    assert_eq!(
        gap(&no_common_kind, 0),
        Dur::from_millis_f64(c.link.cost_ms(kb, true))
    );
    assert!(gap(&s, 1) > gap(&s, 0));
}

#[test]
fn overload_drops_are_counted_and_can_stop_the_run() {
    let s = chain();
    let p = plan("max-load", 1, &[(0, 0, 50, 2), (1, 0, 50, 2)]);
    let m = Linear {
        stages: vec![(1.0, 1.0), (1.0, 1.0)],
    };
    let cfg = RunConfig {
        queue_limit: 16,
        ..RunConfig::new(2000.0, 2.0)
    };
    let run = simulate(&s, &p, &m, &cluster(1), &cfg).expect("run");
    assert!(run.dropped > run.offered / 2, "{}", run.render_text());
    assert_eq!(run.completed + run.dropped, run.offered);
    assert!(!run.aborted);
    let stopped = simulate(
        &s,
        &p,
        &m,
        &cluster(1),
        &RunConfig {
            max_drops: Some(0),
            ..cfg
        },
    )
    .expect("run");
    assert!(stopped.aborted && stopped.render_text().contains("stopped early"));
}

struct Broken;
impl ServiceModel for Broken {
    fn batch_ms(&self, _: &PipelineSpec, _: &Plan, _: usize, batch: u32) -> f64 {
        if batch > 1 {
            f64::NAN
        } else {
            1.0
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let s = chain();
    let m = Linear {
        stages: vec![(1.0, 1.0), (1.0, 1.0)],
    };
    let ok = plan("max-load", 1, &[(0, 0, 50, 2), (1, 0, 50, 2)]);
    let unserved = plan("max-load", 1, &[(0, 0, 50, 2)]);
    let err = simulate(&s, &unserved, &m, &cluster(1), &RunConfig::new(1.0, 1.0));
    assert!(matches!(err, Err(SimError::Plan(_))), "{err:?}");
    let err = simulate(&s, &ok, &m, &cluster(1), &RunConfig::new(-1.0, 1.0));
    assert!(matches!(
        err,
        Err(SimError::Config {
            field: "rate_rps",
            ..
        })
    ));
    let err = simulate(&s, &ok, &Broken, &cluster(1), &RunConfig::new(1.0, 1.0));
    let msg = err.expect_err("NaN service").to_string();
    assert!(msg.contains("batch of 2") && msg.contains("\"a\""), "{msg}");
    let err = simulate(&s, &ok, &m, &cluster(1), &RunConfig::new(1e7, 1e3));
    assert!(matches!(err, Err(SimError::TooLarge(_))), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_request_is_accounted_for_and_batches_are_legal(
        rate in 20.0f64..3000.0,
        batches in proptest::collection::vec(1u32..=8, 3),
        wait in 0.0f64..4.0,
        second_gpu in any::<bool>(),
        shared in any::<bool>(),
        limit in 4usize..200,
        seed in 0u64..1000,
    ) {
        let s = spec("fork", 100.0, vec![
            stage("a", &[], 8, wait),
            stage("b", &["a"], 8, wait),
            stage("c", &["a"], 8, wait),
        ]);
        let g = u32::from(second_gpu);
        let policy = if shared { "time-sharing" } else { "max-load" };
        let share = if shared { 100 } else { 30 };
        let p = plan(policy, 2, &[
            (0, 0, share, batches[0]), (1, g, share, batches[1]), (2, 0, share, batches[2]),
        ]);
        let m = Linear { stages: vec![(0.3, 0.1), (0.5, 0.2), (0.2, 0.05)] };
        let cfg = RunConfig { seed, queue_limit: limit, ..RunConfig::new(rate, 1.0) };
        let (run, trace) = simulate_traced(&s, &p, &m, &cluster(2), &cfg).expect("run");
        prop_assert_eq!(run.completed + run.dropped, run.offered);
        check_batching(&s, &p, &trace);
        for i in &trace.items {
            prop_assert!(i.ready <= i.start && i.start <= i.finish);
            prop_assert!(i.ready >= trace.requests[i.request].arrival);
        }
        for r in &trace.requests {
            prop_assert_eq!(r.done.is_some(), !r.dropped);
        }
        prop_assert!(run.e2e_ms.p50 <= run.e2e_ms.p99);
    }
}
