//! Functions with `concurrency` > 1: several invocations share one sandbox, each still holding
//! its own device token.

use super::test_support::{ms, poll, MB};
use super::*;
use sluice_core::Dur;

const F: FunctionId = FunctionId(0);
const G: GpuId = GpuId(0);

fn sched(policy: &str, concurrency: u32) -> Scheduler {
    let mut cfg = SchedulerConfig {
        policy: policy.into(),
        ..SchedulerConfig::default()
    };
    // Cold starts hold their token here (the former contract; `creating_tests` has the default).
    cfg.slots.cold_start_holds_token = true;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    for f in 0..2 {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            concurrency: if f == 0 { concurrency } else { 1 },
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    s
}

/// One cold start of F, ready; returns its sandbox.
fn first_start(s: &mut Scheduler) -> SandboxId {
    s.submit(InvocationId(0), F, ms(0));
    let st = poll(s, ms(0));
    assert_eq!((st.len(), st[0].cold), (1, true));
    s.sandbox_ready(st[0].sandbox);
    st[0].sandbox
}

#[test]
fn concurrency_two_shares_one_sandbox_and_tokens_still_limit() {
    let mut s = sched("fcfs", 2);
    let a = first_start(&mut s);
    s.submit(InvocationId(1), F, ms(1));
    s.submit(InvocationId(2), F, ms(1));
    let st = poll(&mut s, ms(1));
    assert_eq!(st.len(), 1, "D = 2 tokens: the third invocation waits");
    assert_eq!((st[0].sandbox, st[0].cold), (a, false), "shared, not cold");
    assert!(st[0].moves.is_empty());
    assert_eq!(s.tokens_in_use(G), 2);
    assert_eq!(s.pool().get(a).map(|sb| sb.running), Some(2));
    assert_eq!(s.pool().counts(), (0, 0, 1), "one sandbox");
    assert_eq!(s.memory().resident(G), 100 * MB, "its memory counted once");
    s.finished(a, F, Dur::from_millis(5), ms(5));
    let st = poll(&mut s, ms(5));
    assert_eq!((st.len(), st[0].sandbox, st[0].cold), (1, a, false));
    s.finished(a, F, Dur::from_millis(5), ms(6));
    s.finished(a, F, Dur::from_millis(5), ms(7));
    assert_eq!(s.tokens_in_use(G), 0);
    assert_eq!(
        s.pool().counts(),
        (0, 1, 0),
        "idle after its last invocation"
    );
    assert_eq!(s.memory().running(a), 0);
}

#[test]
fn concurrency_one_starts_a_second_sandbox() {
    let mut s = sched("fcfs", 1);
    let a = first_start(&mut s);
    s.submit(InvocationId(1), F, ms(1));
    let st = poll(&mut s, ms(1));
    assert!(st[0].cold && st[0].sandbox != a);
}

#[test]
fn a_failed_shared_sandbox_frees_each_token_once() {
    let mut s = sched("fcfs", 3);
    let a = first_start(&mut s);
    s.submit(InvocationId(1), F, ms(1));
    assert_eq!(poll(&mut s, ms(1))[0].sandbox, a);
    s.sandbox_failed(a, F, ms(2));
    assert_eq!(
        s.tokens_in_use(G),
        1,
        "the other invocation still holds its token"
    );
    assert!(s.pool().get(a).is_none() && s.memory().location(a).is_none());
    s.submit(InvocationId(2), F, ms(3));
    let st = poll(&mut s, ms(3));
    assert!(
        st[0].cold && st[0].sandbox != a,
        "never sent to the failed sandbox"
    );
    // The other invocation is reported as it ends, finished or failed; extra reports are no-ops.
    s.finished(a, F, Dur::from_millis(1), ms(4));
    assert_eq!(s.tokens_in_use(G), 1);
    s.sandbox_failed(a, F, ms(5));
    s.finished(a, F, Dur::from_millis(1), ms(5));
    assert_eq!(s.tokens_in_use(G), 1, "only the new start's token");
}

#[test]
fn sticky_flows_count_a_sandbox_with_spare_capacity_as_warm() {
    let mut s = sched("mqfq-sticky", 2);
    let a = first_start(&mut s);
    // Function 1 arrives first and has the smaller start tag; function 0 is the flow last
    // served on the device and its running sandbox can take one more invocation.
    s.submit(InvocationId(1), FunctionId(1), ms(1));
    s.submit(InvocationId(2), F, ms(2));
    let st = poll(&mut s, ms(2));
    assert_eq!(st.len(), 1);
    assert_eq!((st[0].inv.func, st[0].sandbox, st[0].cold), (F, a, false));
}
