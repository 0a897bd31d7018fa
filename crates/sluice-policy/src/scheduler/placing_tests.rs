//! Device choice, sandbox lines (batches in one sandbox; waiting for a busy sandbox rather than
//! cold-starting another) and the derived pool caps, through the scheduler.

use super::test_support::{ms, poll, poll_all, MB};
use super::Create;
use super::*;
use crate::placement::{Key, PlacementParams};
use proptest::prelude::*;

fn sched(policy: &str, gpus: usize, mem_mb: u64) -> Scheduler {
    let mut cfg = SchedulerConfig {
        policy: policy.into(),
        ..SchedulerConfig::default()
    };
    // Cold starts hold their token here (the former contract; `creating_tests` has the default).
    cfg.slots.cold_start_holds_token = true;
    let mut s = Scheduler::new(&cfg, vec![mem_mb * MB; gpus]).unwrap();
    for f in 0..8 {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    s
}

/// The device a function's home is on, as an independent ring of the same devices says.
fn home(gpus: usize, f: u32) -> GpuId {
    let ring = placing::device_ring(&PlacementParams::default(), gpus, 2).unwrap();
    *ring.home(Key::of_u64(u64::from(f))).unwrap()
}

#[test]
fn a_function_starts_on_its_home_and_comes_back_to_its_warm_sandbox() {
    let mut s = sched("fcfs", 8, 1000);
    // Functions whose homes hold at most two of them (D = 2 tokens each).
    let mut per_home = std::collections::BTreeMap::<GpuId, u32>::new();
    let fs: Vec<u32> = (0..8u32)
        .filter(|&f| {
            let n = per_home.entry(home(8, f)).or_default();
            *n += 1;
            *n <= 2
        })
        .collect();
    for &f in &fs {
        s.submit(InvocationId(u64::from(f)), FunctionId(f), ms(0));
        let st = poll(&mut s, ms(0));
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0].gpu,
            home(8, f),
            "fn {f} starts at home, not on the least-loaded device"
        );
        s.sandbox_ready(st[0].sandbox);
        s.finished(st[0].sandbox, FunctionId(f), Dur::from_millis(1), ms(1));
    }
    // Later invocations, all at once, find the warm sandboxes where they are.
    for &f in &fs {
        s.submit(InvocationId(100 + u64::from(f)), FunctionId(f), ms(2));
    }
    let st = poll(&mut s, ms(2));
    assert_eq!(st.len(), fs.len());
    assert!(st.iter().all(|x| !x.cold && x.gpu == home(8, x.inv.func.0)));
}

#[test]
fn a_busy_home_spills_and_the_spill_stays_warm() {
    let mut s = sched("fcfs", 4, 1000);
    let f = FunctionId(3);
    for i in 0..3 {
        s.submit(InvocationId(i), f, ms(0));
    }
    let st = poll(&mut s, ms(0));
    let gpus: std::collections::BTreeSet<GpuId> = st.iter().map(|x| x.gpu).collect();
    assert_eq!(st.len(), 3);
    assert!(gpus.contains(&home(4, 3)));
    assert!(gpus.len() >= 2, "over its bound the home spills: {gpus:?}");
    for x in &st {
        s.sandbox_ready(x.sandbox);
        s.finished(x.sandbox, f, Dur::from_millis(1), ms(1));
    }
    for i in 0..3 {
        s.submit(InvocationId(10 + i), f, ms(2));
    }
    let again = poll(&mut s, ms(2));
    assert!(
        again.iter().all(|x| !x.cold),
        "the same three sandboxes serve again"
    );
    let again: std::collections::BTreeSet<GpuId> = again.iter().map(|x| x.gpu).collect();
    assert_eq!(again, gpus);
}

