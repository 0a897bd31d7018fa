//! The [`QueuePolicy`] contract, checked against every policy in [`POLICY_NAMES`] (built with
//! default parameters) and a few non-default configurations that reach other code paths.
//!
//! A reference model keeps one FIFO of invocation ids per function and the list of dispatched,
//! unfinished invocations. Random operation sequences (enqueue, dispatch with a random warm
//! predicate, requeue of a dispatched invocation, completion, estimate updates, time advancing
//! with `tick`) must keep: (1) exactly once — each dispatch returns the head of its function's
//! model FIFO, so nothing is invented or duplicated, and a final drain empties every FIFO;
//! (2) FIFO within each function; (3) `len` = enqueued − dispatched + requeued; (4) a requeued
//! invocation is the next of its function to leave; (5) dispatch on an empty queue is `None`.
//! Policy-specific ordering rules are tested next to each policy.

use super::{build, DispatchCtx, MqfqParams, QueueParams, QueuePolicy, Ttl, POLICY_NAMES};
use proptest::prelude::*;
use sluice_core::{Dur, FunctionId, GpuId, Invocation, InvocationId, Time};
use std::collections::VecDeque;

const FUNCS: u32 = 8;

/// Every configuration under test: each policy by name with defaults, plus variants.
fn configs() -> Vec<(String, Box<dyn QueuePolicy>)> {
    let mut out: Vec<(String, Box<dyn QueuePolicy>)> = POLICY_NAMES
        .iter()
        .map(|&name| {
            let p = build(name, &QueueParams::default()).expect("default parameters are valid");
            (name.to_string(), p)
        })
        .collect();
    let variants = [
        (
            "batch",
            QueueParams {
                batch_max_size: Some(3),
                ..QueueParams::default()
            },
        ),
        (
            "paella",
            QueueParams {
                paella_threshold: 2.0,
                ..QueueParams::default()
            },
        ),
        (
            "mqfq",
            QueueParams {
                mqfq: MqfqParams {
                    throttle_s: 0.5,
                    ..MqfqParams::default()
                },
                ..QueueParams::default()
            },
        ),
        (
            "mqfq-sticky",
            QueueParams {
                mqfq: MqfqParams {
                    throttle_s: 0.3,
                    ttl: Ttl::AbsoluteS(0.2),
                    top_k: 2,
                    sticky: true,
                },
                ..QueueParams::default()
            },
        ),
        (
            "mqfq-sticky",
            QueueParams {
                mqfq: MqfqParams {
                    sticky: false,
                    ..MqfqParams::default()
                },
                ..QueueParams::default()
            },
        ),
    ];
    for (name, params) in variants {
        let p = build(name, &params).expect("variant parameters are valid");
        out.push((format!("{name} {params:?}"), p));
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue { func: u32, est_ms: u64 },
    Dispatch { gpu: u16, warm_mask: u8 },
    Requeue(usize),
    Complete(usize),
    SetEstimate { func: u32, est_ms: u64 },
    Advance { us: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FUNCS, 1u64..1000).prop_map(|(func, est_ms)| Op::Enqueue { func, est_ms }),
        6 => (0u16..2, any::<u8>()).prop_map(|(gpu, warm_mask)| Op::Dispatch { gpu, warm_mask }),
        1 => any::<usize>().prop_map(Op::Requeue),
        3 => any::<usize>().prop_map(Op::Complete),
        1 => (0..FUNCS, 1u64..1000).prop_map(|(func, est_ms)| Op::SetEstimate { func, est_ms }),
        3 => (0u64..500_000).prop_map(|us| Op::Advance { us }),
    ]
}

/// The reference model and the policy under test, side by side.
struct Harness {
    label: String,
    policy: Box<dyn QueuePolicy>,
    now: Time,
    /// Per function, the ids still queued, in the order they must leave.
    fifo: Vec<VecDeque<InvocationId>>,
    /// Dispatched and not yet completed or requeued.
    running: Vec<Invocation>,
    enqueued: usize,
    dispatched: usize,
    requeued: usize,
    next_id: u64,
    /// Every dispatched id, in order (for the determinism check).
    trace: Vec<u64>,
}

impl Harness {
    fn new(label: String, policy: Box<dyn QueuePolicy>) -> Self {
        Harness {
            label,
            policy,
            now: Time::ZERO,
            fifo: vec![VecDeque::new(); FUNCS as usize],
            running: Vec::new(),
            enqueued: 0,
            dispatched: 0,
            requeued: 0,
            next_id: 0,
            trace: Vec::new(),
        }
    }

    fn queued(&self) -> usize {
        self.fifo.iter().map(VecDeque::len).sum()
    }

