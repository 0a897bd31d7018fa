//! Co-running debt (`spread`): a function that keeps co-running on a busy device while other
//! devices idle pays for one cold start on an idle device, and not otherwise.

use super::test_support::{ms, poll, poll_all, MB};
use super::*;
use crate::placement::{Key, PlacementParams};

const GPUS: usize = 4;
/// Execution and cold start of the function that co-runs (ms).
const EXEC: u64 = 100;
const COLD: u64 = 1_000;

fn sched() -> Scheduler {
    let cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(&cfg, vec![1000 * MB; GPUS]).unwrap();
    for f in 0..64 {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    s
}

fn home(f: u32) -> GpuId {
    let ring = placing::device_ring(&PlacementParams::default(), GPUS, 2).unwrap();
    *ring.home(Key::of_u64(u64::from(f))).unwrap()
}

/// Two functions with the same home device.
fn colliding() -> (FunctionId, FunctionId) {
    let a = 0;
    let b = (1..64)
        .find(|&b| home(b) == home(a))
        .expect("64 functions on 4 devices");
    (FunctionId(a), FunctionId(b))
}

/// Runs one invocation `id` of `f` submitted at `at`, starting it (and its sandbox, if cold,
/// after [`COLD`]) and finishing it after [`EXEC`]; returns its start and when it finished.
fn run_one(s: &mut Scheduler, f: FunctionId, id: u64, at: Time) -> (Start, Time) {
    run_for(s, f, id, at, EXEC)
}

/// [`run_one`] with an execution of `exec` ms; nothing is bought ahead.
fn run_for(s: &mut Scheduler, f: FunctionId, id: u64, at: Time, exec: u64) -> (Start, Time) {
    let (st, bought, t) = run_buying(s, f, id, at, exec);
    assert!(bought.is_empty(), "invocation {id} bought {bought:?}");
    (st, t)
}

/// [`run_for`], also returning the sandboxes bought ahead when it started (not yet ready).
fn run_buying(
    s: &mut Scheduler,
    f: FunctionId,
    id: u64,
    at: Time,
    exec: u64,
) -> (Start, Vec<Create>, Time) {
    s.submit(InvocationId(id), f, at);
    let (st, bought) = poll_all(s, at);
    assert_eq!(st.len(), 1, "invocation {id} starts at once");
    let st = st.into_iter().next().unwrap();
    let mut t = at;
    if st.cold {
        t += Dur::from_millis(COLD);
        s.sandbox_ready(st.sandbox);
        poll(s, t);
    }
    t += Dur::from_millis(exec);
    s.finished(st.sandbox, f, Dur::from_millis(exec), t);
    poll(s, t);
    (st, bought, t)
}

/// `a` runs twice alone on its home (its cold start measured, its sandbox left idle there), then
/// `b`, with the same home, starts there and runs on.
fn a_warm_at_home_beside_b(s: &mut Scheduler, a: FunctionId, b: FunctionId) -> Time {
    let (first, t) = run_one(s, a, 0, ms(0));
    assert_eq!((first.gpu, first.cold), (home(a.0), true));
    let (second, t) = run_one(s, a, 1, t);
    assert_eq!((second.gpu, second.cold), (home(a.0), false));
    s.submit(InvocationId(2), b, t);
    let st = poll(s, t);
    assert_eq!(st.len(), 1);
    assert_eq!(
        st[0].gpu,
        home(b.0),
        "b starts on the home it shares with a"
    );
    s.sandbox_ready(st[0].sandbox);
    poll(s, t);
    t
}

#[test]
fn a_function_co_running_beside_idle_devices_buys_a_sandbox_once_the_cost_reaches_a_cold_start() {
    let (a, b) = colliding();
    let mut s = sched();
    let mut t = a_warm_at_home_beside_b(&mut s, a, b);
    let shared = home(a.0);
    // The debt: a's service-time estimate at each start beside b.
    let (mut debt, mut co_runs) = (Dur::ZERO, 0);
    let bought = loop {
        let est = s.estimate(a);
        let (st, bought, end) = run_buying(&mut s, a, 10 + co_runs, t, EXEC);
        debt += est;
        assert_eq!(
            (st.gpu, st.cold),
            (shared, false),
            "co-running beside b uses a's warm sandbox, also the start that buys"
        );
        if let Some(&c) = bought.first() {
            assert_eq!(bought.len(), 1);
            break c;
        }
        t = end;
        assert!(
            debt < Dur::from_millis(COLD),
            "a buys once a cold start's worth is paid"
        );
        co_runs += 1;
        assert!(co_runs < 30, "a never left the device it shares with b");
    };
    assert!(debt >= Dur::from_millis(COLD), "not before");
    assert!(co_runs >= 5, "estimates near {EXEC} ms: {co_runs} co-runs");
    assert_eq!(bought.func, a);
    assert_ne!(bought.gpu, shared);
    assert_eq!(s.tokens_in_use(bought.gpu), 0, "on a device that was idle");
    // Once the bought sandbox is ready, a starts warm there, not beside b.
    t += Dur::from_millis(COLD);
    s.prewarm_done(bought.sandbox, t);
    poll(&mut s, t);
    for i in 0..5 {
        let (st, end) = run_one(&mut s, a, 100 + i, t);
        t = end;
        assert_eq!(
            (st.gpu, st.sandbox, st.cold),
            (bought.gpu, bought.sandbox, false)
        );
    }
}

#[test]
fn a_function_co_runs_for_good_when_most_devices_are_busy() {
    let (a, b) = colliding();
    let mut s = sched();
    let mut t = a_warm_at_home_beside_b(&mut s, a, b);
    // Two more long invocations keep three of the four devices busy.
    let others: Vec<u32> = (1..64)
        .filter(|&f| FunctionId(f) != b && home(f) != home(a.0))
        .collect();
    let mut busy = std::collections::BTreeSet::from([home(a.0)]);
    for (i, &f) in others.iter().enumerate() {
        if busy.len() == 3 {
            break;
        }
        if busy.contains(&home(f)) {
            continue;
        }
        s.submit(InvocationId(1_000 + i as u64), FunctionId(f), t);
        let st = poll(&mut s, t);
        assert_eq!(st.len(), 1);
        busy.insert(st[0].gpu);
        s.sandbox_ready(st[0].sandbox);
        poll(&mut s, t);
    }
    assert_eq!(busy.len(), 3);
    for i in 0..3 * COLD / EXEC {
        let (st, end) = run_one(&mut s, a, 10 + i, t);
        t = end;
        assert_eq!(
            (st.gpu, st.cold),
            (home(a.0), false),
            "with one device idle of four, a stays warm beside b"
        );
    }
}

/// Execution of `b` in the overlap tests (ms).
const SHORT: u64 = 10;

/// `a`'s cold start measured and its warm sandbox idle at home; `b`, with the same home, ran
/// six calls of [`SHORT`] ms (its cold start and service time measured). Returns the time.
fn a_warm_and_b_short(s: &mut Scheduler, a: FunctionId, b: FunctionId) -> Time {
    let (_, mut t) = run_one(s, a, 0, ms(0));
    (_, t) = run_one(s, a, 1, t);
    for i in 0..6 {
        (_, t) = run_for(s, b, 2 + i, t, SHORT);
    }
    t
}

#[test]
fn co_running_beside_shorter_work_costs_only_the_overlap() {
    let (a, b) = colliding();
    let mut s = sched();
    let mut t = a_warm_and_b_short(&mut s, a, b);
    assert!(
        s.estimate(b) < Dur::from_millis(3 * SHORT),
        "b is known to be short"
    );
    let shared = home(a.0);
    // Each time a starts, b has just started beside it and ends SHORT ms later: a co-runs for
    // about SHORT ms, not its own service time, so twenty such starts (far more than a cold
    // start's worth of a's service time) leave the debt well under a cold start.
    for i in 0..20 {
        s.submit(InvocationId(100 + i), b, t);
        let sb = poll(&mut s, t).remove(0);
        assert_eq!((sb.gpu, sb.cold), (shared, false));
        s.submit(InvocationId(200 + i), a, t);
        let sa = poll(&mut s, t).remove(0);
        assert_eq!(
            (sa.gpu, sa.cold),
            (shared, false),
            "start {i}: a stays warm beside b's short calls"
        );
        s.finished(
            sb.sandbox,
            b,
            Dur::from_millis(SHORT),
            t + Dur::from_millis(SHORT),
        );
        poll(&mut s, t + Dur::from_millis(SHORT));
        t += Dur::from_millis(EXEC);
        s.finished(sa.sandbox, a, Dur::from_millis(EXEC), t);
        poll(&mut s, t);
    }
}

#[test]
fn co_running_beside_work_past_its_expected_end_costs_the_whole_service() {
    let (a, b) = colliding();
    let mut s = sched();
    let mut t = a_warm_and_b_short(&mut s, a, b);
    let shared = home(a.0);
    // b starts a call expected to take about SHORT ms that goes on and on.
    s.submit(InvocationId(50), b, t);
    let hung = poll(&mut s, t).remove(0);
    assert_eq!(hung.gpu, shared);
    t += Dur::from_millis(100);
    // a co-runs beside it, each time for its whole service: how long b still runs is unknown.
    let mut co_runs = 0;
    let bought = loop {
        let (st, bought, end) = run_buying(&mut s, a, 100 + co_runs, t, EXEC);
        t = end;
        assert_eq!((st.gpu, st.cold), (shared, false), "a co-runs warm");
        if let Some(&c) = bought.first() {
            break c;
        }
        co_runs += 1;
        assert!(
            co_runs < 30,
            "a never bought a sandbox off the device b holds"
        );
    };
    assert!(
        bought.gpu != shared && co_runs <= COLD / EXEC,
        "a paid for a sandbox on an idle device after {co_runs} co-runs"
    );
}