#[test]
fn a_batch_runs_in_one_sandbox_back_to_back() {
    let mut s = sched("batch", 1, 1000);
    let f = FunctionId(0);
    for i in 0..4 {
        s.submit(InvocationId(i), f, ms(0));
    }
    let st = poll(&mut s, ms(0));
    assert_eq!(
        st.len(),
        1,
        "the second token does not cold-start a second sandbox"
    );
    assert_eq!(s.in_lines(), 3);
    assert_eq!(s.tokens_in_use(GpuId(0)), 1);
    let sb = st[0].sandbox;
    s.sandbox_ready(sb);
    for i in 1..4u64 {
        s.finished(sb, f, Dur::from_millis(5), ms(5 * i));
        let next = poll(&mut s, ms(5 * i));
        assert_eq!(next.len(), 1);
        assert_eq!(
            (next[0].inv.id, next[0].sandbox, next[0].cold),
            (InvocationId(i), sb, false)
        );
        assert_eq!(
            s.tokens_in_use(GpuId(0)),
            1,
            "the token passes along the line"
        );
    }
    s.finished(sb, f, Dur::from_millis(5), ms(20));
    assert_eq!(s.tokens_in_use(GpuId(0)), 0);
    assert_eq!(s.pool().counts(), (0, 1, 0));
}

#[test]
fn a_failed_batch_sandbox_returns_its_line_to_the_queue() {
    let mut s = sched("batch", 1, 1000);
    let f = FunctionId(0);
    for i in 0..3 {
        s.submit(InvocationId(i), f, ms(0));
    }
    let sb = poll(&mut s, ms(0))[0].sandbox;
    s.sandbox_failed(sb, f, ms(1));
    assert_eq!((s.in_lines(), s.queued()), (0, 2));
    let st = poll(&mut s, ms(1));
    assert_eq!(st[0].inv.id, InvocationId(1), "in order");
    assert!(st[0].cold && st[0].sandbox != sb);
}

#[test]
fn an_invocation_waiting_in_a_line_counts_as_queued_and_can_be_cancelled() {
    let mut s = sched("batch", 1, 1000);
    let f = FunctionId(0);
    for i in 0..3 {
        s.submit(InvocationId(i), f, ms(0));
    }
    let sb = poll(&mut s, ms(0))[0].sandbox;
    assert_eq!(
        (s.in_lines(), s.queued()),
        (2, 2),
        "the line is queued work"
    );
    let before = s.predict_wait(f);
    assert!(
        s.cancel(InvocationId(1)),
        "a line invocation can be cancelled"
    );
    assert!(!s.cancel(InvocationId(1)), "once");
    assert_eq!(s.queued(), 1);
    assert!(s.predict_wait(f) <= before, "its work left the prediction");
    s.sandbox_ready(sb);
    s.finished(sb, f, Dur::from_millis(5), ms(5));
    let next = poll(&mut s, ms(5));
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].inv.id,
        InvocationId(2),
        "the cancelled one is skipped"
    );
    assert_eq!(s.tokens_in_use(GpuId(0)), 1);
    s.finished(sb, f, Dur::from_millis(5), ms(10));
    assert_eq!(
        (s.tokens_in_use(GpuId(0)), s.queued(), s.in_lines()),
        (0, 0, 0)
    );
}

#[test]
fn a_withdrawn_start_passes_its_token_along_the_line_without_a_sample() {
    let mut s = sched("batch", 1, 1000);
    let f = FunctionId(0);
    for i in 0..2 {
        s.submit(InvocationId(i), f, ms(0));
    }
    let sb = poll(&mut s, ms(0))[0].sandbox;
    s.sandbox_ready(sb);
    s.withdrawn(sb, f, ms(1));
    assert_eq!(
        s.cold_start_estimate(f),
        None,
        "nothing ran: no cold start measured"
    );
    let next = poll(&mut s, ms(1));
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].inv.id, next[0].sandbox), (InvocationId(1), sb));
}

