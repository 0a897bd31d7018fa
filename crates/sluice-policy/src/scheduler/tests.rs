use super::*;
use crate::memory::{FlowCoupling, Location, MemMove};
use proptest::prelude::*;

const MB: u64 = 1 << 20;

fn ms(x: u64) -> Time {
    Time::from_micros(x * 1_000)
}

/// Cold starts hold their token in these tests (the former contract; `creating_tests` covers
/// the default).
fn sched(policy: &str, gpus: usize, mem_mb: u64) -> Scheduler {
    let mut cfg = SchedulerConfig {
        policy: policy.into(),
        ..SchedulerConfig::default()
    };
    cfg.slots.cold_start_holds_token = true;
    Scheduler::new(&cfg, vec![mem_mb * MB; gpus]).unwrap()
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

#[test]
fn only_an_active_flow_keeps_its_idle_sandboxes_ahead_of_the_lru_order() {
    // Inactive and Throttled flows' idle sandboxes share one rank, pushed out least recently
    // used first: ranking an Inactive flow's below pushed out sandboxes of flows that had just
    // gone Inactive ahead of older ones, and they came back (docs/mqfq-results.md, change 13).
    assert_eq!(rank_in(Some(FlowState::Inactive)), Rank::Normal);
    assert_eq!(rank_in(Some(FlowState::Throttled)), Rank::Normal);
    assert_eq!(rank_in(None), Rank::Normal);
    assert_eq!(rank_in(Some(FlowState::Active)), Rank::Hot);
    assert!(Rank::Normal < Rank::Hot, "Normal goes first");
}

#[test]
fn rejects_bad_configuration_with_a_message() {
    let mut cfg = SchedulerConfig {
        policy: "lifo".into(),
        ..SchedulerConfig::default()
    };
    let err = Scheduler::new(&cfg, vec![MB]).err().unwrap();
    assert!(err.to_string().contains("unknown queueing policy"));
    cfg.policy = "fcfs".into();
    cfg.slots.tokens_per_gpu = 0;
    let err = Scheduler::new(&cfg, vec![MB]).err().unwrap();
    assert!(err.to_string().contains("tokens_per_gpu"));
    cfg.slots.tokens_per_gpu = 2;
    assert!(Scheduler::new(&cfg, vec![]).is_err());
}

#[test]
fn cold_then_warm_and_d_tokens_per_gpu() {
    let mut s = sched("fcfs", 1, 1000);
    s.register(
        FunctionId(0),
        FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        },
    );
    for i in 0..3 {
        s.submit(InvocationId(i), FunctionId(0), ms(0));
    }
    let mut out = Vec::new();
    s.poll(ms(0), &mut out);
    let st = starts(&out);
    assert_eq!(st.len(), 2, "D = 2 tokens");
    assert!(st.iter().all(|x| x.cold));
    assert_eq!(s.queued(), 1);
    s.sandbox_ready(st[0].sandbox);
    s.finished(st[0].sandbox, FunctionId(0), Dur::from_millis(50), ms(60));
    out.clear();
    s.poll(ms(60), &mut out);
    let st2 = starts(&out);
    assert_eq!(st2.len(), 1);
    assert!(!st2[0].cold, "reuses the idle sandbox");
    assert_eq!(st2[0].sandbox, st[0].sandbox);
    assert_eq!(s.estimate(FunctionId(0)), Dur::from_millis(50));
}

/// One device of 250 MB (FCFS) and functions 0–2 of 100 MB each: room for two.
fn three_100_mb_functions_on_250_mb() -> Scheduler {
    let mut s = sched("fcfs", 1, 250);
    for f in 0..3 {
        s.register(
            FunctionId(f),
            FunctionInfo {
                gpu_mem_bytes: 100 * MB,
                ..Default::default()
            },
        );
    }
    s
}

