//! No invocation blocks others: impossible ones are rejected, functions that cannot be placed
//! now are set aside while others start, cancelled ones are dropped for free, a dead warm
//! sandbox gives its invocation back, and the admission prediction follows the queue.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const MB: u64 = 1 << 20;

fn ms(x: u64) -> Time {
    Time::from_micros(x * 1_000)
}

/// Cold starts hold their token here (the former contract) unless a test says otherwise.
fn sched(policy: &str, gpus: usize, mem_mb: u64, creates: usize) -> Scheduler {
    sched_with(policy, gpus, mem_mb, creates, true)
}

fn sched_with(policy: &str, gpus: usize, mem_mb: u64, creates: usize, holds: bool) -> Scheduler {
    let mut cfg = SchedulerConfig {
        policy: policy.into(),
        ..SchedulerConfig::default()
    };
    cfg.keepalive.max_concurrent_creates = Some(creates);
    cfg.slots.cold_start_holds_token = holds;
    Scheduler::new(&cfg, vec![mem_mb * MB; gpus]).unwrap()
}

fn info(mb: u64) -> FunctionInfo {
    FunctionInfo {
        gpu_mem_bytes: mb * MB,
        ..Default::default()
    }
}

fn poll(s: &mut Scheduler, now: Time) -> Vec<Action> {
    let mut out = Vec::new();
    s.poll(now, &mut out);
    out
}

fn starts(actions: &[Action]) -> Vec<Start> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn rejects(actions: &[Action]) -> Vec<Reject> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reject(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[test]
fn an_impossible_invocation_is_rejected_and_the_next_one_starts() {
    for policy in crate::queue::POLICY_NAMES {
        let mut s = sched(policy, 1, 1000, 4);
        s.register(FunctionId(0), info(2000));
        s.register(FunctionId(1), info(100));
        s.submit(InvocationId(0), FunctionId(0), ms(0));
        s.submit(InvocationId(1), FunctionId(1), ms(1));
        let out = poll(&mut s, ms(1));
        let r = rejects(&out);
        assert_eq!(r.len(), 1, "{policy}");
        assert_eq!(r[0].inv.id, InvocationId(0));
        assert_eq!(
            r[0].reason,
            RejectReason::TooLarge {
                need: 2000 * MB,
                largest: 1000 * MB
            }
        );
        assert!(
            r[0].reason.to_string().contains("2000 MiB"),
            "{}",
            r[0].reason
        );
        let st = starts(&out);
        assert_eq!(st.len(), 1, "{policy}");
        assert_eq!(st[0].inv.id, InvocationId(1));
        assert_eq!((s.queued(), s.tokens_in_use(GpuId(0))), (0, 1), "{policy}");
    }
}

#[test]
fn a_function_that_cannot_start_now_does_not_block_another() {
    for policy in crate::queue::POLICY_NAMES {
        let mut s = sched(policy, 1, 1000, 1);
        s.register(FunctionId(0), info(100));
        s.register(FunctionId(1), info(100));
        // Function 1 gets a warm sandbox; then a cold start of function 0 holds the only
        // creation slot.
        s.submit(InvocationId(0), FunctionId(1), ms(0));
        let warm = starts(&poll(&mut s, ms(0)))[0].sandbox;
        s.sandbox_ready(warm);
        s.finished(warm, FunctionId(1), Dur::from_millis(1), ms(1));
        s.submit(InvocationId(1), FunctionId(0), ms(2));
        assert_eq!(starts(&poll(&mut s, ms(2))).len(), 1, "{policy}");
        // Function 0's next invocation needs a second cold start and arrived first; function
        // 1's can start warm now.
        s.submit(InvocationId(2), FunctionId(0), ms(3));
        s.submit(InvocationId(3), FunctionId(1), ms(4));
        let st = starts(&poll(&mut s, ms(4)));
        assert_eq!(st.len(), 1, "{policy}: {st:?}");
        assert_eq!((st[0].inv.id, st[0].sandbox), (InvocationId(3), warm));
        assert_eq!(s.queued(), 1, "{policy}");
    }
}

#[test]
fn cancelled_invocations_leave_without_a_token_or_a_sample() {
    let mut s = sched("fcfs", 1, 1000, 4);
    for i in 0..3 {
        s.submit(InvocationId(i), FunctionId(0), ms(0));
    }
    let before = s.estimate(FunctionId(0));
    assert!(s.cancel(InvocationId(1)));
    assert!(!s.cancel(InvocationId(1)), "only once");
    assert_eq!(s.queued(), 2);
    let ids: Vec<_> = starts(&poll(&mut s, ms(0)))
        .iter()
        .map(|x| x.inv.id)
        .collect();
    assert_eq!(ids, [InvocationId(0), InvocationId(2)]);
    assert!(!s.cancel(InvocationId(0)), "already dispatched");
    assert_eq!((s.queued(), s.tokens_in_use(GpuId(0))), (0, 2));
    assert_eq!(s.estimate(FunctionId(0)), before);
    assert_eq!(s.backlog().queued_work(), Dur::ZERO);
}

#[test]
fn a_dead_warm_sandbox_puts_its_invocation_back_at_the_head() {
    let mut s = sched("fcfs", 1, 1000, 4);
    s.register(FunctionId(0), info(100));
    s.submit(InvocationId(0), FunctionId(0), ms(0));
    let sb = starts(&poll(&mut s, ms(0)))[0].sandbox;
    s.sandbox_ready(sb);
    s.finished(sb, FunctionId(0), Dur::from_millis(5), ms(5));
    s.submit(InvocationId(1), FunctionId(0), ms(6));
    s.submit(InvocationId(2), FunctionId(0), ms(7));
    let st = starts(&poll(&mut s, ms(7)));
    let warm = st.iter().find(|x| x.sandbox == sb).cloned().unwrap();
    assert_eq!(warm.inv.id, InvocationId(1));
    s.sandbox_gone(sb, warm.inv, ms(8));
    assert!(s.pool().get(sb).is_none() && s.memory().location(sb).is_none());
    assert_eq!((s.queued(), s.tokens_in_use(GpuId(0))), (1, 1));
    let again = starts(&poll(&mut s, ms(8)));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].inv.id, InvocationId(1), "it kept its place");
    assert!(again[0].cold && again[0].sandbox != sb);
}

