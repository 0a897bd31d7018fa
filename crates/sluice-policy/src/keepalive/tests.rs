use super::*;
use proptest::prelude::*;

fn pool(ttl_s: f64, max: usize, creates: usize) -> WarmPool {
    WarmPool::new(&KeepAliveParams {
        ttl_s,
        max_sandboxes: max,
        max_concurrent_creates: creates,
    })
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
    let Acquire::Cold(a) = p.acquire(F, G, t(0), any) else {
        panic!("first start is cold")
    };
    p.started(a);
    p.release(a, t(1));
    assert!(p.has_idle(F, G));
    assert!(!p.has_idle(F, GpuId(1)));
    assert!(matches!(
        p.acquire(F, GpuId(1), t(2), any),
        Acquire::Cold(_)
    ));
    assert_eq!(p.acquire(F, G, t(2), any), Acquire::Warm(a));
}

#[test]
fn acquire_prefers_matching_idle_sandboxes() {
    let mut p = pool(10.0, 8, 4);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let Acquire::Cold(id) = p.acquire(F, G, t(0), any) else {
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
        p.acquire(F, G, t(5), |id| id == first),
        Acquire::Warm(first)
    );
    assert_eq!(
        p.acquire(F, G, t(5), any),
        Acquire::Warm(ids[2]),
        "else most recent"
    );
    assert_eq!(p.idle_on(F, G).collect::<Vec<_>>(), vec![ids[1]]);
}

#[test]
fn creation_cap_blocks_until_a_start_finishes() {
    let mut p = pool(10.0, 8, 1);
    let Acquire::Cold(a) = p.acquire(F, G, t(0), any) else {
        panic!()
    };
    assert_eq!(p.acquire(FunctionId(1), G, t(0), any), Acquire::Blocked);
    p.started(a);
    assert!(matches!(
        p.acquire(FunctionId(1), G, t(0), any),
        Acquire::Cold(_)
    ));
}

#[test]
fn ttl_expiry_and_lru_trim() {
    let mut p = pool(10.0, 2, 4);
    let mut ids = Vec::new();
    for (i, f) in [0u32, 1, 2].into_iter().enumerate() {
        let Acquire::Cold(id) = p.acquire(FunctionId(f), G, t(0), any) else {
            panic!()
        };
        p.started(id);
        p.release(id, t(i as u64));
        ids.push(id);
    }
    let trimmed: Vec<_> = p.trim().iter().map(|s| s.id).collect();
    assert_eq!(trimmed, vec![ids[0]]);
    assert_eq!(p.next_expiry(), Some(t(11)));
    assert!(p.expire(t(10)).is_empty());
    let expired: Vec<_> = p.expire(t(11)).iter().map(|s| s.id).collect();
    assert_eq!(expired, vec![ids[1]]);
    assert_eq!(p.len(), 1);
}

proptest! {
    /// The pool never has more sandboxes starting than the cap; counts stay consistent.
    #[test]
    fn counts_stay_consistent(ops in proptest::collection::vec((0u8..5, 0u32..4, 0u16..2), 1..300)) {
        let mut p = pool(5.0, 6, 2);
        let mut live: Vec<SandboxId> = Vec::new();
        for (i, (op, f, g)) in ops.into_iter().enumerate() {
            let now = t(i as u64);
            match op {
                0 => match p.acquire(FunctionId(f), GpuId(g), now, any) {
                    Acquire::Warm(id) | Acquire::Cold(id) => live.push(id),
                    Acquire::Blocked => prop_assert_eq!(p.creating(), 2),
                },
                1 => if let Some(&id) = live.first() { p.started(id) },
                2 => if let Some(id) = live.pop() { p.release(id, now) },
                3 => { p.expire(now); p.trim(); }
                _ => if let Some(id) = live.pop() { p.remove(id); },
            }
            prop_assert!(p.creating() <= 2);
            let (s, idle, busy) = p.counts();
            prop_assert_eq!(s + idle + busy, p.len());
        }
    }
}
