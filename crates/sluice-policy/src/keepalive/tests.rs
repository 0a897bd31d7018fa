use super::*;
use proptest::prelude::*;

fn pool(ttl_s: f64, max: usize, creates: usize) -> WarmPool {
    let params = KeepAliveParams {
        ttl_s,
        max_sandboxes: Some(max),
        max_concurrent_creates: Some(creates),
        ..KeepAliveParams::default()
    };
    WarmPool::new(
        &params,
        PoolLimits::derive(&params, 2, &[1 << 30; 2], None, true),
    )
}

fn t(s: u64) -> Time {
    Time::from_micros(s * 1_000_000)
}

const F: FunctionId = FunctionId(0);

fn any(_: SandboxId) -> bool {
    false
}
const G: GpuId = GpuId(0);

#[test]
fn cold_then_warm_on_the_same_device_only() {
    let mut p = pool(10.0, 8, 2);
    let Acquire::Cold(a) = p.acquire(F, G, 1, t(0), any) else {
        panic!("first start is cold")
    };
    p.started(a);
    p.release(a, t(1));
    assert!(p.has_idle(F, G));
    assert!(!p.has_idle(F, GpuId(1)));
    assert!(matches!(
        p.acquire(F, GpuId(1), 1, t(2), any),
        Acquire::Cold(_)
    ));
    assert_eq!(p.acquire(F, G, 1, t(2), any), Acquire::Warm(a));
}

#[test]
fn acquire_prefers_matching_idle_sandboxes() {
    let mut p = pool(10.0, 8, 4);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let Acquire::Cold(id) = p.acquire(F, G, 1, t(0), any) else {
            panic!()
        };
        p.started(id);
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        p.release(*id, t(i as u64));
    }
    let first = ids[0];
    assert_eq!(
        p.acquire(F, G, 1, t(5), |id| id == first),
        Acquire::Warm(first)
    );
    assert_eq!(
        p.acquire(F, G, 1, t(5), any),
        Acquire::Warm(ids[2]),
        "else most recent"
    );
    assert_eq!(p.idle_on(F, G).collect::<Vec<_>>(), vec![ids[1]]);
}

#[test]
fn creation_cap_blocks_until_a_start_finishes() {
    let mut p = pool(10.0, 8, 1);
    let Acquire::Cold(a) = p.acquire(F, G, 1, t(0), any) else {
        panic!()
    };
    assert_eq!(p.acquire(FunctionId(1), G, 1, t(0), any), Acquire::Blocked);
    p.started(a);
    assert!(matches!(
        p.acquire(FunctionId(1), G, 1, t(0), any),
        Acquire::Cold(_)
    ));
}

#[test]
fn ttl_expiry_and_lru_trim() {
    let mut p = pool(10.0, 2, 4);
    let mut ids = Vec::new();
    for (i, f) in [0u32, 1, 2].into_iter().enumerate() {
        let Acquire::Cold(id) = p.acquire(FunctionId(f), G, 1, t(0), any) else {
            panic!()
        };
        p.started(id);
        p.release(id, t(i as u64));
        ids.push(id);
    }
    let trimmed: Vec<_> = p.trim_device(G).iter().map(|s| s.id).collect();
    assert_eq!(trimmed, vec![ids[0]]);
    assert_eq!(p.next_expiry(), Some(t(11)));
    assert!(p.expire(t(10), any).is_empty());
    let expired: Vec<_> = p.expire(t(11), any).iter().map(|s| s.id).collect();
    assert_eq!(expired, vec![ids[1]]);
    assert_eq!(p.len(), 1);
}

/// A TTL of 10 s and a spare TTL of 100 s.
fn spare_params() -> KeepAliveParams {
    KeepAliveParams {
        ttl_s: 10.0,
        spare_ttl_s: 100.0,
        ..KeepAliveParams::default()
    }
}

/// A pool of [`spare_params`] with no caps.
fn spare_pool() -> WarmPool {
    WarmPool::new(&spare_params(), PoolLimits::unlimited())
}

/// A sandbox of `func` on `gpu` that ran once and went idle at `at`.
fn ran_once(p: &mut WarmPool, func: FunctionId, gpu: GpuId, at: Time) -> SandboxId {
    let Acquire::Cold(id) = p.acquire(func, gpu, 1, at, any) else {
        panic!("a new sandbox")
    };
    p.started(id);
    p.release(id, at);
    id
}