#[test]
fn a_short_function_waits_for_its_busy_sandbox_rather_than_cold_start_another() {
    let mut s = sched("fcfs", 1, 1000);
    let (f, g) = (FunctionId(0), FunctionId(1));
    // One cold start of each, measured: 3 s to start, then 5 ms (f) and 5 s (g) of work.
    for (i, func, exec) in [(0u64, f, 5u64), (1, g, 5_000)] {
        s.submit(InvocationId(i), func, ms(0));
        let st = poll(&mut s, ms(0));
        s.sandbox_ready(st[0].sandbox);
        s.finished(
            st[0].sandbox,
            func,
            Dur::from_millis(exec),
            ms(3_000 + exec),
        );
    }
    assert_eq!(s.cold_start_estimate(f), Some(Dur::from_secs(3)));
    // One run is not an estimate: h ran once (measured cold start, 5 ms of work); a second
    // invocation alongside a warm one starts its own sandbox.
    let h = FunctionId(2);
    s.submit(InvocationId(20), h, ms(4_000));
    let st = poll(&mut s, ms(4_000));
    s.sandbox_ready(st[0].sandbox);
    s.finished(st[0].sandbox, h, Dur::from_millis(5), ms(7_005));
    s.submit(InvocationId(21), h, ms(8_000));
    s.submit(InvocationId(22), h, ms(8_000));
    let two = poll(&mut s, ms(8_000));
    assert_eq!(two.len(), 2);
    assert!(two.iter().any(|x| x.cold) && s.in_lines() == 0);
    for x in &two {
        if x.cold {
            s.sandbox_ready(x.sandbox);
        }
        s.finished(x.sandbox, h, Dur::from_millis(5), ms(9_000));
    }
    // f ran twice: its estimate holds invocations back now.
    s.submit(InvocationId(23), f, ms(9_500));
    let again = poll(&mut s, ms(9_500));
    s.finished(again[0].sandbox, f, Dur::from_millis(5), ms(9_505));
    s.submit(InvocationId(2), f, ms(10_000));
    let first = poll(&mut s, ms(10_000));
    assert!(!first[0].cold);
    s.submit(InvocationId(3), f, ms(10_001));
    assert!(
        poll(&mut s, ms(10_001)).is_empty(),
        "5 ms in line beats a 3 s cold start"
    );
    assert_eq!(s.in_lines(), 1);
    s.finished(first[0].sandbox, f, Dur::from_millis(5), ms(10_005));
    let next = poll(&mut s, ms(10_005));
    assert_eq!(
        (next[0].inv.id, next[0].sandbox),
        (InvocationId(3), first[0].sandbox)
    );
    // g's 5 s of work is longer than its cold start: a second sandbox.
    s.submit(InvocationId(4), g, ms(20_000));
    let a = poll(&mut s, ms(20_000));
    s.finished(next[0].sandbox, f, Dur::from_millis(5), ms(20_000));
    s.submit(InvocationId(5), g, ms(20_001));
    let b = poll(&mut s, ms(20_001));
    assert!(!a[0].cold && b[0].cold && a[0].sandbox != b[0].sandbox);
    // With wait_for_warm off nothing waits.
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.keepalive.wait_for_warm = false;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    s.submit(InvocationId(0), f, ms(0));
    let st = poll(&mut s, ms(0));
    s.sandbox_ready(st[0].sandbox);
    s.finished(st[0].sandbox, f, Dur::from_millis(5), ms(3_005));
    s.submit(InvocationId(1), f, ms(4_000));
    s.submit(InvocationId(2), f, ms(4_000));
    let both = poll(&mut s, ms(4_000));
    assert_eq!(both.len(), 2);
    assert_eq!(s.in_lines(), 0);
}

#[test]
fn plain_mqfq_prefers_a_flow_with_a_warm_sandbox() {
    let mut s = sched("mqfq", 1, 1000);
    s.submit(InvocationId(0), FunctionId(1), ms(0));
    let st = poll(&mut s, ms(0));
    s.sandbox_ready(st[0].sandbox);
    s.finished(st[0].sandbox, FunctionId(1), Dur::from_millis(1), ms(1));
    // Flow 0 has the smaller tag, but flow 1 is warm.
    s.submit(InvocationId(1), FunctionId(0), ms(2));
    s.submit(InvocationId(2), FunctionId(1), ms(2));
    s.slots.take(GpuId(0));
    let st = poll(&mut s, ms(2));
    assert_eq!(st.len(), 1);
    assert_eq!((st[0].inv.func, st[0].cold), (FunctionId(1), false));
}

