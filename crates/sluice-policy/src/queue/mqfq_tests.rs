use super::*;
use proptest::prelude::*;
use sluice_core::{GpuId, InvocationId};

fn inv(id: u64, func: u32, est_ms: u64) -> Invocation {
    Invocation {
        id: InvocationId(id),
        func: FunctionId(func),
        arrival: Time::ZERO,
        est_service: Dur::from_millis(est_ms),
    }
}

fn ms(x: u64) -> Time {
    Time::from_micros(x * 1_000)
}

fn ctx_cold() -> impl Fn(FunctionId) -> bool {
    |_| false
}

fn dispatch(q: &mut Mqfq, now: Time, warm: &dyn Fn(FunctionId) -> bool) -> Option<Invocation> {
    q.dispatch(
        now,
        &DispatchCtx {
            gpu: GpuId(0),
            warm,
        },
    )
}

fn params(throttle_s: f64, ttl: Ttl) -> MqfqParams {
    MqfqParams {
        throttle_s,
        ttl,
        top_k: 20,
        sticky: false,
    }
}

#[test]
fn equal_weights_alternate_between_backlogged_flows() {
    let mut q = Mqfq::plain(params(10.0, Ttl::Relative(0.0)));
    for i in 0..4 {
        q.enqueue(inv(i, 0, 100), ms(0));
    }
    for i in 4..8 {
        q.enqueue(inv(i, 1, 100), ms(0));
    }
    let order: Vec<u32> = (0..8)
        .map(|_| dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0)
        .collect();
    assert_eq!(order, vec![0, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn weights_share_service_proportionally() {
    let mut q = Mqfq::plain(params(10.0, Ttl::Relative(0.0)));
    q.register(FunctionId(0), 2.0);
    for i in 0..30 {
        q.enqueue(inv(i, 0, 100), ms(0));
        q.enqueue(inv(100 + i, 1, 100), ms(0));
    }
    let first: Vec<u32> = (0..30)
        .map(|_| dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0)
        .collect();
    let heavy = first.iter().filter(|&&f| f == 0).count();
    assert!(
        (19..=21).contains(&heavy),
        "weight-2 flow got {heavy} of 30"
    );
}

#[test]
fn a_flow_ahead_of_virtual_time_by_more_than_t_is_throttled() {
    // T = 0.25 s; flow 0's items cost 0.1 s each, flow 1 has one long item of 10 s.
    let mut q = Mqfq::plain(params(0.25, Ttl::Relative(0.0)));
    q.enqueue(inv(1, 1, 10_000), ms(0));
    for i in 0..10 {
        q.enqueue(inv(10 + i, 0, 100), ms(0));
    }
    let mut out = Vec::new();
    // Both start at tag 0. Take flow 1's only item: it leaves the backlog, VT follows flow 0.
    let mut served0 = 0;
    while let Some(i) = dispatch(&mut q, ms(0), &ctx_cold()) {
        out.push(i.func.0);
        if i.func.0 == 0 {
            served0 += 1;
        }
    }
    // With flow 1 empty, flow 0 alone defines VT and is never throttled against itself.
    assert_eq!(served0, 10);
    assert_eq!(q.len(), 0);

    // Now flow 1 is backlogged with tag far behind flow 0's finish tags: flow 0 throttles.
    let mut q = Mqfq::plain(params(0.25, Ttl::Relative(0.0)));
    for i in 0..10 {
        q.enqueue(inv(i, 0, 100), ms(0));
    }
    q.enqueue(inv(100, 1, 10_000), ms(0));
    q.enqueue(inv(101, 1, 10_000), ms(0));
    let a = dispatch(&mut q, ms(0), &ctx_cold()).unwrap(); // tags tie at 0: lower func first
    assert_eq!(a.func.0, 0);
    let b = dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    assert_eq!(b.func.0, 1); // flow 1 head tag 0
                             // VT is now min(flow0 head = 0.1 s, flow1 head = 10 s) = 0.1 s; flow 1 throttled (10 > 0.35).
    assert_eq!(q.flow_state(FunctionId(1)), Some(FlowState::Throttled));
    // Flow 0 keeps being served while flow 1 waits; flow 1 is never dispatched while throttled.
    for _ in 0..9 {
        let x = dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
        assert_eq!(x.func.0, 0);
    }
    // Flow 0 empty: flow 1 defines VT and becomes Active again.
    assert_eq!(q.flow_state(FunctionId(1)), Some(FlowState::Active));
    assert_eq!(dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0, 1);
}

#[test]
fn ttl_keeps_an_emptied_flow_active_then_expires() {
    let mut q = Mqfq::sticky(params(5.0, Ttl::AbsoluteS(2.0)));
    q.enqueue(inv(1, 0, 100), ms(0));
    let mut ev = Vec::new();
    q.drain_events(&mut ev);
    assert_eq!(ev.last().map(|e| e.state), Some(FlowState::Active));
    dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    q.complete(FunctionId(0), ms(100));
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Active));
    assert_eq!(q.next_timer(), Some(ms(2_100)));
    q.tick(ms(2_099));
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Active));
    q.tick(ms(2_100));
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Inactive));
    ev.clear();
    q.drain_events(&mut ev);
    assert_eq!(
        ev.last().map(|e| (e.state, e.at)),
        Some((FlowState::Inactive, ms(2_100)))
    );
}