#[test]
fn past_its_ttl_a_kept_sandbox_lingers_is_reused_warm_and_goes_at_the_spare_ttl() {
    let mut p = spare_pool();
    let a = ran_once(&mut p, F, G, t(0));
    let b = ran_once(&mut p, FunctionId(1), G, t(0));
    // At the TTL the caller keeps `a` (its memory is resident) and not `b`.
    assert_eq!(p.next_expiry(), Some(t(10)));
    let gone: Vec<_> = p.expire(t(10), |id| id == a).iter().map(|s| s.id).collect();
    assert_eq!(gone, vec![b]);
    assert!(p.is_lingering(a) && !p.is_lingering(b));
    assert_eq!(p.counts(), (0, 1, 0));
    assert_eq!(p.next_expiry(), Some(t(100)));
    // Reused like any idle sandbox (warm), it is no longer lingering, and its TTL starts again.
    assert_eq!(p.acquire(F, G, 1, t(50), any), Acquire::Warm(a));
    assert!(!p.is_lingering(a));
    p.release(a, t(51));
    assert_eq!(p.next_expiry(), Some(t(61)));
    // Lingering again from 61 s, it goes at 51 + 100 s.
    assert!(p.expire(t(61), |_| true).is_empty());
    assert!(p.expire(t(150), |_| true).is_empty());
    let gone: Vec<_> = p.expire(t(151), |_| true).iter().map(|s| s.id).collect();
    assert_eq!(gone, vec![a]);
    assert!(p.is_empty());
}

#[test]
fn a_lingering_sandbox_is_the_first_to_go_over_a_cap() {
    let params = spare_params();
    let limits = PoolLimits {
        sandboxes_per_device: vec![2],
        ..PoolLimits::unlimited()
    };
    let mut p = WarmPool::new(&params, limits);
    let old = ran_once(&mut p, F, G, t(0));
    p.expire(t(10), |_| true);
    assert!(p.is_lingering(old));
    // A newer idle sandbox, then a third: the device is over its cap of two.
    let newer = ran_once(&mut p, FunctionId(1), G, t(5));
    let _third = ran_once(&mut p, FunctionId(2), G, t(11));
    let trimmed: Vec<_> = p.trim_device(G).iter().map(|s| s.id).collect();
    assert_eq!(trimmed, vec![old]);
    assert!(p.get(newer).is_some());
}

#[test]
fn a_spare_ttl_below_the_ttl_keeps_nothing_longer() {
    let params = KeepAliveParams {
        ttl_s: 10.0,
        spare_ttl_s: 5.0,
        ..KeepAliveParams::default()
    };
    let mut p = WarmPool::new(&params, PoolLimits::unlimited());
    let a = ran_once(&mut p, F, G, t(0));
    let gone: Vec<_> = p.expire(t(10), |_| true).iter().map(|s| s.id).collect();
    assert_eq!(gone, vec![a]);
}

#[test]
fn busy_sandboxes_with_spare_capacity_are_shared() {
    let mut p = pool(10.0, 8, 4);
    let Acquire::Cold(a) = p.acquire(F, G, 2, t(0), any) else {
        panic!("first start is cold")
    };
    assert!(
        matches!(p.acquire(F, G, 2, t(0), any), Acquire::Cold(b) if b != a),
        "a starting sandbox is not shared"
    );
    p.started(a);
    assert!(p.has_spare(F, G) && !p.has_spare(F, GpuId(1)));
    assert_eq!(p.acquire(F, G, 2, t(1), any), Acquire::Shared(a));
    assert_eq!(p.get(a).map(|s| s.running), Some(2));
    assert!(!p.has_spare(F, G), "full at its capacity");
    assert!(matches!(
        p.acquire(F, GpuId(1), 2, t(1), any),
        Acquire::Cold(_)
    ));
    p.release(a, t(2));
    let sb = *p.get(a).unwrap();
    assert_eq!((sb.state, sb.running), (SandboxState::Busy, 1));
    assert!(!p.has_idle(F, G), "one invocation still runs in it");
    assert_eq!(p.acquire(F, G, 2, t(3), any), Acquire::Shared(a));
    p.release(a, t(4));
    p.release(a, t(5));
    assert_eq!(p.get(a).map(|s| s.state), Some(SandboxState::Idle));
    assert_eq!(p.idle_on(F, G).collect::<Vec<_>>(), vec![a]);
    assert_eq!(p.acquire(F, G, 2, t(6), any), Acquire::Warm(a));
}