#[test]
fn many_tokens_per_device_are_fine() {
    let mut cfg = SchedulerConfig::default();
    cfg.slots.tokens_per_gpu = 5_000;
    assert!(Scheduler::new(&cfg, vec![MB; 3]).is_ok());
}

#[test]
fn pool_caps_follow_the_devices_and_the_functions_memory() {
    let s = sched("fcfs", 4, 24 * 1024);
    // 100 MB functions on 24 GiB devices: 4 × 24 GiB / 100 MiB, capped.
    let caps = &s.pool().limits().sandboxes_per_device;
    assert_eq!(caps.len(), 4);
    assert!(caps.iter().all(|&c| c == 983), "{caps:?}");
    assert_eq!(s.pool().limits().creates_per_device, 2);
    let mut cfg = SchedulerConfig::default();
    cfg.keepalive.max_sandboxes = Some(64);
    let s = Scheduler::new(&cfg, vec![MB; 4]).unwrap();
    assert_eq!(s.pool().limits().max_sandboxes, Some(64));
}

#[test]
fn a_device_keeps_only_its_cap_of_sandboxes() {
    // 1 GiB devices, 100 MB functions, memory_factor 0.5: 5 sandboxes per device.
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.keepalive.memory_factor = 0.5;
    let mut s = Scheduler::new(&cfg, vec![1024 * MB]).unwrap();
    for f in 0..8 {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    for f in 0..8u32 {
        s.submit(InvocationId(u64::from(f)), FunctionId(f), ms(u64::from(f)));
        let st = poll(&mut s, ms(u64::from(f)));
        s.sandbox_ready(st[0].sandbox);
        s.finished(
            st[0].sandbox,
            FunctionId(f),
            Dur::from_millis(1),
            ms(u64::from(f)),
        );
        assert!(s.pool().len_on(GpuId(0)) <= 5);
    }
    assert_eq!(s.pool().len(), 5);
}

proptest! {
    /// On several devices, under every policy: a start goes to a device with a free token, a
    /// function with a warm resident sandbox on a device with a free token that is within its
    /// bound never cold-starts elsewhere, and tokens stay within D per device.
    #[test]
    fn starts_respect_tokens_and_locality(
        policy in prop::sample::select(crate::queue::POLICY_NAMES),
        arrivals in proptest::collection::vec((0u32..8, 0u64..20), 1..150),
        gpus in 2usize..6,
    ) {
        let mut s = sched(policy, gpus, 1000);
        let mut now = Time::ZERO;
        let mut running: Vec<Start> = Vec::new();
        // Sandboxes bought ahead, ready at the next step.
        let mut buying: Vec<Create> = Vec::new();
        let mut started = 0usize;
        for (i, &(f, gap)) in arrivals.iter().enumerate() {
            now += Dur::from_millis(gap);
            s.submit(InvocationId(i as u64), FunctionId(f), now);
            for c in buying.drain(..) {
                s.prewarm_done(c.sandbox, now);
            }
            if i % 2 == 0 && !running.is_empty() {
                let st = running.remove(0);
                if st.cold { s.sandbox_ready(st.sandbox); }
                s.finished(st.sandbox, st.inv.func, Dur::from_millis(3), now);
            }
            let (new, bought) = poll_all(&mut s, now);
            buying.extend(bought);
            for st in new {
                started += 1;
                for g in 0..gpus {
                    prop_assert!(s.tokens_in_use(GpuId(g as u16)) <= 2);
                }
                running.push(st);
            }
        }
        while !running.is_empty() || !buying.is_empty() || s.queued() > 0 || s.in_lines() > 0 {
            now += Dur::from_millis(1);
            let progress = !running.is_empty() || !buying.is_empty();
            for c in buying.drain(..) {
                s.prewarm_done(c.sandbox, now);
            }
            if let Some(st) = (!running.is_empty()).then(|| running.remove(0)) {
                if st.cold { s.sandbox_ready(st.sandbox); }
                s.finished(st.sandbox, st.inv.func, Dur::from_millis(3), now);
            }
            let (new, bought) = poll_all(&mut s, now);
            prop_assert!(
                !new.is_empty() || progress || (s.queued() == 0 && s.in_lines() == 0),
                "stalled"
            );
            started += new.len();
            running.extend(new);
            buying.extend(bought);
        }
        prop_assert_eq!(started, arrivals.len());
    }
}

#[test]
fn a_burst_of_a_new_function_waits_for_a_starting_sandbox_only_when_that_is_sooner() {
    // 8 GPUs: tokens everywhere. Nothing is measured yet; the estimate is the 500 ms prior.
    let mut s = sched("fcfs", 8, 1000);
    let f = FunctionId(0);
    s.submit(InvocationId(0), f, ms(0));
    let first = poll(&mut s, ms(0));
    assert!(first[0].cold);
    // 10 ms later a new sandbox might be ready sooner than the first after its 500 ms run.
    s.submit(InvocationId(1), f, ms(10));
    let second = poll(&mut s, ms(10));
    assert!(second.len() == 1 && second[0].cold);
    // 600 ms after the first was born it is sooner (0 + 500 ms < 600 ms, whatever the cold
    // start), and with one in its line the next waits behind 1 s of work.
    s.submit(InvocationId(2), f, ms(600));
    assert!(
        poll(&mut s, ms(600)).is_empty(),
        "waits for the first sandbox"
    );
    // At 700 ms the second (born at 10 ms, 510 ms < 700 ms) takes the next; at 800 ms
    // both have 1 s of work ahead (0 + 1 s, 10 ms + 1 s are not before 800 ms): a new sandbox.
    s.submit(InvocationId(3), f, ms(700));
    assert!(poll(&mut s, ms(700)).is_empty());
    s.submit(InvocationId(4), f, ms(800));
    let fifth = poll(&mut s, ms(800));
    assert!(fifth.len() == 1 && fifth[0].cold);
    assert_eq!(s.in_lines(), 2);
    // The first sandbox's first run ends: the one in its line starts there, warm.
    s.sandbox_ready(first[0].sandbox);
    s.finished(first[0].sandbox, f, Dur::from_millis(5), ms(3_005));
    let next = poll(&mut s, ms(3_005));
    assert_eq!(
        (next[0].inv.id, next[0].sandbox, next[0].cold),
        (InvocationId(2), first[0].sandbox, false)
    );
}

/// A line that keeps forming behind `f`'s one sandbox on four devices until its waits buy a
/// second sandbox: `f` has a 3 s cold start and 1 s calls (measured over two runs; a line needs
/// two). Returns the scheduler, `f`'s first start, the sandbox bought, the calls that waited
/// before it was bought, and the time (ms) it was bought.
fn line_until_bought() -> (Scheduler, Start, Create, u64, u64) {
    let mut s = sched("fcfs", 4, 1000);
    let f = FunctionId(0);
    s.submit(InvocationId(0), f, ms(0));
    let first = poll(&mut s, ms(0)).remove(0);
    s.sandbox_ready(first.sandbox);
    s.finished(first.sandbox, f, Dur::from_millis(1_000), ms(4_000));
    s.submit(InvocationId(1), f, ms(4_500));
    let warm = poll(&mut s, ms(4_500)).remove(0);
    s.finished(warm.sandbox, f, Dur::from_millis(1_000), ms(5_500));
    s.submit(InvocationId(2), f, ms(5_500));
    let mut running = poll(&mut s, ms(5_500)).remove(0);
    assert!(!running.cold);
    let cold = s.cold_start_estimate(f).unwrap();
    // Calls keep arriving while the one before runs: each alone is better off in line (its wait,
    // about 1 s, is under the 3 s cold start), but once the waits add up to a cold start a second
    // sandbox is bought ahead on an idle device, and the call that tipped the balance still
    // waits in line (less than a cold start).
    let (mut t, mut waited, mut joined) = (5_500u64, Dur::ZERO, 0);
    let bought = loop {
        s.submit(InvocationId(10 + joined), f, ms(t + 1));
        let est = s.estimate(f);
        let (st, created) = poll_all(&mut s, ms(t + 1));
        assert!(st.is_empty(), "call {joined} starts nothing cold");
        assert_eq!(s.in_lines(), 1, "call {joined} waits in line");
        if let Some(c) = created.into_iter().next() {
            break c;
        }
        assert!(waited + est < cold, "no wait past a cold start's worth");
        waited += est;
        joined += 1;
        assert!(joined < 20, "the waits never bought a sandbox");
        t += 1_000;
        s.finished(running.sandbox, f, Dur::from_millis(1_000), ms(t));
        running = poll(&mut s, ms(t)).remove(0);
        assert_eq!(
            running.sandbox, first.sandbox,
            "the line runs in f's sandbox"
        );
    };
    (s, first, bought, joined, t + 1)
}

#[test]
fn waits_in_line_add_up_to_a_cold_start_that_buys_a_second_sandbox() {
    let (mut s, first, bought, joined, t) = line_until_bought();
    assert!(joined >= 2, "a few calls wait first ({joined})");
    assert_eq!(bought.func, first.inv.func);
    assert!(bought.sandbox != first.sandbox && bought.gpu != first.gpu);
    // Once it is ready, the next call runs there at once, warm, while the line drains.
    s.prewarm_done(bought.sandbox, ms(t + 1));
    s.submit(InvocationId(99), first.inv.func, ms(t + 2));
    let next = poll(&mut s, ms(t + 2));
    assert!(
        next.len() == 1 && next[0].sandbox == bought.sandbox && !next[0].cold,
        "{next:?}"
    );
}

/// Right after the purchase (1 ms on) two calls come: the first waits behind the running
/// sandbox (its line then holds 2 s of work), the second behind the bought one (ready in just
/// under 3 s, the cold start; behind the running one it would wait 3 s). Neither starts a third
/// sandbox. Returns the second.
fn call_behind_the_purchase(s: &mut Scheduler, f: FunctionId, t: u64) -> InvocationId {
    let before = s.in_lines();
    for i in 0..2 {
        s.submit(InvocationId(200 + i), f, ms(t + 1));
        let (st, created) = poll_all(s, ms(t + 1));
        assert!(
            st.is_empty() && created.is_empty(),
            "call {i}: {st:?} {created:?}"
        );
    }
    assert_eq!(s.in_lines(), before + 2, "both wait in a line");
    InvocationId(201)
}

#[test]
fn a_call_waits_behind_a_sandbox_being_bought_and_starts_there_when_it_is_ready() {
    let (mut s, first, bought, _, t) = line_until_bought();
    let f = first.inv.func;
    let behind = call_behind_the_purchase(&mut s, f, t);
    // Ready: the first call of its line starts in it, warm, on its (idle) device.
    s.prewarm_done(bought.sandbox, ms(t + 3_000));
    let (st, _) = poll_all(&mut s, ms(t + 3_000));
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(
        (st[0].inv.id, st[0].sandbox, st[0].gpu, st[0].cold),
        (behind, bought.sandbox, bought.gpu, false)
    );
    // Once it ends, the sandbox goes idle on its device and takes the next call there.
    s.finished(bought.sandbox, f, Dur::from_millis(1_000), ms(t + 4_000));
    poll(&mut s, ms(t + 4_000));
    s.submit(InvocationId(300), f, ms(t + 4_001));
    let next = poll(&mut s, ms(t + 4_001));
    assert_eq!(
        (next.len(), next[0].sandbox, next[0].cold),
        (1, bought.sandbox, false)
    );
}

#[test]
fn a_purchase_that_fails_puts_its_line_back_in_the_queue() {
    let (mut s, first, bought, _, t) = line_until_bought();
    let f = first.inv.func;
    let behind = call_behind_the_purchase(&mut s, f, t);
    let lines = s.in_lines();
    s.forget_sandbox(bought.sandbox, ms(t + 100));
    assert!(s.pool().get(bought.sandbox).is_none());
    // Its call is not lost: back at the head of the queue, it is placed again (now a cold
    // start elsewhere: the running sandbox's line holds 2 s of work and more is not cheaper).
    let (st, _) = poll_all(&mut s, ms(t + 100));
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!((st[0].inv.id, st[0].cold), (behind, true));
    assert_ne!(st[0].sandbox, bought.sandbox);
    assert_eq!(s.in_lines(), lines - 1);
}