#[test]
fn relative_ttl_scales_with_the_estimate_and_arrival_cancels_expiry() {
    let mut q = Mqfq::sticky(params(5.0, Ttl::Relative(1.5)));
    q.set_estimate(FunctionId(0), Dur::from_millis(200));
    q.enqueue(inv(1, 0, 200), ms(0));
    dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    q.complete(FunctionId(0), ms(200));
    assert_eq!(q.next_timer(), Some(ms(500)));
    q.enqueue(inv(2, 0, 200), ms(300));
    assert_eq!(q.next_timer(), None, "a backlogged flow has no TTL running");
    q.tick(ms(1_000));
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Active));
}

#[test]
fn plain_mqfq_goes_inactive_at_once() {
    let mut q = Mqfq::plain(MqfqParams::default());
    q.enqueue(inv(1, 0, 100), ms(0));
    dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Active));
    q.complete(FunctionId(0), ms(100));
    assert_eq!(q.flow_state(FunctionId(0)), Some(FlowState::Inactive));
}

#[test]
fn sticky_prefers_warm_flows_within_top_k() {
    let mut q = Mqfq::sticky(MqfqParams {
        sticky: false,
        ..MqfqParams::default()
    });
    q.enqueue(inv(1, 0, 100), ms(0));
    q.enqueue(inv(2, 1, 100), ms(0));
    let warm1 = |f: FunctionId| f.0 == 1;
    assert_eq!(dispatch(&mut q, ms(0), &warm1).unwrap().func.0, 1);
}

#[test]
fn sticky_keeps_serving_the_last_flow_while_eligible_and_warm() {
    let mut q = Mqfq::sticky(MqfqParams::default());
    for i in 0..3 {
        q.enqueue(inv(i, 0, 100), ms(0));
        q.enqueue(inv(10 + i, 1, 100), ms(0));
    }
    let all_warm = |_: FunctionId| true;
    let order: Vec<u32> = (0..6)
        .map(|_| dispatch(&mut q, ms(0), &all_warm).unwrap().func.0)
        .collect();
    assert_eq!(order, vec![0, 0, 0, 1, 1, 1]);
}

#[test]
fn sticky_avoids_a_second_cold_sandbox_for_a_busy_flow() {
    let mut q = Mqfq::sticky(MqfqParams::default());
    for i in 0..2 {
        q.enqueue(inv(i, 0, 100), ms(0));
    }
    q.enqueue(inv(10, 1, 100), ms(0));
    // Nothing warm: flow 0 (smallest tag) first; then flow 0 is in flight with no idle sandbox,
    // so flow 1, which must cold-start anyway, goes before a second sandbox for flow 0.
    assert_eq!(dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0, 0);
    assert_eq!(dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0, 1);
    assert_eq!(dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func.0, 0);
}