#[test]
fn idle_first_then_the_least_loaded_busy_sandbox() {
    let mut p = pool(10.0, 8, 4);
    let (Acquire::Cold(a), Acquire::Cold(b)) =
        (p.acquire(F, G, 3, t(0), any), p.acquire(F, G, 3, t(0), any))
    else {
        panic!("both cold: neither is started yet")
    };
    p.started(a);
    p.started(b);
    assert_eq!(
        p.acquire(F, G, 3, t(1), any),
        Acquire::Shared(a),
        "tie: lowest id"
    );
    p.release(b, t(2));
    assert_eq!(
        p.acquire(F, G, 3, t(3), any),
        Acquire::Warm(b),
        "an idle sandbox goes before sharing a busy one"
    );
    assert_eq!(
        p.acquire(F, G, 3, t(4), any),
        Acquire::Shared(b),
        "b runs 1, a runs 2"
    );
    assert_eq!(p.counts(), (0, 0, 2));
}

#[test]
fn removing_a_shared_sandbox_and_odd_calls_keep_the_pool_consistent() {
    let mut p = pool(10.0, 8, 1);
    let Acquire::Cold(a) = p.acquire(F, G, 4, t(0), any) else {
        panic!()
    };
    p.started(a);
    p.started(a);
    assert_eq!(p.acquire(F, G, 4, t(1), any), Acquire::Shared(a));
    assert_eq!(p.remove(a).map(|s| s.running), Some(2));
    assert!(!p.has_spare(F, G));
    p.release(a, t(2));
    p.started(a);
    assert!(p.remove(a).is_none());
    assert_eq!((p.len(), p.counts()), (0, (0, 0, 0)));
    // A prewarm creates even when an idle sandbox exists.
    let Acquire::Cold(b) = p.acquire(F, G, 1, t(3), any) else {
        panic!()
    };
    p.started(b);
    p.release(b, t(4));
    let c = p.create(F, G, 1, t(5)).expect("below the cap");
    assert_ne!(b, c);
    assert!(p.has_idle(F, G));
    assert_eq!(p.create(F, G, 1, t(5)), None, "creation cap");
}

/// Checks every internal index against the sandbox records.
fn check(p: &WarmPool) -> Result<(), TestCaseError> {
    let mut starting = 0;
    for sb in p.sandboxes.values() {
        prop_assert!(sb.capacity >= 1 && sb.running <= sb.capacity, "{:?}", sb);
        prop_assert_eq!(sb.state == SandboxState::Idle, sb.running == 0);
        let idle = p
            .idle
            .get(&(sb.func, sb.gpu))
            .is_some_and(|v| v.contains(&sb.id));
        prop_assert_eq!(idle, sb.state == SandboxState::Idle);
        let key = (sb.last_used, sb.id);
        prop_assert_eq!(
            p.idle_lru.contains(&key) || p.lingering.contains(&key),
            idle
        );
        let listed = p
            .spare
            .get(&(sb.func, sb.gpu))
            .is_some_and(|s| s.contains(&(sb.running, sb.id)));
        prop_assert_eq!(
            listed,
            sb.state == SandboxState::Busy && sb.running < sb.capacity
        );
        starting += usize::from(sb.state == SandboxState::Starting);
    }
    for (g, d) in p.devices.iter().enumerate() {
        let on = p.sandboxes.values().filter(|sb| sb.gpu.index() == g);
        prop_assert_eq!(on.clone().count(), d.sandboxes, "device {} count", g);
        let starting = on.filter(|sb| sb.state == SandboxState::Starting).count();
        prop_assert_eq!(starting, d.creating, "device {} creating", g);
    }
    let spare: usize = p.spare.iter().map(|(_, s)| s.len()).sum();
    prop_assert!(spare <= p.sandboxes.len());
    prop_assert_eq!(starting, p.creating());
    prop_assert_eq!(
        p.idle_lru.len() + p.lingering.len(),
        p.idle.iter().map(|(_, v)| v.len()).sum::<usize>()
    );
    // Every lingering sandbox is idle, listed once, and older than every one within its TTL.
    for &(used, id) in p.lingering.iter() {
        prop_assert!(p
            .get(id)
            .is_some_and(|s| s.state == SandboxState::Idle && s.last_used == used));
        prop_assert!(!p.idle_lru.contains(&(used, id)));
        prop_assert!(p.idle_lru.first().is_none_or(|&first| (used, id) < first));
    }
    for f in 0..8 {
        let func = FunctionId(f);
        let n = p.idle.iter().filter(|((g, _), _)| *g == func);
        let n: usize = n.map(|(_, v)| v.len()).sum();
        prop_assert_eq!(p.has_idle_of(func), n > 0);
        prop_assert_eq!(p.idle_of(func).count(), n);
    }
    Ok(())
}

