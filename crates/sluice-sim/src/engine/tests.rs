use super::*;
use crate::device::DeviceKind;
use crate::workload::{Arrival, FunctionProfile};
use sluice_core::{FunctionId, GpuId};

fn profile(name: &str, warm_ms: u64, cold_ms: u64, mem_mb: u64) -> FunctionProfile {
    FunctionProfile {
        name: name.into(),
        class: "test".into(),
        gpu_warm: Dur::from_millis(warm_ms),
        cpu_warm: Dur::from_millis(warm_ms * 5),
        cold_start: Dur::from_millis(cold_ms),
        gpu_mem_bytes: mem_mb << 20,
    }
}

fn workload(functions: Vec<FunctionProfile>, arrivals: &[(u64, u32)]) -> Workload {
    Workload {
        name: "test".into(),
        functions,
        arrivals: arrivals
            .iter()
            .map(|&(ms, f)| Arrival {
                at: Time::from_micros(ms * 1000),
                func: FunctionId(f),
            })
            .collect(),
    }
}

fn cfg(policy: &str) -> SchedulerConfig {
    SchedulerConfig {
        policy: policy.into(),
        ..SchedulerConfig::default()
    }
}

fn run_it(w: &Workload, policy: &str, model: &DeviceModel) -> RunResult {
    run(w, &cfg(policy), model, 1, &mut |_| {}).unwrap()
}

#[test]
fn a_lone_invocation_pays_cold_start_then_runs_solo() {
    let w = workload(vec![profile("a", 100, 1_000, 100)], &[(0, 0), (5_000, 0)]);
    let r = run_it(&w, "fcfs", &DeviceModel::default());
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.records[0].latency(), Dur::from_millis(1_100));
    assert!(r.records[0].cold);
    assert_eq!(r.records[1].latency(), Dur::from_millis(100), "warm reuse");
    assert_eq!(r.cold_starts, 1);
    assert_eq!(r.gpu_busy[0], Dur::from_millis(200));
}

#[test]
fn measured_cold_starts_replace_the_catalogues_and_the_ideal_ignores_them() {
    let model = DeviceModel {
        cold_start_samples_ms: vec![250.0],
        ..DeviceModel::default()
    };
    let w = workload(vec![profile("a", 100, 1_000, 100)], &[(0, 0)]);
    let r = run_it(&w, "fcfs", &model);
    assert_eq!(r.records[0].latency(), Dur::from_millis(350));
    let ideal = crate::ideal::run(&w, &cfg("fcfs"), &model, 1).unwrap();
    assert_eq!(ideal.records[0].latency(), Dur::from_millis(100));
}

#[test]
fn the_per_invocation_overhead_adds_to_every_call_and_to_the_ideal() {
    let model = DeviceModel {
        exec_overhead_ms: 20.0,
        ..DeviceModel::default()
    };
    let w = workload(vec![profile("a", 100, 0, 1)], &[(0, 0), (5_000, 0)]);
    let r = run_it(&w, "fcfs", &model);
    for rec in &r.records {
        assert_eq!(rec.finished.since(rec.started), Dur::from_millis(120));
    }
    let ideal = crate::ideal::run(&w, &cfg("fcfs"), &model, 1).unwrap();
    for rec in &ideal.records {
        assert_eq!(rec.latency(), Dur::from_millis(120));
    }
}

#[test]
fn co_running_invocations_share_the_device() {
    let model = DeviceModel {
        concurrency_slowdown: 0.5,
        ..DeviceModel::default()
    };
    let w = workload(
        vec![profile("a", 100, 0, 1), profile("b", 100, 0, 1)],
        &[(0, 0), (0, 1)],
    );
    let r = run_it(&w, "fcfs", &model);
    for rec in &r.records {
        assert_eq!(rec.latency(), Dur::from_millis(150), "each at rate 1/1.5");
    }
    // A third waits for a token (D = 2).
    let w = workload(vec![profile("a", 100, 0, 1)], &[(0, 0), (0, 0), (0, 0)]);
    let r = run_it(&w, "fcfs", &model);
    let mut lat: Vec<_> = r.records.iter().map(|x| x.latency()).collect();
    lat.sort();
    assert_eq!(
        lat,
        vec![
            Dur::from_millis(150),
            Dur::from_millis(150),
            Dur::from_millis(250)
        ]
    );
}