    /// Dispatches once and checks the result against the model.
    fn dispatch(&mut self, gpu: u16, warm_mask: u8) -> Result<Option<Invocation>, TestCaseError> {
        let warm = move |f: FunctionId| f.0 < 8 && warm_mask >> f.0 & 1 == 1;
        let ctx = DispatchCtx {
            gpu: GpuId(gpu),
            warm: &warm,
        };
        let was_empty = self.queued() == 0;
        let got = self.policy.dispatch(self.now, &ctx);
        let label = &self.label;
        let Some(inv) = got else {
            // (5) and work conservation: nothing to dispatch only when nothing is queued.
            prop_assert!(
                was_empty,
                "{label}: dispatch returned None with work queued"
            );
            return Ok(None);
        };
        prop_assert!(
            !was_empty,
            "{label}: dispatch invented {inv:?} from an empty queue"
        );
        let fifo = self.fifo.get_mut(inv.func.index());
        let head = fifo.as_ref().and_then(|q| q.front().copied());
        // (1) and (2): the dispatched invocation is queued and first of its function.
        prop_assert_eq!(
            head,
            Some(inv.id),
            "{}: dispatched {:?} but its function's next is {:?}",
            label,
            inv,
            head
        );
        if let Some(q) = fifo {
            q.pop_front();
        }
        self.dispatched += 1;
        self.running.push(inv);
        self.trace.push(inv.id.0);
        Ok(Some(inv))
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Enqueue { func, est_ms } => {
                self.next_id += 1;
                let inv = Invocation {
                    id: InvocationId(self.next_id),
                    func: FunctionId(func),
                    arrival: self.now,
                    est_service: Dur::from_millis(est_ms),
                };
                self.fifo[func as usize].push_back(inv.id);
                self.enqueued += 1;
                self.policy.enqueue(inv, self.now);
            }
            Op::Dispatch { gpu, warm_mask } => {
                self.dispatch(gpu, warm_mask)?;
            }
            Op::Requeue(k) => {
                if !self.running.is_empty() {
                    let inv = self.running.remove(k % self.running.len());
                    // (4): it must be the next of its function to leave.
                    self.fifo[inv.func.index()].push_front(inv.id);
                    self.requeued += 1;
                    self.policy.requeue_front(inv, self.now);
                }
            }
            Op::Complete(k) => {
                if !self.running.is_empty() {
                    let inv = self.running.remove(k % self.running.len());
                    self.policy.complete(inv.func, self.now);
                }
            }
            Op::SetEstimate { func, est_ms } => {
                self.policy
                    .set_estimate(FunctionId(func), Dur::from_millis(est_ms));
            }
            Op::Advance { us } => {
                self.now += Dur::from_micros(us);
                self.policy.tick(self.now);
            }
        }
        self.check_len()
    }

    /// (3): `len` equals enqueued − dispatched + requeued, and the model agrees.
    fn check_len(&self) -> Result<(), TestCaseError> {
        let expected = self.enqueued + self.requeued - self.dispatched;
        prop_assert_eq!(expected, self.queued());
        prop_assert_eq!(self.policy.len(), expected, "{}: len", &self.label);
        prop_assert_eq!(
            self.policy.is_empty(),
            expected == 0,
            "{}: is_empty",
            &self.label
        );
        Ok(())
    }

    /// Completes everything running, then dispatches until empty: everything leaves exactly once.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for inv in std::mem::take(&mut self.running) {
            self.policy.complete(inv.func, self.now);
        }
        let mut left = self.queued();
        while left > 0 {
            self.now += Dur::from_millis(1);
            self.policy.tick(self.now);
            prop_assert!(self.dispatch(0, 0)?.is_some(), "{}: stalled", &self.label);
            left -= 1;
            self.check_len()?;
        }
        prop_assert!(self.dispatch(1, u8::MAX)?.is_none());
        prop_assert_eq!(self.dispatched, self.enqueued + self.requeued);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_policy_keeps_the_contract(ops in proptest::collection::vec(op(), 0..200)) {
        for (label, policy) in configs() {
            let mut h = Harness::new(label, policy);
            // (5) on a fresh policy.
            prop_assert!(h.dispatch(0, u8::MAX)?.is_none());
            for op in &ops {
                h.apply(op)?;
            }
            h.drain()?;
        }
    }

    #[test]
    fn every_policy_is_deterministic(ops in proptest::collection::vec(op(), 0..120)) {
        for ((label, a), (_, b)) in configs().into_iter().zip(configs()) {
            let mut first = Harness::new(label.clone(), a);
            let mut second = Harness::new(label.clone(), b);
            for op in &ops {
                first.apply(op)?;
                second.apply(op)?;
            }
            first.drain()?;
            second.drain()?;
            prop_assert_eq!(&first.trace, &second.trace, "{}", label);
        }
    }
}

fn inv(id: u64, func: u32, est_ms: u64) -> Invocation {
    Invocation {
        id: InvocationId(id),
        func: FunctionId(func),
        arrival: Time::from_micros(id),
        est_service: Dur::from_millis(est_ms),
    }
}

