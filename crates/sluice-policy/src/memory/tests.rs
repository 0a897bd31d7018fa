use super::*;
use proptest::prelude::*;

const MB: u64 = 1 << 20;

fn mem(cap_mb: u64, k: f64) -> DeviceMemory {
    DeviceMemory::new(
        vec![cap_mb * MB],
        &MemoryParams {
            oversubscribe: k,
            flow_coupling: FlowCoupling::Lazy,
        },
    )
}

fn t(us: u64) -> Time {
    Time::from_micros(us)
}

#[test]
fn new_sandbox_allocates_without_moving() {
    let mut m = mem(100, 1.0);
    m.add(SandboxId(1), GpuId(0), 40 * MB, Rank::Normal, t(0));
    assert_eq!(m.admit(SandboxId(1), t(1)), Ok(vec![]));
    assert_eq!(m.resident(GpuId(0)), 40 * MB);
}

#[test]
fn lru_idle_sandboxes_make_room() {
    let mut m = mem(100, 1.0);
    for (i, at) in [(1, 10), (2, 20), (3, 30)] {
        m.add(SandboxId(i), GpuId(0), 30 * MB, Rank::Normal, t(0));
        m.admit(SandboxId(i), t(0)).unwrap();
        m.release(SandboxId(i), t(at));
    }
    m.add(SandboxId(4), GpuId(0), 50 * MB, Rank::Normal, t(40));
    let moves = m.admit(SandboxId(4), t(40)).unwrap();
    let victims: Vec<_> = moves.iter().map(|mv| mv.sandbox).collect();
    assert_eq!(victims, vec![SandboxId(1), SandboxId(2)]);
    assert!(moves.iter().all(|mv| mv.to == Location::Host));
    assert_eq!(m.resident(GpuId(0)), 80 * MB);
    // Bringing sandbox 1 back moves its bytes to the device (after evicting LRU sandbox 3).
    let moves = m.admit(SandboxId(1), t(50)).unwrap();
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[0].sandbox, SandboxId(3));
    assert_eq!(moves[1].to, Location::Device);
}

#[test]
fn busy_sandboxes_are_never_evicted_and_refusal_changes_nothing() {
    let mut m = mem(100, 1.0);
    m.add(SandboxId(1), GpuId(0), 60 * MB, Rank::Normal, t(0));
    m.admit(SandboxId(1), t(0)).unwrap();
    m.add(SandboxId(2), GpuId(0), 50 * MB, Rank::Normal, t(0));
    assert!(matches!(
        m.admit(SandboxId(2), t(1)),
        Err(AdmitError::NoRoom { .. })
    ));
    assert_eq!(m.resident(GpuId(0)), 60 * MB);
    assert_eq!(m.location(SandboxId(1)), Some(Location::Device));
    m.add(SandboxId(3), GpuId(0), 101 * MB, Rank::Normal, t(0));
    assert!(matches!(
        m.admit(SandboxId(3), t(1)),
        Err(AdmitError::TooLarge { .. })
    ));
}

#[test]
fn a_sandbox_stays_resident_until_its_last_invocation_ends() {
    let mut m = mem(100, 1.0);
    m.add(SandboxId(1), GpuId(0), 60 * MB, Rank::Normal, t(0));
    assert_eq!(m.admit(SandboxId(1), t(0)), Ok(vec![]));
    assert_eq!(
        m.admit(SandboxId(1), t(1)),
        Ok(vec![]),
        "a second invocation"
    );
    assert_eq!(m.running(SandboxId(1)), 2);
    assert_eq!(m.resident(GpuId(0)), 60 * MB, "counted once");
    m.release(SandboxId(1), t(2));
    assert_eq!(m.running(SandboxId(1)), 1);
    assert_eq!(m.offload(SandboxId(1)), None, "one invocation still runs");
    m.add(SandboxId(2), GpuId(0), 50 * MB, Rank::Hot, t(3));
    assert!(
        matches!(m.admit(SandboxId(2), t(3)), Err(AdmitError::NoRoom { .. })),
        "a sandbox with a running invocation is never pushed out"
    );
    assert_eq!(m.location(SandboxId(1)), Some(Location::Device));
    m.release(SandboxId(1), t(4));
    m.release(SandboxId(1), t(5));
    assert_eq!(m.running(SandboxId(1)), 0);
    let moves = m.admit(SandboxId(2), t(6)).unwrap();
    assert_eq!(moves.len(), 1, "now idle: pushed out for the new start");
    assert_eq!(
        (moves[0].sandbox, moves[0].to),
        (SandboxId(1), Location::Host)
    );
}

