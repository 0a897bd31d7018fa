//! Paella-style shortest job first with a deficit counter for fairness (Paella: Ng et al.,
//! "Paella: Low-latency Model Serving with Software-defined GPU Scheduling", SOSP'23), over one
//! FIFO per function.
//!
//! Ordering rule: normally dispatch the head of the backlogged function with the smallest
//! estimated service time — its latest [`QueuePolicy::set_estimate`] value, else its head
//! invocation's `est_service` — ties to the older head (enqueue order), then the lower function
//! id. But if any backlogged function's deficit exceeds the threshold, dispatch from the one with
//! the largest deficit instead (ties to the lower function id). On each dispatch with `n`
//! backlogged functions (counted before it), the chosen function's deficit falls by `1 − 1/n` and
//! every other backlogged function's rises by `1/n`; deficits of functions with nothing queued
//! stay frozen. A requeue does not refund the deficit change of the dispatch it undoes.
//!
//! Cost: O(log n). A backlogged function stores `deficit − G`, where the global offset `G` grows
//! by `1/n` per dispatch, so raising every other function is one addition; a function entering or
//! leaving the backlog converts between that relative form and its frozen deficit. `G` returns to
//! zero whenever the backlog empties. Two ordered sets give the smallest estimate and the largest
//! deficit.

use super::heads::Seq;
use super::ord::OrdF64;
use super::{DispatchCtx, QueuePolicy};
use sluice_core::{Dur, FunctionId, Invocation, Time};
use std::cmp::Reverse;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Default)]
struct Flow {
    /// Queued invocations with their sequence numbers.
    queue: VecDeque<(Invocation, u64)>,
    /// The latest estimate from `set_estimate`.
    estimate: Option<Dur>,
    /// While backlogged: deficit − G. Otherwise: the frozen deficit.
    deficit: f64,
}

/// Paella-style deficit SJF (see the module documentation).
#[derive(Debug)]
pub struct Paella {
    threshold: f64,
    flows: Vec<Flow>,
    /// Backlogged functions by (estimate, head sequence number, function).
    by_est: BTreeSet<(Dur, u64, u32)>,
    /// Backlogged functions by (stored deficit, reversed function): the last is the most owed.
    by_deficit: BTreeSet<(OrdF64, Reverse<u32>)>,
    /// The global offset G added to every backlogged function's stored deficit.
    offset: f64,
    backlogged: usize,
    seq: Seq,
    len: usize,
}

impl Paella {
    /// A Paella policy; a function whose deficit exceeds `threshold` goes first (Paella: 25).
    pub fn new(threshold: f64) -> Self {
        Paella {
            threshold,
            flows: Vec::new(),
            by_est: BTreeSet::new(),
            by_deficit: BTreeSet::new(),
            offset: 0.0,
            backlogged: 0,
            seq: Seq::new(),
            len: 0,
        }
    }

    /// `func`'s current deficit (zero for a function never seen).
    pub fn deficit(&self, func: FunctionId) -> f64 {
        self.flows.get(func.index()).map_or(0.0, |f| {
            if f.queue.is_empty() {
                f.deficit
            } else {
                f.deficit + self.offset
            }
        })
    }

    fn flow_mut(&mut self, func: FunctionId) -> &mut Flow {
        let i = func.index();
        if self.flows.len() <= i {
            self.flows.resize_with(i + 1, Flow::default);
        }
        &mut self.flows[i]
    }

    /// `f`'s entry in `by_est`, if backlogged.
    fn est_entry(&self, f: u32) -> Option<(Dur, u64, u32)> {
        let flow = self.flows.get(f as usize)?;
        let (head, seq) = flow.queue.front()?;
        Some((flow.estimate.unwrap_or(head.est_service), *seq, f))
    }

    /// `f`'s entry in `by_deficit`, if backlogged.
    fn deficit_entry(&self, f: u32) -> Option<(OrdF64, Reverse<u32>)> {
        let flow = self.flows.get(f as usize)?;
        if flow.queue.is_empty() {
            return None;
        }
        Some((OrdF64(flow.deficit), Reverse(f)))
    }