#[test]
fn memory_pressure_pushes_idle_sandboxes_out_before_a_start() {
    let mut s = three_100_mb_functions_on_250_mb();
    let mut out = Vec::new();
    for f in 0..3u32 {
        s.submit(InvocationId(f as u64), FunctionId(f), ms(f as u64 * 10));
        out.clear();
        s.poll(ms(f as u64 * 10), &mut out);
        let st = starts(&out);
        assert_eq!(st.len(), 1);
        if f == 2 {
            assert_eq!(st[0].moves.len(), 1, "LRU sandbox of fn 0 pushed to host");
            assert_eq!(st[0].moves[0].to, Location::Host);
        }
        s.sandbox_ready(st[0].sandbox);
        s.finished(
            st[0].sandbox,
            FunctionId(f),
            Dur::from_millis(5),
            ms(f as u64 * 10 + 5),
        );
        assert!(s.memory().resident(GpuId(0)) <= 250 * MB);
    }
}

#[test]
fn sticky_flows_move_memory_with_their_state() {
    let mut cfg = SchedulerConfig::default();
    cfg.queue.mqfq.ttl = queue::Ttl::AbsoluteS(1.0);
    cfg.memory.flow_coupling = FlowCoupling::Eager;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    s.register(
        FunctionId(0),
        FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        },
    );
    s.submit(InvocationId(0), FunctionId(0), ms(0));
    let mut out = Vec::new();
    s.poll(ms(0), &mut out);
    let sb = starts(&out)[0].sandbox;
    s.sandbox_ready(sb);
    s.finished(sb, FunctionId(0), Dur::from_millis(10), ms(10));
    out.clear();
    s.poll(ms(10), &mut out);
    assert!(out.is_empty(), "still inside its TTL: memory stays");
    assert_eq!(s.next_timer(), Some(ms(1_010)));
    s.poll(ms(1_010), &mut out);
    assert_eq!(
        out,
        vec![Action::Move(MemMove {
            sandbox: sb,
            gpu: GpuId(0),
            bytes: 100 * MB,
            to: Location::Host
        })]
    );
    out.clear();
    s.submit(InvocationId(1), FunctionId(0), ms(2_000));
    s.poll(ms(2_000), &mut out);
    // The flow turned Active: prefetch the idle sandbox, then start it warm with nothing left to move.
    assert!(matches!(
        out[0],
        Action::Move(MemMove {
            to: Location::Device,
            ..
        })
    ));
    let st = starts(&out);
    assert!(!st[0].cold && st[0].moves.is_empty());
}

#[test]
fn creation_cap_defers_cold_starts() {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.keepalive.max_concurrent_creates = Some(1);
    cfg.slots.cold_start_holds_token = true;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    s.submit(InvocationId(0), FunctionId(0), ms(0));
    s.submit(InvocationId(1), FunctionId(1), ms(0));
    let mut out = Vec::new();
    s.poll(ms(0), &mut out);
    assert_eq!(starts(&out).len(), 1);
    assert_eq!(s.queued(), 1);
    assert_eq!(
        s.tokens_in_use(GpuId(0)),
        1,
        "the refused start gave its token back"
    );
    s.sandbox_ready(starts(&out)[0].sandbox);
    out.clear();
    s.poll(ms(1), &mut out);
    assert_eq!(starts(&out).len(), 1);
}

