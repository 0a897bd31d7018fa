//! Token lines through the scheduler: waiting for a token on the device of a function's idle
//! sandbox instead of cold-starting it on another, and giving up after a cold start's time.

use super::test_support::{ms, poll, MB};
use super::*;
use crate::placement::{Key, PlacementParams};

/// Two GPUs with one token each; `f` and `g` share a home device (returned).
fn two_gpus_one_token() -> (Scheduler, FunctionId, FunctionId, GpuId) {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.slots.tokens_per_gpu = 1;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB; 2]).unwrap();
    let ring = placing::device_ring(&PlacementParams::default(), 2, 1).unwrap();
    let home = |f: u32| *ring.home(Key::of_u64(u64::from(f))).unwrap();
    let f = 0;
    let g = (1..64).find(|&g| home(g) == home(f)).unwrap();
    for x in [f, g] {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(x), info);
    }
    (s, FunctionId(f), FunctionId(g), home(f))
}

/// [`two_gpus_one_token`] with both functions measured (3 s cold starts; g runs 100 ms, f 5 ms,
/// twice so its estimate holds) and idle on their home; also returns f's warm sandbox.
fn measured() -> (Scheduler, FunctionId, FunctionId, GpuId, SandboxId) {
    let (mut s, f, g, home) = two_gpus_one_token();
    run(&mut s, 0, g, 0, 100);
    let warm_f = run(&mut s, 1, f, 4_000, 5).sandbox;
    assert!(!run(&mut s, 2, f, 8_000, 5).cold);
    (s, f, g, home, warm_f)
}

/// Runs one invocation of `func` submitted at `at` to completion after `exec` (plus 3 s if
/// it starts cold); returns its start.
fn run(s: &mut Scheduler, id: u64, func: FunctionId, at: u64, exec: u64) -> Start {
    s.submit(InvocationId(id), func, ms(at));
    let st = poll(s, ms(at)).remove(0);
    let end = at + exec + if st.cold { 3_000 } else { 0 };
    if st.cold {
        s.sandbox_ready(st.sandbox);
    }
    s.finished(st.sandbox, func, Dur::from_millis(exec), ms(end));
    st
}

#[test]
fn an_invocation_waits_for_a_token_where_its_sandbox_is_rather_than_cold_start_elsewhere() {
    let (mut s, f, g, home, warm_f) = measured();
    // g takes the home's only token; f's idle sandbox is there too, the other GPU is free.
    let g_run = poll_one(&mut s, 3, g, 9_000);
    assert_eq!((g_run.gpu, g_run.cold), (home, false));
    s.submit(InvocationId(4), f, ms(9_001));
    assert!(
        poll(&mut s, ms(9_001)).is_empty(),
        "about 100 ms for the token beats a 3 s cold start on the other GPU"
    );
    assert_eq!((s.in_lines(), s.queued()), (1, 1));
    s.finished(g_run.sandbox, g, Dur::from_millis(100), ms(9_100));
    let st = poll(&mut s, ms(9_100));
    assert_eq!(st.len(), 1);
    assert_eq!((st[0].inv.id, st[0].gpu), (InvocationId(4), home));
    assert_eq!((st[0].sandbox, st[0].cold), (warm_f, false));
    assert_eq!((s.in_lines(), s.queued()), (0, 0));
}

#[test]
fn a_token_line_gives_up_after_a_cold_start_and_starts_elsewhere() {
    let (mut s, f, g, home, _) = measured();
    // g hangs on the home's token far past its 100 ms estimate.
    let g_run = poll_one(&mut s, 3, g, 9_000);
    assert_eq!(g_run.gpu, home);
    s.submit(InvocationId(4), f, ms(9_001));
    assert!(poll(&mut s, ms(9_001)).is_empty());
    let give_up = s.next_timer().expect("the wait is bounded");
    assert!(give_up <= ms(12_001), "{give_up:?}");
    let st = poll(&mut s, give_up);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].inv.id, InvocationId(4));
    assert!(st[0].cold && st[0].gpu != home);
    assert_eq!(s.in_lines(), 0);
}

#[test]
fn a_cancelled_invocation_leaves_its_token_line_without_a_token() {
    let (mut s, f, g, home, _) = measured();
    let g_run = poll_one(&mut s, 3, g, 9_000);
    s.submit(InvocationId(4), f, ms(9_001));
    assert!(poll(&mut s, ms(9_001)).is_empty());
    assert!(s.cancel(InvocationId(4)));
    s.finished(g_run.sandbox, g, Dur::from_millis(100), ms(9_100));
    assert!(poll(&mut s, ms(9_100)).is_empty());
    assert_eq!((s.in_lines(), s.queued(), s.tokens_in_use(home)), (0, 0, 0));
}

fn poll_one(s: &mut Scheduler, id: u64, func: FunctionId, at: u64) -> Start {
    s.submit(InvocationId(id), func, ms(at));
    let mut st = poll(s, ms(at));
    assert_eq!(st.len(), 1);
    st.remove(0)
}