#[test]
fn memory_moves_cost_bandwidth_and_are_counted() {
    // 16 GiB device, two 10 GiB functions alternating: each start pushes the other out.
    let model = DeviceModel {
        memory_gib: 16.0,
        host_device_gbps: 10.0,
        ..DeviceModel::default()
    };
    let w = workload(
        vec![profile("a", 10, 0, 10 << 10), profile("b", 10, 0, 10 << 10)],
        &[(0, 0), (1_000, 1), (10_000, 0)],
    );
    let r = run_it(&w, "fcfs", &model);
    let gib10 = 10u64 << 30;
    assert_eq!(r.bytes_to_host, 2 * gib10);
    assert_eq!(r.bytes_to_device, gib10);
    let third = r.records.iter().find(|x| x.id == 2).unwrap();
    // Push b out (10 GiB) then bring a back (10 GiB) at 10 GB/s, then 10 ms of work.
    let expect = model.transfer(gib10) + model.transfer(gib10) + Dur::from_millis(10);
    assert_eq!(third.latency(), expect);
    assert_eq!(third.bytes_to_device, gib10);
}

#[test]
fn every_policy_completes_every_invocation_deterministically() {
    let fns: Vec<_> = (0..6)
        .map(|i| profile(&format!("f{i}"), 20 + 30 * i, 500, 2_000 + 1_000 * i))
        .collect();
    let arrivals: Vec<(u64, u32)> = (0..600)
        .map(|i| (i * 37 % 20_000, (i * 7 % 6) as u32))
        .collect();
    let mut arrivals = arrivals;
    arrivals.sort();
    let w = workload(fns, &arrivals);
    for policy in sluice_policy::queue::POLICY_NAMES {
        let a = run_it(&w, policy, &DeviceModel::default());
        let b = run_it(&w, policy, &DeviceModel::default());
        assert_eq!(a.records.len(), 600, "{policy} lost invocations");
        assert_eq!(a, b, "{policy} is not deterministic");
        for r in &a.records {
            assert!(
                r.arrival <= r.dispatched && r.dispatched <= r.started && r.started < r.finished
            );
            assert!(r.slowdown() >= 0.999, "{policy}: faster than solo");
        }
    }
}

#[test]
fn cpu_devices_use_cpu_times_and_move_no_memory() {
    let model = DeviceModel {
        kind: DeviceKind::Cpu,
        ..DeviceModel::default()
    };
    let w = workload(vec![profile("a", 100, 0, 100)], &[(0, 0)]);
    let r = run_it(&w, "fcfs", &model);
    assert_eq!(r.records[0].latency(), Dur::from_millis(500));
    assert_eq!(r.bytes_to_device + r.bytes_to_host, 0);
}

#[test]
fn a_sandbox_bought_ahead_is_a_cold_start_no_call_waits_for() {
    // One function, 1 s calls, a 3 s cold start, on four devices that otherwise idle. Two calls
    // measure it; then a call every 600 ms: one sandbox cannot keep up, each call alone is better
    // off in its line (about 1 s) than cold-starting (3 s), and once the waits add up to a cold
    // start a second sandbox is bought ahead. No call cold-starts after the first: the calls
    // whose wait would reach a cold start line up behind the sandbox being bought instead.
    let mut arrivals = vec![(0, 0), (4_500, 0)];
    arrivals.extend((0..20).map(|i| (6_000 + 600 * i, 0)));
    let w = workload(vec![profile("a", 1_000, 3_000, 100)], &arrivals);
    let model = DeviceModel {
        concurrency_slowdown: 0.0,
        ..DeviceModel::default()
    };
    let r = run(&w, &cfg("fcfs"), &model, 4, &mut |_| {}).unwrap();
    let cold: Vec<u64> = r.records.iter().filter(|x| x.cold).map(|x| x.id).collect();
    assert_eq!(cold, vec![0], "only the first call waits for a cold start");
    assert!(
        r.cold_starts >= 2,
        "sandboxes bought ahead count as cold starts"
    );
    let gpus: std::collections::BTreeSet<GpuId> = r.records.iter().map(|x| x.gpu).collect();
    assert!(gpus.len() >= 2, "later calls run in the bought sandboxes");
    // Without a line behind the sandbox being bought, calls 8 and 9 each started their own
    // (3 s) after waiting 1 s: 4 s, as long as the first call's cold start and run.
    let worst = r.records[1..].iter().map(|x| x.latency()).max().unwrap();
    assert!(worst < Dur::from_millis(3_500), "{worst:?}");
}

#[test]
fn prewarmed_sandboxes_are_ready_before_the_first_arrival() {
    let w = workload(
        vec![profile("a", 100, 1_000, 100), profile("b", 50, 2_000, 100)],
        &[(0, 0), (10, 1)],
    );
    let opts = RunOptions {
        prewarm: 1,
        ..RunOptions::default()
    };
    let r = run_with(
        &w,
        &cfg("fcfs"),
        &DeviceModel::default(),
        2,
        opts,
        &mut |_| {},
    )
    .unwrap();
    for rec in &r.records {
        assert!(!rec.cold, "{rec:?}");
        assert_eq!(rec.latency(), rec.solo, "warm at once: {rec:?}");
    }
    assert_eq!(
        r.cold_starts, 2,
        "the prewarmed sandboxes count as cold starts"
    );
    // Without prewarming both pay their cold start.
    let cold = run_it(&w, "fcfs", &DeviceModel::default());
    assert!(cold.records.iter().all(|x| x.cold));
}