proptest! {
    /// Driving any policy with random arrivals and completions (functions of concurrency 1 to
    /// 3), cold starts holding their token or not: each invocation starts exactly once (a cold
    /// start that waits for a token after its sandbox is ready resumes in that sandbox), the
    /// tokens in use are the invocations running (plus those creating, when cold starts hold
    /// one) and never exceed D, residency never exceeds capacity, a sandbox never runs more
    /// than its capacity and stays resident while it runs, nothing is lost; operator prewarms in
    /// between, and the layout of the home devices (`placement.key_salt`), change none of that.
    #[test]
    fn scheduler_invariants(
        policy in prop::sample::select(crate::queue::POLICY_NAMES),
        arrivals in proptest::collection::vec((0u32..5, 0u64..50), 1..120),
        gpus in 1usize..3,
        holds in any::<bool>(),
        prewarms in proptest::collection::vec((0u32..5, 0usize..120), 0..4),
        salt in 0u64..4,
    ) {
        let mut cfg = SchedulerConfig { policy: policy.into(), ..SchedulerConfig::default() };
        cfg.slots.cold_start_holds_token = holds;
        cfg.placement.key_salt = salt;
        let mut s = Scheduler::new(&cfg, vec![300 * MB; gpus]).unwrap();
        for f in 0..5 {
            let info = FunctionInfo { gpu_mem_bytes: (60 + 20 * f as u64) * MB, concurrency: f % 3 + 1, ..Default::default() };
            s.register(FunctionId(f), info);
        }
        let mut now = Time::ZERO;
        // Cold starts being created, ready ones waiting for a token, and running invocations;
        // sandboxes bought ahead being created.
        let (mut creating, mut parked, mut running) = (Vec::<Start>::new(), Vec::<Start>::new(), Vec::<Start>::new());
        let mut buying = Vec::<SandboxId>::new();
        let mut started = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let total = arrivals.len();
        let mut pending = arrivals.into_iter().enumerate();
        for step in 0.. {
            // Each step moves something on: far fewer steps than this finish any case.
            prop_assert!(step < 100_000, "no progress: {} queued", s.queued());
            match pending.next() {
                Some((i, (f, gap))) => {
                    now += Dur::from_millis(gap);
                    s.submit(InvocationId(i as u64), FunctionId(f), now);
                    // An operator's prewarm in between: the moves that make room for it are
                    // carried out (the books say where each moved sandbox now is).
                    for &(pf, _) in prewarms.iter().filter(|p| p.1 == i) {
                        out.clear();
                        if let Some((sb, _)) = s.prewarm(FunctionId(pf), now, &mut out) { buying.push(sb); }
                        for a in &out {
                            if let Action::Move(m) = a { prop_assert_eq!(s.memory().location(m.sandbox), Some(m.to)); }
                        }
                    }
                }
                None if running.is_empty() && creating.is_empty() && parked.is_empty() && buying.is_empty() && s.queued() == 0 => break,
                None => {}
            }
            if (now.as_micros() / 1000).is_multiple_of(3) || pending.len() == 0 {
                now += Dur::from_millis(1);
                if let Some(sb) = (!buying.is_empty()).then(|| buying.remove(0)) {
                    s.prewarm_done(sb, now);
                } else if let Some(st) = (!creating.is_empty()).then(|| creating.remove(0)) {
                    if s.sandbox_ready(st.sandbox) { running.push(st) } else { parked.push(st) }
                } else if let Some(st) = (!running.is_empty()).then(|| running.remove(0)) {
                    s.finished(st.sandbox, st.inv.func, Dur::from_millis(7), now);
                }
            }
            out.clear();
            s.poll(now, &mut out);
            buying.extend(out.iter().filter_map(|a| match a {
                Action::Create(c) => Some(c.sandbox),
                _ => None,
            }));
            for st in starts(&out) {
                if let Some(i) = parked.iter().position(|p| p.inv.id == st.inv.id) {
                    let p = parked.remove(i);
                    prop_assert!(p.sandbox == st.sandbox && !st.cold && st.moves.is_empty(), "resumed in its sandbox");
                    running.push(st);
                    continue;
                }
                prop_assert!(started.insert(st.inv.id), "started twice");
                let sb = s.pool().get(st.sandbox).copied();
                prop_assert!(sb.is_some_and(|sb| sb.running <= st.inv.func.0 % 3 + 1), "over capacity");
                if running.iter().chain(&creating).any(|r| r.sandbox == st.sandbox) {
                    prop_assert!(!st.cold && st.moves.is_empty(), "a shared start moves nothing");
                }
                if st.cold { creating.push(st) } else { running.push(st) }
            }
            let all: Vec<&Start> = running.iter().chain(&creating).chain(&parked).collect();
            for r in &all {
                let n = all.iter().filter(|x| x.sandbox == r.sandbox).count() as u32;
                prop_assert_eq!(s.pool().get(r.sandbox).map(|sb| sb.running), Some(n));
                prop_assert_eq!(s.memory().location(r.sandbox), Some(Location::Device));
            }
            for g in 0..gpus {
                prop_assert!(s.tokens_in_use(GpuId(g as u16)) <= 2);
                prop_assert!(s.memory().resident(GpuId(g as u16)) <= 300 * MB);
            }
            let holding = running.len() + if holds { creating.len() } else { 0 };
            prop_assert_eq!(holding as u32, (0..gpus).map(|g| s.tokens_in_use(GpuId(g as u16))).sum::<u32>());
            if let Some(t) = s.next_timer() { if t <= now { out.clear(); s.poll(now, &mut out); } }
        }
        prop_assert_eq!(started.len(), total);
    }
}