#[test]
fn requeue_restores_the_head_and_its_tag() {
    let mut q = Mqfq::plain(MqfqParams::default());
    q.enqueue(inv(1, 0, 100), ms(0));
    q.enqueue(inv(2, 0, 100), ms(0));
    let before = q.head_start_tag(FunctionId(0));
    let a = dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    q.requeue_front(a, ms(0));
    assert_eq!(q.head_start_tag(FunctionId(0)), before);
    assert_eq!(
        dispatch(&mut q, ms(0), &ctx_cold()).unwrap().id,
        InvocationId(1)
    );
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue(u32, u64),
    Dispatch(u16, u8),
    Complete,
    Requeue,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..6, 1u64..2_000).prop_map(|(f, e)| Op::Enqueue(f, e)),
        4 => (0u16..2, any::<u8>()).prop_map(|(g, w)| Op::Dispatch(g, w)),
        2 => Just(Op::Complete),
        1 => Just(Op::Requeue),
        1 => (1u64..3_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Over random event sequences: virtual time never decreases, every dispatched invocation's
    /// flow was eligible (never Throttled), start tags within a flow never decrease, events only
    /// report real changes, and FIFO holds within each flow.
    #[test]
    fn mqfq_invariants(ops in proptest::collection::vec(op(), 1..400), sticky in any::<bool>(), throttle in 0.0f64..3.0) {
        let p = MqfqParams { throttle_s: throttle, ttl: Ttl::AbsoluteS(1.0), top_k: 3, sticky };
        let mut q = if sticky { Mqfq::sticky(p) } else { Mqfq::plain(p) };
        let throttle_us = Dur::from_secs_f64(throttle).as_micros();
        let mut now = Time::ZERO;
        let mut next_id = 0u64;
        let mut in_flight: Vec<Invocation> = Vec::new();
        let mut last_id_out: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut last_tag: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut vt = 0u64;
        let mut events = Vec::new();
        for o in ops {
            match o {
                Op::Enqueue(f, e) => { q.enqueue(inv(next_id, f, e), now); next_id += 1; }
                Op::Dispatch(g, w) => {
                    let warm = move |f: FunctionId| (w >> (f.0 % 8)) & 1 == 1;
                    let tags: Vec<Option<u64>> = (0..6).map(|f| q.head_start_tag(FunctionId(f))).collect();
                    let vt_before = q.virtual_time();
                    if let Some(i) = q.dispatch(now, &DispatchCtx { gpu: GpuId(g), warm: &warm }) {
                        let tag = tags[i.func.index()].expect("dispatched flow was backlogged");
                        prop_assert!(tag <= vt_before + throttle_us, "throttled flow dispatched");
                        if let Some(prev) = last_id_out.insert(i.func.0, i.id.0) {
                            prop_assert!(prev < i.id.0, "FIFO within a flow");
                        }
                        if let Some(prev) = last_tag.insert(i.func.0, tag) {
                            prop_assert!(prev <= tag, "tags monotone within a flow");
                        }
                        in_flight.push(i);
                    } else {
                        prop_assert!(q.is_empty(), "the smallest start tag is always eligible");
                    }
                }
                Op::Complete => if !in_flight.is_empty() { let i = in_flight.remove(0); q.complete(i.func, now); },
                Op::Requeue => if let Some(i) = in_flight.pop() {
                    q.requeue_front(i, now);
                    last_id_out.remove(&i.func.0);
                    last_tag.remove(&i.func.0);
                },
                Op::Advance(ms_) => { now += Dur::from_millis(ms_); q.tick(now); }
            }
            prop_assert!(q.virtual_time() >= vt);
            vt = q.virtual_time();
            q.drain_events(&mut events);
            for e in events.drain(..) {
                prop_assert_eq!(q.flow_state(e.func).is_some(), true);
            }
            for f in 0..6u32 {
                if let Some(t) = q.head_start_tag(FunctionId(f)) {
                    let want = if t <= vt + throttle_us { FlowState::Active } else { FlowState::Throttled };
                    prop_assert_eq!(q.flow_state(FunctionId(f)), Some(want));
                }
            }
        }
    }
}

#[test]
fn a_burst_costed_at_the_prior_is_re_costed_when_the_function_is_measured() {
    // Flow 0 is a 5 ms function whose burst of 40 arrived before its first run was measured,
    // so it was costed at a 500 ms prior (20 s of virtual time); flow 1 has three 500 ms
    // invocations.
    let mut q = Mqfq::plain(params(60.0, Ttl::Relative(0.0)));
    for i in 0..40 {
        q.enqueue(inv(i, 0, 500), ms(0));
    }
    for i in 100..103 {
        q.enqueue(inv(i, 1, 500), ms(0));
    }
    assert_eq!(
        dispatch(&mut q, ms(0), &ctx_cold()).unwrap().func,
        FunctionId(0)
    );
    q.set_estimate(FunctionId(0), Dur::from_millis(5));
    // Re-costed at 5 ms (the head keeps its tag, 500 ms): the rest of the burst is served
    // before flow 1's third invocation (tag 1 s). At the prior only 2 of them would be.
    let mut before = 0;
    loop {
        let i = dispatch(&mut q, ms(1), &ctx_cold()).unwrap();
        if i.id == InvocationId(102) {
            break;
        }
        before += usize::from(i.func == FunctionId(0));
    }
    assert_eq!(before, 39);
    assert_eq!(q.head_start_tag(FunctionId(0)), None);
}

#[test]
fn small_estimate_changes_leave_the_tags_alone() {
    let mut q = Mqfq::plain(params(5.0, Ttl::Relative(0.0)));
    for i in 0..3 {
        q.enqueue(inv(i, 0, 100), ms(0));
    }
    dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    q.set_estimate(FunctionId(0), Dur::from_millis(60));
    assert_eq!(
        q.head_start_tag(FunctionId(0)),
        Some(100_000),
        "within 2x: not re-costed"
    );
    q.set_estimate(FunctionId(0), Dur::from_millis(10));
    dispatch(&mut q, ms(0), &ctx_cold()).unwrap();
    assert_eq!(q.head_start_tag(FunctionId(0)), Some(110_000));
}