#[test]
fn a_prewarm_that_overfills_the_device_moves_and_counts_what_it_displaces() {
    // One 16 GiB device, two 10 GiB functions prewarmed: the second prewarm pushes the first to
    // host at time zero, counted; a's first call pushes b out and brings a back.
    let model = DeviceModel {
        memory_gib: 16.0,
        ..DeviceModel::default()
    };
    let w = workload(
        vec![
            profile("a", 10, 1_000, 10 << 10),
            profile("b", 10, 1_000, 10 << 10),
        ],
        &[(5_000, 0)],
    );
    let opts = RunOptions {
        prewarm: 1,
        ..RunOptions::default()
    };
    let r = run_with(&w, &cfg("fcfs"), &model, 1, opts, &mut |_| {}).unwrap();
    let gib10 = 10u64 << 30;
    assert_eq!(
        r.bytes_to_host,
        2 * gib10,
        "a for b's prewarm, then b for a's call"
    );
    assert_eq!(r.bytes_to_device, gib10, "a brought back for its call");
    assert!(!r.records[0].cold);
}

#[test]
fn a_function_called_every_15_minutes_stays_warm_in_memory_nobody_needs() {
    // Four calls 15 minutes apart: past the 10-minute TTL each time, but the sandbox's memory
    // is resident on a device nobody else uses, so it lingers (spare keep-alive) and only the
    // first call is cold.
    let minute = 60_000;
    let w = workload(
        vec![profile("periodic", 100, 2_000, 1 << 10)],
        &[(0, 0), (15 * minute, 0), (30 * minute, 0), (45 * minute, 0)],
    );
    let r = run_it(&w, "fcfs", &DeviceModel::default());
    let cold: Vec<bool> = r.records.iter().map(|x| x.cold).collect();
    assert_eq!(cold, [true, false, false, false]);
    assert_eq!((r.bytes_to_device, r.bytes_to_host), (0, 0));
    // With the spare TTL off, every call pays the cold start.
    let mut off = cfg("fcfs");
    off.keepalive.spare_ttl_s = 0.0;
    let r = run(&w, &off, &DeviceModel::default(), 1, &mut |_| {}).unwrap();
    assert!(r.records.iter().all(|x| x.cold));
    // An hour and a half apart, past the spare TTL too: cold again.
    let w = workload(
        vec![profile("periodic", 100, 2_000, 1 << 10)],
        &[(0, 0), (90 * minute, 0)],
    );
    let r = run_it(&w, "fcfs", &DeviceModel::default());
    assert!(r.records.iter().all(|x| x.cold));
}

#[test]
fn every_cold_start_has_one_cause_under_every_policy() {
    // Three functions in bursts on two devices, each prewarmed once or not: more calls at once
    // than sandboxes, so more sandboxes than functions.
    let mut arrivals = Vec::new();
    for burst in 0..4u64 {
        let at = burst * 700_000;
        for k in 0..12u64 {
            arrivals.push((at + k * 20, (k % 3) as u32));
        }
    }
    let w = workload(
        vec![
            profile("a", 300, 1_500, 4 << 10),
            profile("b", 40, 800, 6 << 10),
            profile("c", 900, 2_500, 8 << 10),
        ],
        &arrivals,
    );
    let model = DeviceModel {
        memory_gib: 16.0,
        ..DeviceModel::default()
    };
    for &policy in sluice_policy::queue::POLICY_NAMES {
        for prewarm in [0, 1] {
            let opts = RunOptions {
                prewarm,
                ..RunOptions::default()
            };
            let r = run_with(&w, &cfg(policy), &model, 2, opts, &mut |_| {}).unwrap();
            let c = r.cold_causes.expect("a simulated run counts causes");
            assert_eq!(
                c.total(),
                r.cold_starts,
                "{policy}, prewarm {prewarm}: {c:?}"
            );
            assert_eq!(c.prewarm, 3 * u64::from(prewarm), "{policy}: {c:?}");
            assert_eq!(c.first, 3 * u64::from(1 - prewarm), "{policy}: {c:?}");
            assert!(
                c.total() > 3,
                "more than one sandbox per function: {policy}: {c:?}"
            );
        }
    }
    let ideal = crate::ideal::run(&w, &cfg("fcfs"), &model, 2).unwrap();
    assert_eq!(ideal.cold_causes, None, "the ideal pays no cold start");
}