#[test]
fn prewarm_creates_an_idle_warm_sandbox() {
    let mut s = sched("fcfs", 2, 1000);
    s.register(
        FunctionId(0),
        FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        },
    );
    let mut room = Vec::new();
    let (sb, gpu) = s
        .prewarm(FunctionId(0), ms(0), &mut room)
        .expect("room to prewarm");
    assert!(room.is_empty(), "an empty device needs no moves: {room:?}");
    s.prewarm_done(sb, ms(5));
    assert_eq!(s.pool().counts(), (0, 1, 0));
    s.submit(InvocationId(0), FunctionId(0), ms(10));
    let mut out = Vec::new();
    s.poll(ms(10), &mut out);
    // The prewarm went to the function's home; the start follows its warm sandbox there.
    let st = starts(&out);
    assert_eq!(st.len(), 1);
    assert_eq!((st[0].gpu, st[0].cold, st[0].sandbox), (gpu, false, sb));
}

#[test]
fn a_prewarm_on_a_full_device_hands_out_the_moves_that_make_room() {
    // 250 MB, three functions of 100 MB: the third prewarm pushes the first, idle, to host, and
    // the engine must be told, or the device holds 300 MB while the books say 200 MB.
    let mut s = three_100_mb_functions_on_250_mb();
    let mut room = Vec::new();
    let mut made = Vec::new();
    for f in 0..3 {
        room.clear();
        let (sb, _) = s
            .prewarm(FunctionId(f), ms(f as u64), &mut room)
            .expect("room");
        s.prewarm_done(sb, ms(f as u64 + 1));
        made.push(sb);
        let moves: Vec<_> = room
            .iter()
            .filter_map(|a| match a {
                Action::Move(m) => Some(*m),
                _ => None,
            })
            .collect();
        if f < 2 {
            assert!(moves.is_empty(), "prewarm {f}: {room:?}");
        } else {
            assert_eq!(moves.len(), 1, "{room:?}");
            assert_eq!((moves[0].sandbox, moves[0].to), (made[0], Location::Host));
            assert_eq!(moves[0].bytes, 100 * MB);
        }
    }
    assert_eq!(s.memory().location(made[0]), Some(Location::Host));
    assert_eq!(s.memory().resident(GpuId(0)), 200 * MB);
}

/// Under batch on `gpus` devices, function 0 prewarmed (its cold start taken as 3 s), then twenty
/// of its calls at once, each expected to take the 500 ms prior: the scheduler, the prewarmed
/// sandbox and the starts of the poll at their arrival.
fn twenty_calls_behind_a_prewarmed_batch_sandbox(
    gpus: usize,
) -> (Scheduler, SandboxId, Vec<Start>) {
    let mut s = sched("batch", gpus, 1000);
    let f = FunctionId(0);
    s.register(f, FunctionInfo::default());
    let (sb, _) = s.prewarm(f, ms(0), &mut Vec::new()).expect("room");
    s.prewarm_done(sb, ms(3_000));
    assert_eq!(s.cold_start_estimate(f), Some(Dur::from_millis(3_000)));
    for i in 0..20 {
        s.submit(InvocationId(i), f, ms(4_000));
    }
    let mut out = Vec::new();
    s.poll(ms(4_000), &mut out);
    let st = starts(&out);
    (s, sb, st)
}