#[test]
fn the_prediction_follows_queued_and_running_work() {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.estimator.default_ms = 100.0;
    cfg.slots.cold_start_holds_token = true;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    assert_eq!(s.tokens(), 2);
    for i in 0..10 {
        s.submit(InvocationId(i), FunctionId(0), ms(0));
    }
    assert_eq!(s.predict_wait(FunctionId(0)), Dur::from_millis(500));
    let st = starts(&poll(&mut s, ms(0)));
    // 8 queued × 100 ms + 2 running × 100 ms / 2, over 2 tokens.
    assert_eq!(s.predict_wait(FunctionId(0)), Dur::from_millis(450));
    s.sandbox_ready(st[0].sandbox);
    s.finished(st[0].sandbox, FunctionId(0), Dur::from_millis(100), ms(100));
    assert_eq!(s.predict_wait(FunctionId(0)), Dur::from_millis(425));
    for i in 2..10 {
        s.cancel(InvocationId(i));
    }
    assert_eq!(s.predict_wait(FunctionId(0)), Dur::from_millis(25));
    let est = s.reserve(FunctionId(0));
    assert_eq!(
        s.predict_wait(FunctionId(0)),
        Dur::from_millis(75),
        "a reservation counts"
    );
    s.release(FunctionId(0), est);
    assert_eq!(s.predict_wait(FunctionId(0)), Dur::from_millis(25));
}

/// What the progress property drives: a registration, an arrival, a cancellation, or time
/// passing (sandboxes finish starting, invocations finish).
#[derive(Clone, Debug)]
enum Op {
    Register(u32, u64),
    Submit(u32),
    Cancel(u64),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    // Sandbox sizes: nothing, fits, fits one at a time, and two that fit no 300 MB device.
    let mb = prop::sample::select(vec![0u64, 100, 250, 400, 1 << 20]);
    prop_oneof![
        1 => (0u32..5, mb).prop_map(|(f, m)| Op::Register(f, m)),
        6 => (0u32..5).prop_map(Op::Submit),
        1 => (0u64..60).prop_map(Op::Cancel),
        3 => Just(Op::Tick),
    ]
}