    /// Removes `f` from both ordered sets (before its head, estimate or deficit changes).
    fn unindex(&mut self, f: u32) {
        if let Some(e) = self.est_entry(f) {
            self.by_est.remove(&e);
        }
        if let Some(e) = self.deficit_entry(f) {
            self.by_deficit.remove(&e);
        }
    }

    /// Inserts `f` into both ordered sets (after its head, estimate or deficit changed).
    fn index(&mut self, f: u32) {
        if let Some(e) = self.est_entry(f) {
            self.by_est.insert(e);
        }
        if let Some(e) = self.deficit_entry(f) {
            self.by_deficit.insert(e);
        }
    }

    /// Adds `inv` to its function's queue, at the head or the tail.
    fn push(&mut self, inv: Invocation, front: bool) {
        let f = inv.func.0;
        let seq = if front {
            self.seq.next_front()
        } else {
            self.seq.next_back()
        };
        self.unindex(f);
        let offset = self.offset;
        let flow = self.flow_mut(inv.func);
        if flow.queue.is_empty() {
            // Entering the backlog: frozen deficit to relative form.
            flow.deficit -= offset;
            self.backlogged += 1;
        }
        let flow = self.flow_mut(inv.func);
        if front {
            flow.queue.push_front((inv, seq));
        } else {
            flow.queue.push_back((inv, seq));
        }
        self.len += 1;
        self.index(f);
    }

    /// The function to serve next: the most owed if over the threshold, else the shortest.
    fn choose(&self) -> Option<u32> {
        if let Some(&(OrdF64(stored), Reverse(f))) = self.by_deficit.last() {
            if stored + self.offset > self.threshold {
                return Some(f);
            }
        }
        self.by_est.first().map(|&(_, _, f)| f)
    }
}