fn dispatch(p: &mut dyn QueuePolicy, now: Time) -> Option<Invocation> {
    let warm = |_: FunctionId| true;
    let ctx = DispatchCtx {
        gpu: GpuId(0),
        warm: &warm,
    };
    p.dispatch(now, &ctx)
}

#[test]
fn empty_policies_dispatch_nothing() {
    for (label, mut p) in configs() {
        assert!(p.is_empty(), "{label}");
        assert!(dispatch(p.as_mut(), Time::ZERO).is_none(), "{label}");
        p.enqueue(inv(1, 0, 5), Time::ZERO);
        assert_eq!(
            dispatch(p.as_mut(), Time::ZERO).map(|i| i.id.0),
            Some(1),
            "{label}"
        );
        assert!(dispatch(p.as_mut(), Time::ZERO).is_none(), "{label}");
        p.complete(FunctionId(0), Time::from_micros(10));
        p.tick(Time::from_secs_f64(100.0));
        assert!(
            dispatch(p.as_mut(), Time::from_secs_f64(100.0)).is_none(),
            "{label}"
        );
        assert!(p.is_empty(), "{label}");
    }
}

#[test]
fn names_round_trip_through_build() {
    for &name in POLICY_NAMES {
        let p = build(name, &QueueParams::default()).expect("known name");
        assert_eq!(p.name(), name);
    }
    assert!(build("lifo", &QueueParams::default()).is_err());
}

#[test]
fn odd_call_sequences_do_not_panic() {
    for (label, mut p) in configs() {
        let t = Time::from_micros(7);
        // Calls about functions never enqueued or registered.
        p.complete(FunctionId(41), t);
        p.set_estimate(FunctionId(42), Dur::from_millis(3));
        p.register(FunctionId(43), 0.0);
        p.register(FunctionId(44), f64::NAN);
        p.tick(t);
        let _ = p.next_timer();
        let _ = p.flow_state(FunctionId(45));
        // A requeue of an invocation of an unknown function, never dispatched.
        p.requeue_front(inv(9, 40, 2), t);
        assert_eq!(p.len(), 1, "{label}");
        assert_eq!(dispatch(p.as_mut(), t).map(|i| i.id.0), Some(9), "{label}");
        // Completing more than was dispatched.
        p.complete(FunctionId(40), t);
        p.complete(FunctionId(40), t);
        p.tick(Time::MAX);
        assert!(dispatch(p.as_mut(), Time::MAX).is_none(), "{label}");
        let mut events = Vec::new();
        p.drain_events(&mut events);
    }
}

#[test]
fn requeued_invocation_leaves_next_for_its_function() {
    for (label, mut p) in configs() {
        for id in 1..=3 {
            p.enqueue(inv(id, 0, 10), Time::ZERO);
        }
        p.enqueue(inv(4, 1, 10), Time::ZERO);
        let mut out = Vec::new();
        let first = dispatch(p.as_mut(), Time::ZERO).expect("work is queued");
        let second = dispatch(p.as_mut(), Time::ZERO).expect("work is queued");
        // Put back the later one first, then the earlier one: the earlier leads again.
        p.requeue_front(second, Time::ZERO);
        p.requeue_front(first, Time::ZERO);
        while let Some(i) = dispatch(p.as_mut(), Time::ZERO) {
            out.push(i.id.0);
        }
        let f0: Vec<u64> = out.iter().copied().filter(|&id| id <= 3).collect();
        assert_eq!(f0, vec![1, 2, 3], "{label}: {out:?}");
        assert_eq!(out.len(), 4, "{label}: {out:?}");
    }
}

/// Found by the contract test: a requeue that makes a flow's head start tag run more than the
/// throttle threshold ahead of virtual time, with no other flow backlogged, must not leave the
/// invocation stuck (virtual time has to catch up with the smallest head start tag).
#[test]
fn mqfq_requeue_after_a_long_invocation_does_not_stall() {
    for name in ["mqfq", "mqfq-sticky"] {
        let mut p = build(name, &QueueParams::default()).expect("defaults are valid"); // T = 5 s
        let short = inv(1, 0, 1);
        let long = inv(2, 0, 6_000);
        p.enqueue(short, Time::ZERO);
        assert_eq!(dispatch(p.as_mut(), Time::ZERO).map(|i| i.id.0), Some(1));
        p.enqueue(long, Time::ZERO);
        assert_eq!(dispatch(p.as_mut(), Time::ZERO).map(|i| i.id.0), Some(2));
        p.requeue_front(short, Time::ZERO);
        assert_eq!(p.len(), 1);
        assert_eq!(
            dispatch(p.as_mut(), Time::ZERO).map(|i| i.id.0),
            Some(1),
            "{name}: the requeued invocation is stuck"
        );
    }
}