proptest! {
    /// Whatever is registered and invoked — including functions no device can hold, and
    /// functions changing size while invocations wait — every invocation ends exactly once:
    /// started, rejected (only while its function fits no device) or cancelled; and once
    /// arrivals stop and running work drains, nothing is left waiting.
    #[test]
    fn every_placeable_invocation_eventually_starts(
        policy in prop::sample::select(crate::queue::POLICY_NAMES),
        ops in proptest::collection::vec(op(), 1..150),
        gpus in 1usize..3,
        creates in 1usize..3,
        holds in any::<bool>(),
    ) {
        let mut s = sched_with(policy, gpus, 300, creates, holds);
        let mut size = [100u64; 5];
        for (f, mb) in size.iter().enumerate() {
            s.register(FunctionId(f as u32), info(*mb));
        }
        let mut now = Time::ZERO;
        let mut next_id = 0u64;
        let (mut starting, mut running) = (Vec::<Start>::new(), Vec::<Start>::new());
        let mut ended = BTreeMap::new();
        let mut cancelled = BTreeSet::new();
        // Cold starts whose sandbox is ready and which wait for a token.
        let mut parked = BTreeSet::new();
        // Sandboxes created: cold starts, and bought ahead.
        let mut made = [0u64; 2];
        for o in ops {
            match o {
                Op::Register(f, mb) => {
                    size[f as usize] = mb;
                    s.register(FunctionId(f), info(mb));
                }
                Op::Submit(f) => {
                    s.submit(InvocationId(next_id), FunctionId(f), now);
                    next_id += 1;
                }
                Op::Cancel(id) => {
                    if s.cancel(InvocationId(id)) {
                        cancelled.insert(id);
                    }
                }
                Op::Tick => {
                    now += Dur::from_millis(10);
                    if let Some(st) = (!starting.is_empty()).then(|| starting.remove(0)) {
                        ready(&mut s, st, &mut running, &mut parked);
                    } else if let Some(st) = (!running.is_empty()).then(|| running.remove(0)) {
                        s.finished(st.sandbox, st.inv.func, Dur::from_millis(3), now);
                    }
                }
            }
            step(&mut s, now, &mut ended, &mut starting, &mut parked, &size, &mut made)?;
        }
        // Arrivals stop; devices free up as everything running finishes.
        let mut rounds = 0;
        while !(starting.is_empty() && running.is_empty() && parked.is_empty() && s.queued() == 0) {
            rounds += 1;
            prop_assert!(rounds < 10_000, "stuck: {} queued", s.queued());
            now += Dur::from_millis(10);
            for st in std::mem::take(&mut starting) {
                ready(&mut s, st, &mut running, &mut parked);
            }
            if let Some(st) = (!running.is_empty()).then(|| running.remove(0)) {
                s.finished(st.sandbox, st.inv.func, Dur::from_millis(3), now);
            }
            step(&mut s, now, &mut ended, &mut starting, &mut parked, &size, &mut made)?;
        }
        for id in 0..next_id {
            let was_cancelled = cancelled.contains(&id);
            prop_assert!(ended.contains_key(&id) != was_cancelled, "invocation {} lost", id);
        }
        // Every creation is counted under exactly one cause.
        let causes = s.cold_causes();
        prop_assert_eq!(causes.total(), made[0] + made[1], "{:?}", causes);
        prop_assert_eq!(causes.ahead, made[1]);
        prop_assert_eq!(causes.prewarm, 0);
        prop_assert_eq!(s.backlog().queued_work(), Dur::ZERO);
        prop_assert_eq!(s.backlog().running_work(), Dur::ZERO);
        for g in 0..gpus {
            prop_assert_eq!(s.tokens_in_use(GpuId(g as u16)), 0);
            prop_assert!(s.memory().resident(GpuId(g as u16)) <= 300 * MB);
        }
    }
}

/// A start's sandbox is ready (a cold start's sandbox created): it runs, or, a cold start
/// without a free token, it waits for the scheduler's warm start of the same invocation.
fn ready(s: &mut Scheduler, st: Start, running: &mut Vec<Start>, parked: &mut BTreeSet<u64>) {
    if !st.cold || s.sandbox_ready(st.sandbox) {
        running.push(st);
    } else {
        parked.insert(st.inv.id.0);
    }
}

/// Polls once and records what ended: starts (to be run) and rejections (only of functions
/// larger than the 300 MB devices). A warm start of a parked invocation resumes it; a sandbox
/// bought ahead is ready at once. Counts the sandboxes created in `made`: cold starts, bought ahead.
fn step(
    s: &mut Scheduler,
    now: Time,
    ended: &mut BTreeMap<u64, &'static str>,
    starting: &mut Vec<Start>,
    parked: &mut BTreeSet<u64>,
    size: &[u64; 5],
    made: &mut [u64; 2],
) -> Result<(), TestCaseError> {
    for a in poll(s, now) {
        match a {
            Action::Start(st) if parked.remove(&st.inv.id.0) => {
                prop_assert!(!st.cold && st.moves.is_empty(), "a resumed start is warm");
                starting.push(st);
            }
            Action::Start(st) => {
                made[0] += u64::from(st.cold);
                prop_assert!(
                    ended.insert(st.inv.id.0, "started").is_none(),
                    "ended twice"
                );
                starting.push(st);
            }
            Action::Reject(r) => {
                prop_assert!(size[r.inv.func.index()] > 300, "rejected a placeable one");
                prop_assert!(
                    ended.insert(r.inv.id.0, "rejected").is_none(),
                    "ended twice"
                );
            }
            // A sandbox bought ahead: created at once (no invocation waits for it).
            Action::Create(c) => {
                made[1] += 1;
                s.prewarm_done(c.sandbox, now);
            }
            Action::Move(_) | Action::Destroy(_) => {}
        }
    }
    Ok(())
}