proptest! {
    /// Random acquires (capacities 1 to 3), starts, releases, removals and expiry (keeping odd
    /// sandboxes past their TTL, as spare keep-alive): the creation cap holds, every sandbox runs
    /// between 0 and its capacity invocations, exactly as many as were acquired and not
    /// released, and every index matches the records.
    #[test]
    fn counts_stay_consistent(ops in proptest::collection::vec((0u8..5, 0u32..4, 0u16..2), 1..300)) {
        let mut p = pool(5.0, 6, 2);
        // One entry per invocation holding a sandbox.
        let mut live: Vec<SandboxId> = Vec::new();
        for (i, (op, f, g)) in ops.into_iter().enumerate() {
            let now = t(i as u64);
            let (func, gpu) = (FunctionId(f), GpuId(g));
            match op {
                0 => {
                    let (idle, spare) = (p.has_idle(func, gpu), p.has_spare(func, gpu));
                    match p.acquire(func, gpu, f % 3 + 1, now, any) {
                        Acquire::Warm(id) => { prop_assert!(idle); live.push(id) }
                        Acquire::Shared(id) => { prop_assert!(!idle && spare); live.push(id) }
                        Acquire::Cold(id) => { prop_assert!(!idle && !spare); live.push(id) }
                        Acquire::Blocked => prop_assert_eq!(p.creating(), 2),
                    }
                }
                1 => {
                    let starting = live.iter().copied()
                        .find(|id| p.get(*id).is_some_and(|s| s.state == SandboxState::Starting));
                    if let Some(id) = starting { p.started(id) }
                }
                2 => if let Some(id) = live.pop() { p.release(id, now) },
                3 => { p.expire(now, |id| id.0 % 2 == 1); p.trim(); }
                _ => if let Some(id) = live.pop() { p.remove(id); live.retain(|x| *x != id); },
            }
            prop_assert!(p.creating() <= 2);
            let (s, idle, busy) = p.counts();
            prop_assert_eq!(s + idle + busy, p.len());
            for sb in p.sandboxes.values() {
                let n = live.iter().filter(|id| **id == sb.id).count();
                prop_assert_eq!(sb.running as usize, n);
            }
            prop_assert!(live.iter().all(|id| p.get(*id).is_some()));
            check(&p)?;
        }
    }
}

#[test]
fn per_device_caps_trim_and_block_per_device() {
    let params = KeepAliveParams::default();
    let limits = PoolLimits {
        max_sandboxes: None,
        max_creates: None,
        sandboxes_per_device: vec![2, 2],
        creates_per_device: 1,
    };
    let mut p = WarmPool::new(&params, limits);
    let Acquire::Cold(a) = p.acquire(F, G, 1, t(0), any) else {
        panic!()
    };
    assert_eq!(p.acquire(FunctionId(1), G, 1, t(0), any), Acquire::Blocked);
    assert!(
        matches!(
            p.acquire(FunctionId(1), GpuId(1), 1, t(0), any),
            Acquire::Cold(_)
        ),
        "the other device has its own creation cap"
    );
    p.started(a);
    p.release(a, t(1));
    for f in 1..3 {
        let Acquire::Cold(id) = p.acquire(FunctionId(f), G, 1, t(2), any) else {
            panic!()
        };
        p.started(id);
        p.release(id, t(2 + u64::from(f)));
    }
    assert_eq!(p.len_on(G), 3);
    let trimmed: Vec<_> = p.trim_device(G).iter().map(|s| s.id).collect();
    assert_eq!(
        trimmed,
        vec![a],
        "the device's least recently used idle sandbox"
    );
    assert_eq!((p.len_on(G), p.len_on(GpuId(1))), (2, 1));
    assert!(p.trim().is_empty());
}

#[test]
fn bad_keepalive_values_are_refused_naming_the_key() {
    for (params, key) in [
        (
            KeepAliveParams {
                ttl_s: -1.0,
                ..KeepAliveParams::default()
            },
            "keepalive.ttl_s",
        ),
        (
            KeepAliveParams {
                spare_ttl_s: f64::NAN,
                ..KeepAliveParams::default()
            },
            "keepalive.spare_ttl_s",
        ),
        (
            KeepAliveParams {
                spare_ttl_s: -5.0,
                ..KeepAliveParams::default()
            },
            "keepalive.spare_ttl_s",
        ),
        (
            KeepAliveParams {
                memory_factor: 0.0,
                ..KeepAliveParams::default()
            },
            "keepalive.memory_factor",
        ),
    ] {
        let err = params.validate().expect_err(key);
        assert!(err.contains(key), "{err}");
    }
    assert!(KeepAliveParams::default().validate().is_ok());
    let off = KeepAliveParams {
        spare_ttl_s: 0.0,
        ..KeepAliveParams::default()
    };
    assert_eq!(
        off.longest(),
        Dur::from_secs(600),
        "the longer of the two TTLs"
    );
    assert_eq!(KeepAliveParams::default().longest(), Dur::from_secs(3_600));
}
