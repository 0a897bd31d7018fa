//! Cold starts without a token: the token goes to other work while a sandbox is created, the
//! invocation takes one when the sandbox is ready (at once, or from its device's ready line),
//! and a creation that fails gives back no token it did not hold.

use super::test_support::{ms, poll, MB};
use super::*;

/// One GPU with one token; `f` (id 0) has an idle warm sandbox, `g` (id 1) none yet.
fn one_token(holds: bool) -> (Scheduler, FunctionId, FunctionId) {
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    cfg.slots.tokens_per_gpu = 1;
    cfg.slots.cold_start_holds_token = holds;
    let mut s = Scheduler::new(&cfg, vec![1000 * MB]).unwrap();
    let (f, g) = (FunctionId(0), FunctionId(1));
    for x in [f, g] {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(x, info);
    }
    s.submit(InvocationId(0), f, ms(0));
    let st = poll(&mut s, ms(0)).remove(0);
    assert!(st.cold);
    assert!(s.sandbox_ready(st.sandbox), "a free token: it runs at once");
    s.finished(st.sandbox, f, Dur::from_millis(5), ms(3_000));
    (s, f, g)
}

#[test]
fn a_cold_start_leaves_its_token_to_others_and_takes_one_when_its_sandbox_is_ready() {
    let (mut s, f, g) = one_token(false);
    s.submit(InvocationId(1), g, ms(3_001));
    let cold = poll(&mut s, ms(3_001)).remove(0);
    assert!(cold.cold);
    assert_eq!(s.tokens_in_use(GpuId(0)), 0, "creating holds no token");
    // f runs warm meanwhile, on the only token.
    s.submit(InvocationId(2), f, ms(3_002));
    let warm = poll(&mut s, ms(3_002)).remove(0);
    assert!(!warm.cold);
    assert_eq!(s.tokens_in_use(GpuId(0)), 1);
    // g's sandbox is ready while f runs: it waits for the token.
    assert!(!s.sandbox_ready(cold.sandbox));
    assert!(poll(&mut s, ms(3_500)).is_empty());
    s.finished(warm.sandbox, f, Dur::from_millis(5), ms(6_000));
    let resumed = poll(&mut s, ms(6_000));
    assert_eq!(resumed.len(), 1);
    let r = &resumed[0];
    assert_eq!(
        (r.inv.id, r.sandbox, r.cold),
        (InvocationId(1), cold.sandbox, false)
    );
    assert!(r.moves.is_empty());
    assert_eq!(s.tokens_in_use(GpuId(0)), 1);
    s.finished(r.sandbox, g, Dur::from_millis(5), ms(6_005));
    assert_eq!(s.tokens_in_use(GpuId(0)), 0);
}

#[test]
fn a_cold_start_that_holds_its_token_keeps_others_waiting() {
    let (mut s, f, g) = one_token(true);
    s.submit(InvocationId(1), g, ms(3_001));
    let cold = poll(&mut s, ms(3_001)).remove(0);
    assert_eq!(s.tokens_in_use(GpuId(0)), 1);
    s.submit(InvocationId(2), f, ms(3_002));
    assert!(
        poll(&mut s, ms(3_002)).is_empty(),
        "f waits for g's cold start"
    );
    assert!(s.sandbox_ready(cold.sandbox));
}

#[test]
fn a_failed_creation_frees_no_token_it_did_not_hold() {
    let (mut s, f, g) = one_token(false);
    s.submit(InvocationId(1), g, ms(3_001));
    let cold = poll(&mut s, ms(3_001)).remove(0);
    s.submit(InvocationId(2), f, ms(3_002));
    let warm = poll(&mut s, ms(3_002)).remove(0);
    s.sandbox_failed(cold.sandbox, g, ms(3_100));
    assert_eq!(s.tokens_in_use(GpuId(0)), 1, "f still holds the token");
    // f's token is still accounted for: nothing else starts until it finishes.
    s.submit(InvocationId(3), f, ms(3_200));
    assert!(poll(&mut s, ms(3_200)).is_empty());
    s.finished(warm.sandbox, f, Dur::from_millis(5), ms(3_300));
    assert_eq!(poll(&mut s, ms(3_300)).len(), 1);
}

#[test]
fn a_device_at_its_creation_cap_sends_a_cold_start_elsewhere() {
    use crate::keepalive::CREATES_PER_TOKEN;
    use crate::placement::{Key, PlacementParams};
    let cfg = SchedulerConfig {
        policy: "fcfs".into(),
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(&cfg, vec![1000 * MB; 2]).unwrap();
    let ring =
        placing::device_ring(&PlacementParams::default(), 2, cfg.slots.tokens_per_gpu).unwrap();
    let home = |f: u32| *ring.home(Key::of_u64(u64::from(f))).unwrap();
    let cap = CREATES_PER_TOKEN * cfg.slots.tokens_per_gpu as usize;
    // cap + 1 functions that share one home device.
    let h = home(0);
    let same: Vec<u32> = (0..200u32)
        .filter(|&f| home(f) == h)
        .take(cap + 1)
        .collect();
    assert_eq!(same.len(), cap + 1);
    for &f in &same {
        let info = FunctionInfo {
            gpu_mem_bytes: 100 * MB,
            ..Default::default()
        };
        s.register(FunctionId(f), info);
    }
    // The first `cap` cold-start at home (creating holds no token, so the home stays light)...
    for (i, &f) in same[..cap].iter().enumerate() {
        s.submit(InvocationId(i as u64), FunctionId(f), ms(0));
        let st = poll(&mut s, ms(0));
        assert_eq!((st.len(), st[0].gpu, st[0].cold), (1, h, true));
    }
    // ...and the last, with its home at the cap, starts on the other device now rather than
    // waiting seconds for one of those sandboxes to be ready.
    let last = FunctionId(same[cap]);
    s.submit(InvocationId(99), last, ms(1));
    let st = poll(&mut s, ms(1));
    assert_eq!(
        st.len(),
        1,
        "the cold start waits for its home's creation cap"
    );
    assert!(st[0].cold);
    assert_ne!(st[0].gpu, h);
}
