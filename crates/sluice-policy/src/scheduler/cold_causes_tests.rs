//! Each cold start is counted under the cause the scheduler chose it from: the function's
//! first sandbox, one after all of its sandboxes were destroyed, one beside sandboxes that were
//! all busy, one while an idle sandbox waited on a device with no free token, and the
//! creations with no invocation waiting (prewarm).

use super::test_support::{ms, poll, MB};
use super::*;

/// FCFS on `gpus` devices of one token each, a 10 s TTL and no spare keep-alive, with
/// functions 0..8 of 100 MB registered.
fn sched(gpus: usize) -> Scheduler {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.slots.tokens_per_gpu = 1;
    cfg.keepalive.ttl_s = 10.0;
    cfg.keepalive.spare_ttl_s = 10.0;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB; gpus]).unwrap();
    for f in 0..8 {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    s
}

/// Submits invocation `id` of `f` at `now`, polls, and returns its start (asserting one).
fn start(s: &mut Scheduler, id: u64, f: FunctionId, now: Time) -> Start {
    s.submit(InvocationId(id), f, now);
    let mut st = poll(s, now);
    assert_eq!(st.len(), 1, "invocation {id} starts");
    st.remove(0)
}

/// Runs a start to its end at `end`.
fn run(s: &mut Scheduler, st: &Start, end: Time) {
    if st.cold {
        assert!(s.sandbox_ready(st.sandbox), "a free token: it runs at once");
    }
    s.finished(st.sandbox, st.inv.func, Dur::from_millis(5), end);
}

fn causes(first: u64, gone: u64, concurrent: u64, elsewhere: u64) -> ColdCauses {
    ColdCauses {
        first,
        gone,
        concurrent,
        elsewhere,
        ..ColdCauses::default()
    }
}

#[test]
fn first_then_warm_then_gone_after_the_ttl() {
    let mut s = sched(1);
    let f = FunctionId(0);
    let a = start(&mut s, 0, f, ms(0));
    assert!(a.cold);
    assert_eq!(s.cold_causes(), causes(1, 0, 0, 0));
    run(&mut s, &a, ms(100));
    let b = start(&mut s, 1, f, ms(200));
    assert!(!b.cold, "its idle sandbox is reused: no cause counted");
    run(&mut s, &b, ms(300));
    assert_eq!(s.cold_causes(), causes(1, 0, 0, 0));
    // Past the TTL the sandbox is destroyed; the next call pays for that.
    assert!(poll(&mut s, ms(20_000)).is_empty());
    assert_eq!(s.pool().len(), 0, "the TTL destroyed it");
    let c = start(&mut s, 2, f, ms(20_001));
    assert!(c.cold);
    assert_eq!(s.cold_causes(), causes(1, 1, 0, 0));
    assert_eq!(s.cold_causes().total(), 2);
}

#[test]
fn a_second_sandbox_beside_a_busy_one_is_concurrent() {
    let mut s = sched(2);
    let f = FunctionId(0);
    let a = start(&mut s, 0, f, ms(0));
    assert!(s.sandbox_ready(a.sandbox));
    // f's only sandbox runs; its second call takes the other device's token.
    let b = start(&mut s, 1, f, ms(1));
    assert!(b.cold);
    assert_ne!(a.gpu, b.gpu);
    assert_eq!(s.cold_causes(), causes(1, 0, 1, 0));
}

#[test]
fn an_idle_sandbox_on_a_device_with_no_free_token_makes_a_cold_start_elsewhere() {
    let mut s = sched(2);
    let f = FunctionId(0);
    let a = start(&mut s, 0, f, ms(0));
    run(&mut s, &a, ms(100));
    let home = a.gpu;
    // A function with the same home takes that device's only token (its first sandbox: nothing
    // knows when it ends, so no call waits for the token).
    let g = (1..8)
        .map(FunctionId)
        .find(|&g| s.home_of(g) == Some(home))
        .expect("some function shares f's home among seven");
    let busy = start(&mut s, 1, g, ms(200));
    assert_eq!(busy.gpu, home);
    assert!(s.sandbox_ready(busy.sandbox), "ready, it holds the token");
    assert_eq!(s.tokens_in_use(home), 1);
    assert!(s.pool().has_idle(f, home));
    let b = start(&mut s, 2, f, ms(201));
    assert!(b.cold);
    assert_ne!(b.gpu, home);
    assert_eq!(s.cold_causes(), causes(2, 0, 0, 1), "g first, f elsewhere");
}

#[test]
fn a_prewarm_is_counted_apart_and_the_functions_later_cold_start_is_not_its_first() {
    let mut s = sched(1);
    let f = FunctionId(0);
    let mut out = Vec::new();
    let (sb, _) = s.prewarm(f, ms(0), &mut out).expect("room for a prewarm");
    s.prewarm_done(sb, ms(50));
    assert_eq!(
        s.cold_causes(),
        ColdCauses {
            prewarm: 1,
            ..ColdCauses::default()
        }
    );
    let a = start(&mut s, 0, f, ms(100));
    assert!(!a.cold, "the prewarmed sandbox serves it");
    run(&mut s, &a, ms(200));
    assert!(poll(&mut s, ms(20_000)).is_empty());
    let b = start(&mut s, 1, f, ms(20_001));
    assert!(b.cold);
    assert_eq!(s.cold_causes().gone, 1);
    assert_eq!(s.cold_causes().total(), 2);
}

#[test]
fn a_cold_start_that_cannot_be_admitted_is_not_counted() {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.slots.tokens_per_gpu = 1;
    let mut s = Scheduler::new(&cfg, vec![100 * MB]).unwrap();
    let info = FunctionInfo {
        gpu_mem_bytes: 200 * MB,
        ..Default::default()
    };
    s.register(FunctionId(0), info);
    s.submit(InvocationId(0), FunctionId(0), ms(0));
    let mut out = Vec::new();
    s.poll(ms(0), &mut out);
    assert!(
        matches!(out.as_slice(), [Action::Reject(_)]),
        "fits no device: {out:?}"
    );
    assert_eq!(s.cold_causes().total(), 0);
}

#[test]
fn each_cause_is_named_as_in_the_json_and_counted_once_in_the_total() {
    let c = ColdCauses {
        first: 1,
        gone: 2,
        concurrent: 4,
        elsewhere: 8,
        ahead: 16,
        prewarm: 32,
    };
    let json = serde_json::to_value(c).unwrap();
    let named = c.by_name();
    assert_eq!(json.as_object().unwrap().len(), named.len());
    for (name, n) in named {
        assert_eq!(json[name], n, "{name}");
    }
    assert_eq!(c.total(), 63);
    let mut twice = c;
    twice.add(&c);
    assert_eq!(twice.total(), 126);
}