#[test]
fn oversubscription_raises_the_limit() {
    let mut m = mem(100, 1.5);
    m.add(SandboxId(1), GpuId(0), 80 * MB, Rank::Normal, t(0));
    m.admit(SandboxId(1), t(0)).unwrap();
    m.add(SandboxId(2), GpuId(0), 60 * MB, Rank::Normal, t(0));
    assert!(m.admit(SandboxId(2), t(0)).is_ok());
    assert_eq!(m.resident(GpuId(0)), 140 * MB);
}

#[test]
fn prefetch_only_into_free_room_and_offload_only_idle() {
    let mut m = mem(100, 1.0);
    m.add(SandboxId(1), GpuId(0), 60 * MB, Rank::Normal, t(0));
    m.admit(SandboxId(1), t(0)).unwrap();
    assert_eq!(m.offload(SandboxId(1)), None, "busy sandboxes stay");
    m.release(SandboxId(1), t(5));
    assert!(m.offload(SandboxId(1)).is_some());
    m.add(SandboxId(2), GpuId(0), 50 * MB, Rank::Normal, t(6));
    m.admit(SandboxId(2), t(6)).unwrap();
    assert_eq!(m.prefetch(SandboxId(1)), None, "would not fit");
    m.release(SandboxId(2), t(7));
    m.offload(SandboxId(2)).unwrap();
    assert_eq!(m.prefetch(SandboxId(1)).map(|mv| mv.bytes), Some(60 * MB));
    m.remove(SandboxId(1));
    assert_eq!(m.resident(GpuId(0)), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Add(u64, u64),
    Admit(u64),
    Release(u64),
    Prefetch(u64),
    Offload(u64),
    Remove(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..12, 1u64..70).prop_map(|(s, b)| Op::Add(s, b)),
        (0u64..12).prop_map(Op::Admit),
        (0u64..12).prop_map(Op::Release),
        (0u64..12).prop_map(Op::Prefetch),
        (0u64..12).prop_map(Op::Offload),
        (0u64..12).prop_map(Op::Remove),
    ]
}

proptest! {
    /// Residency never exceeds the limit, running sandboxes stay resident (however many
    /// invocations run in them), running counts match, and the resident count equals the sum
    /// over resident sandboxes.
    #[test]
    fn residency_invariants(ops in proptest::collection::vec(op(), 1..300), k in prop_oneof![Just(1.0), Just(1.5)]) {
        let mut m = mem(100, k);
        // Running invocations per sandbox.
        let mut busy = std::collections::BTreeMap::<u64, u32>::new();
        let mut sizes = std::collections::BTreeMap::new();
        for (i, o) in ops.into_iter().enumerate() {
            let now = t(i as u64);
            match o {
                Op::Add(s, b) => { m.add(SandboxId(s), GpuId(0), b * MB, Rank::Normal, now); busy.remove(&s); sizes.insert(s, b * MB); }
                Op::Admit(s) => { if m.admit(SandboxId(s), now).is_ok() { *busy.entry(s).or_default() += 1; } }
                Op::Release(s) => {
                    m.release(SandboxId(s), now);
                    if let Some(n) = busy.get_mut(&s) { *n -= 1; if *n == 0 { busy.remove(&s); } }
                }
                Op::Prefetch(s) => { m.prefetch(SandboxId(s)); }
                Op::Offload(s) => { m.offload(SandboxId(s)); }
                Op::Remove(s) => { m.remove(SandboxId(s)); busy.remove(&s); sizes.remove(&s); }
            }
            prop_assert!(m.resident(GpuId(0)) <= m.limit(GpuId(0)));
            for (s, n) in &busy {
                prop_assert_eq!(m.location(SandboxId(*s)), Some(Location::Device));
                prop_assert_eq!(m.running(SandboxId(*s)), *n);
            }
            let sum: u64 = sizes.iter()
                .filter(|(s, _)| m.location(SandboxId(**s)) == Some(Location::Device))
                .map(|(_, b)| *b).sum();
            prop_assert_eq!(sum, m.resident(GpuId(0)));
        }
    }
}

#[test]
fn lower_ranks_are_pushed_out_first() {
    let mut m = mem(100, 1.0);
    for (i, rank) in [(1, Rank::Hot), (2, Rank::Normal), (3, Rank::Hot)] {
        m.add(SandboxId(i), GpuId(0), 30 * MB, rank, t(0));
        m.admit(SandboxId(i), t(0)).unwrap();
        m.release(SandboxId(i), t(i));
    }
    m.set_rank(SandboxId(3), Rank::Normal);
    m.add(SandboxId(4), GpuId(0), 50 * MB, Rank::Hot, t(9));
    let victims: Vec<_> = m
        .admit(SandboxId(4), t(9))
        .unwrap()
        .iter()
        .map(|mv| mv.sandbox)
        .collect();
    // Sandboxes 2 and 3 are Normal (2 used earlier); 1, the least recently used, is Hot and stays.
    assert_eq!(victims, vec![SandboxId(2), SandboxId(3)]);
}
