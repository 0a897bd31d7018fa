//! The admission model: exact bookkeeping, the two sharing models, and the decision.

use super::*;
use proptest::prelude::*;

const A: FunctionId = FunctionId(0);
const B: FunctionId = FunctionId(1);

fn ms(x: u64) -> Dur {
    Dur::from_millis(x)
}

#[test]
fn one_order_counts_everything_queued_and_half_the_running_work() {
    let mut b = Backlog::new();
    for _ in 0..10 {
        b.enqueued(A, ms(50));
    }
    b.enqueued(B, ms(100));
    b.started(A, ms(40));
    // (10 × 50 + 100 + 40 / 2) / 2 tokens
    assert_eq!(b.predict(B, 2, Sharing::OneOrder), ms(310));
    assert_eq!(b.predict(A, 2, Sharing::OneOrder), ms(310));
    assert_eq!(b.queued_work(), ms(600));
    assert_eq!(b.running_work(), ms(40));
}

#[test]
fn fair_flows_do_not_charge_a_light_flow_for_a_heavy_backlog() {
    let mut b = Backlog::new();
    for _ in 0..100 {
        b.enqueued(A, ms(50));
    }
    assert_eq!(
        b.predict(B, 2, Sharing::FairFlows),
        ms(0),
        "nothing of B's ahead"
    );
    assert_eq!(b.predict(A, 2, Sharing::FairFlows), ms(2_500));
    b.enqueued(B, ms(50));
    b.enqueued(B, ms(50));
    // B's 100 ms, plus A's equal share meanwhile (weights 1:1), over 2 tokens.
    assert_eq!(b.predict(B, 2, Sharing::FairFlows), ms(100));
    // A waits for its own 5 s; B's whole 100 ms interleaves (capped at B's queue).
    assert_eq!(b.predict(A, 2, Sharing::FairFlows), ms(2_550));
    b.set_weight(B, 4.0);
    // A heavier B gets through faster relative to A: A's share is a quarter of B's queue.
    assert_eq!(
        b.predict(B, 2, Sharing::FairFlows),
        ms(62) + Dur::from_micros(500)
    );
}

#[test]
fn leaving_the_queue_takes_off_exactly_what_joining_added() {
    let mut b = Backlog::new();
    b.enqueued(A, ms(30));
    b.enqueued(A, ms(70));
    b.enqueued(B, ms(10));
    b.dequeued(A, ms(70));
    assert_eq!((b.queued_of(A), b.queued_work()), (1, ms(40)));
    b.dequeued(A, ms(30));
    b.dequeued(B, ms(10));
    b.dequeued(B, ms(10));
    assert_eq!(b.queued_work(), ms(0));
    assert_eq!(b.predict(A, 1, Sharing::FairFlows), ms(0));
    b.started(A, ms(10));
    b.started(A, ms(30));
    b.ended(A);
    assert_eq!(b.running_work(), ms(20), "the mean estimate comes off");
    b.ended(A);
    b.ended(A);
    assert_eq!(b.running_work(), ms(0));
}

#[test]
fn decide_admits_within_the_bound_and_says_when_to_retry() {
    assert_eq!(decide(ms(500), ms(500)), Admission::Admit);
    assert_eq!(
        decide(ms(1_700), ms(500)),
        Admission::Refuse {
            predicted: ms(1_700),
            retry_after: Dur::from_secs(2)
        }
    );
    let Admission::Refuse { retry_after, .. } = decide(ms(500) + Dur::from_micros(1), ms(500))
    else {
        panic!("over the bound");
    };
    assert_eq!(retry_after, Dur::from_secs(1), "at least one second");
}

proptest! {
    /// Any sequence of joins and leaves keeps the totals equal to the per-function sums, an
    /// emptied backlog predicts no wait, and more queued work never predicts a shorter wait.
    #[test]
    fn bookkeeping_is_exact_and_prediction_monotone(
        ops in proptest::collection::vec((0u32..4, 1u64..500, any::<bool>()), 1..200),
        fair in any::<bool>(),
    ) {
        let sharing = if fair { Sharing::FairFlows } else { Sharing::OneOrder };
        let mut b = Backlog::new();
        let mut queued: Vec<Vec<Dur>> = vec![Vec::new(); 4];
        for (f, est, join) in ops {
            let func = FunctionId(f);
            if join || queued[f as usize].is_empty() {
                let before = b.predict(FunctionId((f + 1) % 4), 2, sharing);
                b.enqueued(func, ms(est));
                queued[f as usize].push(ms(est));
                prop_assert!(b.predict(FunctionId((f + 1) % 4), 2, sharing) >= before);
            } else {
                let d = queued[f as usize].remove(0);
                b.dequeued(func, d);
            }
            let total: u64 = queued.iter().flatten().map(|d| d.as_micros()).sum();
            prop_assert_eq!(b.queued_work().as_micros(), total);
            for g in 0..4 {
                prop_assert_eq!(b.queued_of(FunctionId(g)), queued[g as usize].len() as u64);
            }
        }
        for (f, q) in queued.iter().enumerate() {
            for d in q {
                b.dequeued(FunctionId(f as u32), *d);
            }
        }
        prop_assert_eq!(b.predict(FunctionId(0), 3, sharing), Dur::ZERO);
    }
}