impl QueuePolicy for Paella {
    fn name(&self) -> &'static str {
        "paella"
    }

    fn enqueue(&mut self, inv: Invocation, _now: Time) {
        self.push(inv, false);
    }

    fn dispatch(&mut self, _now: Time, _ctx: &DispatchCtx<'_>) -> Option<Invocation> {
        let f = self.choose()?;
        let n = self.backlogged.max(1) as f64;
        self.unindex(f);
        self.offset += 1.0 / n;
        let offset = self.offset;
        let flow = self.flows.get_mut(f as usize)?;
        let popped = flow.queue.pop_front();
        flow.deficit -= 1.0;
        if flow.queue.is_empty() {
            // Leaving the backlog: relative form to frozen deficit.
            flow.deficit += offset;
            self.backlogged = self.backlogged.saturating_sub(1);
            if self.backlogged == 0 {
                self.offset = 0.0;
            }
        }
        self.index(f);
        let (inv, _) = popped?;
        self.len -= 1;
        Some(inv)
    }

    fn requeue_front(&mut self, inv: Invocation, _now: Time) {
        self.push(inv, true);
    }

    fn complete(&mut self, _func: FunctionId, _now: Time) {}

    fn set_estimate(&mut self, func: FunctionId, est: Dur) {
        self.unindex(func.0);
        self.flow_mut(func).estimate = Some(est);
        self.index(func.0);
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_core::{GpuId, InvocationId};

    fn inv(id: u64, func: u32, est_ms: u64) -> Invocation {
        Invocation {
            id: InvocationId(id),
            func: FunctionId(func),
            arrival: Time::from_micros(id),
            est_service: Dur::from_millis(est_ms),
        }
    }

    fn one(p: &mut Paella) -> Option<Invocation> {
        let warm = |_: FunctionId| false;
        let ctx = DispatchCtx {
            gpu: GpuId(0),
            warm: &warm,
        };
        p.dispatch(Time::ZERO, &ctx)
    }

    fn one_func(p: &mut Paella) -> Option<u32> {
        one(p).map(|i| i.func.0)
    }

    #[test]
    fn picks_the_shortest_function_while_deficits_are_small() {
        let mut p = Paella::new(25.0);
        p.enqueue(inv(1, 0, 300), Time::ZERO);
        p.enqueue(inv(2, 1, 100), Time::ZERO);
        p.enqueue(inv(3, 2, 200), Time::ZERO);
        assert_eq!(one(&mut p).map(|i| i.id.0), Some(2));
        assert_eq!(one(&mut p).map(|i| i.id.0), Some(3));
        assert_eq!(one(&mut p).map(|i| i.id.0), Some(1));
        assert!(one(&mut p).is_none());
    }

    #[test]
    fn set_estimate_rekeys_a_backlogged_function() {
        let mut p = Paella::new(25.0);
        p.enqueue(inv(1, 0, 100), Time::ZERO);
        p.enqueue(inv(2, 1, 200), Time::ZERO);
        p.set_estimate(FunctionId(0), Dur::from_millis(500));
        assert_eq!(one_func(&mut p), Some(1));
        assert_eq!(one_func(&mut p), Some(0));
    }

    #[test]
    fn the_latest_estimate_overrides_the_head_for_every_later_invocation() {
        let mut p = Paella::new(25.0);
        p.set_estimate(FunctionId(1), Dur::from_millis(50));
        p.enqueue(inv(1, 0, 100), Time::ZERO);
        p.enqueue(inv(2, 1, 900), Time::ZERO);
        assert_eq!(one_func(&mut p), Some(1));
    }

    #[test]
    fn switches_to_a_starved_function_past_the_threshold() {
        let mut p = Paella::new(2.0);
        for i in 0..20 {
            p.enqueue(inv(2 * i, 0, 10), Time::ZERO);
            p.enqueue(inv(2 * i + 1, 1, 1000), Time::ZERO);
        }
        // n = 2: each short dispatch moves 0.5 from function 0 to function 1.
        for k in 1..=5 {
            assert_eq!(one_func(&mut p), Some(0), "dispatch {k}");
            assert_eq!(p.deficit(FunctionId(0)), -0.5 * k as f64);
            assert_eq!(p.deficit(FunctionId(1)), 0.5 * k as f64);
        }
        // Function 1's deficit 2.5 exceeds 2: it goes first and pays 1 − 1/2.
        assert_eq!(one_func(&mut p), Some(1));
        assert_eq!(p.deficit(FunctionId(0)), -2.0);
        assert_eq!(p.deficit(FunctionId(1)), 2.0);
        // 2.0 does not exceed 2: back to the shortest, then the starved one again.
        assert_eq!(one_func(&mut p), Some(0));
        assert_eq!(one_func(&mut p), Some(1));
        assert_eq!(one_func(&mut p), Some(0));
        assert_eq!(one_func(&mut p), Some(1));
    }

    #[test]
    fn deficits_freeze_outside_the_backlog_and_use_n_before_the_dispatch() {
        let mut p = Paella::new(25.0);
        p.enqueue(inv(1, 0, 10), Time::ZERO);
        p.enqueue(inv(2, 1, 20), Time::ZERO);
        p.enqueue(inv(3, 2, 30), Time::ZERO);
        // n = 3: function 0 leaves the backlog with −2/3; the others get 1/3.
        assert_eq!(one_func(&mut p), Some(0));
        let third = 1.0 / 3.0;
        assert!((p.deficit(FunctionId(0)) + 2.0 * third).abs() < 1e-12);
        assert!((p.deficit(FunctionId(1)) - third).abs() < 1e-12);
        // n = 2: function 1 pays 1/2; function 2 gets 1/2; function 0 stays frozen.
        assert_eq!(one_func(&mut p), Some(1));
        assert!((p.deficit(FunctionId(0)) + 2.0 * third).abs() < 1e-12);
        assert!((p.deficit(FunctionId(1)) - (third - 0.5)).abs() < 1e-12);
        assert!((p.deficit(FunctionId(2)) - (third + 0.5)).abs() < 1e-12);
        // n = 1: a lone function's deficit does not move.
        assert_eq!(one_func(&mut p), Some(2));
        assert!((p.deficit(FunctionId(2)) - (third + 0.5)).abs() < 1e-12);
        // Re-entering the backlog keeps the frozen value.
        p.enqueue(inv(4, 0, 10), Time::ZERO);
        assert!((p.deficit(FunctionId(0)) + 2.0 * third).abs() < 1e-12);
        let total: f64 = (0..3).map(|f| p.deficit(FunctionId(f))).sum();
        assert!(total.abs() < 1e-12);
    }

    #[test]
    fn odd_calls_do_not_panic() {
        let mut p = Paella::new(2.0);
        p.set_estimate(FunctionId(7), Dur::from_millis(1));
        p.complete(FunctionId(9), Time::ZERO);
        p.requeue_front(inv(1, 5, 10), Time::ZERO);
        assert_eq!(p.len(), 1);
        assert_eq!(one(&mut p).map(|i| i.id.0), Some(1));
        assert!(one(&mut p).is_none());
        assert_eq!(p.deficit(FunctionId(100)), 0.0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue { func: u32, est_ms: u64 },
        Dispatch,
        Requeue(usize),
        SetEstimate { func: u32, est_ms: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..6, 1u64..1000).prop_map(|(func, est_ms)| Op::Enqueue { func, est_ms }),
            4 => Just(Op::Dispatch),
            1 => any::<usize>().prop_map(Op::Requeue),
            1 => (0u32..6, 1u64..1000).prop_map(|(func, est_ms)| Op::SetEstimate { func, est_ms }),
        ]
    }

    proptest! {
        /// The offset form agrees with a naive model that updates every deficit on each dispatch,
        /// and every dispatch follows the rule under the naive deficits.
        #[test]
        fn matches_a_naive_deficit_model(ops in proptest::collection::vec(op(), 1..300),
                                         threshold in 0.5f64..6.0) {
            const F: usize = 6;
            let mut p = Paella::new(threshold);
            let mut queues: Vec<VecDeque<Invocation>> = vec![VecDeque::new(); F];
            let mut est: Vec<Option<Dur>> = vec![None; F];
            let mut deficit = [0.0f64; F];
            let mut dispatched: Vec<Invocation> = Vec::new();
            let mut next_id = 0;
            for op in ops {
                match op {
                    Op::Enqueue { func, est_ms } => {
                        next_id += 1;
                        let i = inv(next_id, func, est_ms);
                        queues[func as usize].push_back(i);
                        p.enqueue(i, Time::ZERO);
                    }
                    Op::SetEstimate { func, est_ms } => {
                        est[func as usize] = Some(Dur::from_millis(est_ms));
                        p.set_estimate(FunctionId(func), Dur::from_millis(est_ms));
                    }
                    Op::Requeue(k) => {
                        if !dispatched.is_empty() {
                            let i = dispatched.swap_remove(k % dispatched.len());
                            queues[i.func.index()].push_front(i);
                            p.requeue_front(i, Time::ZERO);
                        }
                    }
                    Op::Dispatch => {
                        let backlogged: Vec<usize> =
                            (0..F).filter(|&f| !queues[f].is_empty()).collect();
                        let got = one(&mut p);
                        if backlogged.is_empty() {
                            prop_assert!(got.is_none());
                            continue;
                        }
                        let got = got.expect("a backlogged policy dispatches");
                        let c = got.func.index();
                        prop_assert_eq!(queues[c].pop_front(), Some(got));
                        let max = backlogged.iter().map(|&f| deficit[f]).fold(f64::MIN, f64::max);
                        if max > threshold + 1e-9 {
                            prop_assert!(deficit[c] >= max - 1e-9, "not the most owed");
                        } else if max < threshold - 1e-9 {
                            let key = |f: usize| est[f].unwrap_or(queues_head_est(&queues, f, got));
                            let min = backlogged.iter().map(|&f| key(f)).min();
                            prop_assert_eq!(Some(key(c)), min, "not the shortest");
                        }
                        let n = backlogged.len() as f64;
                        for &f in &backlogged {
                            deficit[f] += if f == c { 1.0 / n - 1.0 } else { 1.0 / n };
                        }
                        dispatched.push(got);
                    }
                }
                for (f, d) in deficit.iter().enumerate() {
                    prop_assert!((p.deficit(FunctionId(f as u32)) - d).abs() < 1e-9);
                }
                prop_assert_eq!(p.len(), queues.iter().map(VecDeque::len).sum::<usize>());
            }
        }
    }

    /// The head estimate of `f` as it was before `got` was popped from it.
    fn queues_head_est(queues: &[VecDeque<Invocation>], f: usize, got: Invocation) -> Dur {
        if got.func.index() == f {
            got.est_service
        } else {
            queues[f].front().map_or(Dur::MAX, |i| i.est_service)
        }
    }
}