#[test]
fn a_prewarm_measures_the_cold_start_so_a_prewarmed_batch_still_spills() {
    // Under batch a line spills to a second sandbox once it holds a cold start's worth of work
    // and a device is idle; a prewarmed function never cold-started, so its cold start comes from
    // the prewarm (3 s). The warm sandbox takes the first call, a line forms behind it, and once
    // the line holds 3 s of work a second sandbox starts on the idle device.
    let (_, sb, st) = twenty_calls_behind_a_prewarmed_batch_sandbox(2);
    assert!(st.iter().any(|x| x.sandbox == sb && !x.cold), "{st:?}");
    assert!(st.iter().any(|x| x.cold), "the batch spilled: {st:?}");
    // The prewarm taken in its time: the same with `prewarmed`, measured as given.
    let f = FunctionId(0);
    let mut s = sched("batch", 2, 1000);
    s.register(f, FunctionInfo::default());
    s.prewarmed(f, Dur::from_millis(2_000), ms(0), &mut Vec::new())
        .expect("room");
    assert_eq!(s.cold_start_estimate(f), Some(Dur::from_millis(2_000)));
}

#[test]
fn a_batch_spills_only_onto_a_device_that_would_otherwise_idle() {
    // The same batch on one device: it runs its first call, so no device is idle, and a second
    // sandbox would take the other token from whatever else is queued to pay a cold start for
    // work the first sandbox runs anyway. The whole batch waits in the one line. (It spilled
    // onto the second token before: overloaded, batch cold-started each batch on every device.)
    let (s, sb, st) = twenty_calls_behind_a_prewarmed_batch_sandbox(1);
    assert_eq!(st.len(), 1, "{st:?}");
    assert!(st[0].sandbox == sb && !st[0].cold, "{st:?}");
    assert_eq!(s.in_lines(), 19, "the rest of the batch waits in its line");
    assert_eq!(s.tokens_in_use(GpuId(0)), 1, "the other token stays free");
}

#[test]
fn past_its_ttl_a_resident_sandbox_lingers_and_is_destroyed_not_pushed_out_for_room() {
    // One device of 250 MB, functions of 100 MB, TTL 600 s, spare TTL 3600 s (the defaults).
    let mut s = three_100_mb_functions_on_250_mb();
    let sec = |x: u64| ms(x * 1_000);
    let run = |s: &mut Scheduler, id: u64, f: u32, at: Time| {
        s.submit(InvocationId(id), FunctionId(f), at);
        let mut out = Vec::new();
        s.poll(at, &mut out);
        let st = starts(&out);
        assert_eq!(st.len(), 1, "{out:?}");
        s.sandbox_ready(st[0].sandbox);
        s.finished(st[0].sandbox, FunctionId(f), Dur::from_millis(10), at);
        (st[0].clone(), out)
    };
    let (a, _) = run(&mut s, 0, 0, sec(0));
    // Past the TTL, function 0's idle sandbox is resident in memory nobody needs: it lingers,
    // and a call 15 minutes after the last one is warm.
    let mut out = Vec::new();
    s.poll(sec(700), &mut out);
    assert!(
        !out.iter().any(|x| matches!(x, Action::Destroy(_))),
        "{out:?}"
    );
    let (again, _) = run(&mut s, 1, 0, sec(900));
    assert!(!again.cold && again.sandbox == a.sandbox, "{again:?}");
    // Idle since 900 s, it lingers from 1,500 s; two other functions then need the room.
    s.poll(sec(1_600), &mut out);
    let (_, _) = run(&mut s, 2, 1, sec(1_600));
    let (c, out) = run(&mut s, 3, 2, sec(1_601));
    // Function 0's lingering sandbox is destroyed, not copied out: no move pushes it to host.
    assert!(out.contains(&Action::Destroy(a.sandbox)), "{out:?}");
    assert!(c.moves.iter().all(|m| m.sandbox != a.sandbox), "{c:?}");
    // A sandbox within its TTL is still pushed to host to make room, as before.
    let (d, _) = run(&mut s, 4, 0, sec(1_602));
    assert!(d.cold);
    assert!(d.moves.iter().any(|m| m.to == Location::Host), "{d:?}");
}
