//! Hot-path benchmark: one enqueue + dispatch + complete with 1,000 backlogged flows, per policy,
//! and the same round trip through the composed scheduler (`submit` + `poll` + `finished`).
//!
//! Run: `cargo bench -p sluice-policy --bench queue`.

// `criterion_group!` below generates `pub fn benches()`, which cannot carry a doc comment, and
// rustc ignores lint attributes on a macro invocation; so the lint is allowed for this bench
// binary, which has no other public item.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use sluice_core::{Dur, FunctionId, GpuId, Invocation, InvocationId, Time};
use sluice_policy::queue::{self, DispatchCtx, QueueParams};
use sluice_policy::scheduler::{Action, FunctionInfo, Scheduler, SchedulerConfig};

const FLOWS: u32 = 1_000;
const DEPTH: u64 = 4;

fn inv(id: u64, func: u32) -> Invocation {
    Invocation {
        id: InvocationId(id),
        func: FunctionId(func),
        arrival: Time::from_micros(id),
        est_service: Dur::from_micros(1_000 + (func as u64 * 7919) % 50_000),
    }
}

fn queue_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("enqueue+dispatch+complete, 1000 backlogged flows");
    for name in queue::POLICY_NAMES {
        let mut q = queue::build(name, &QueueParams::default()).expect("known policy");
        let mut id = 0u64;
        for round in 0..DEPTH {
            for f in 0..FLOWS {
                q.enqueue(inv(id, f), Time::from_micros(round));
                id += 1;
            }
        }
        let warm = |f: FunctionId| f.0.is_multiple_of(3);
        let ctx = DispatchCtx {
            gpu: GpuId(0),
            warm: &warm,
        };
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                id += 1;
                let now = Time::from_micros(id);
                q.enqueue(inv(id, (id % FLOWS as u64) as u32), now);
                let out = q.dispatch(now, &ctx).expect("backlogged");
                q.complete(out.func, now);
                black_box(out.id)
            })
        });
    }
    group.finish();
}

fn scheduler_round_trip(c: &mut Criterion) {
    scheduler_on(
        c,
        1,
        "scheduler submit+poll+finished, 1000 backlogged flows",
    );
    scheduler_on(c, 8, "scheduler on 8 GPUs, 1000 backlogged flows");
}

/// The scheduler round trip on `gpus` devices (placement has a choice from 2 devices on).
fn scheduler_on(c: &mut Criterion, gpus: usize, title: &str) {
    let mut group = c.benchmark_group(title);
    for name in ["fcfs", "mqfq-sticky"] {
        let cfg = SchedulerConfig {
            policy: name.into(),
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(&cfg, vec![u64::MAX / 4; gpus]).expect("valid config");
        for f in 0..FLOWS {
            s.register(FunctionId(f), FunctionInfo::default());
        }
        let mut id = 0u64;
        let mut actions = Vec::new();
        let mut running = std::collections::VecDeque::new();
        for round in 0..DEPTH {
            for f in 0..FLOWS {
                s.submit(InvocationId(id), FunctionId(f), Time::from_micros(round));
                id += 1;
            }
        }
        s.poll(Time::ZERO, &mut actions);
        for a in actions.drain(..) {
            if let Action::Start(st) = a {
                s.sandbox_ready(st.sandbox);
                running.push_back(st);
            }
        }
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                id += 1;
                let now = Time::from_micros(id);
                s.submit(
                    InvocationId(id),
                    FunctionId((id % FLOWS as u64) as u32),
                    now,
                );
                let done = running.pop_front().expect("one running");
                s.finished(done.sandbox, done.inv.func, Dur::from_micros(900), now);
                s.poll(now, &mut actions);
                for a in actions.drain(..) {
                    if let Action::Start(st) = a {
                        if st.cold {
                            s.sandbox_ready(st.sandbox);
                        }
                        running.push_back(st);
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, queue_round_trip, scheduler_round_trip);
criterion_main!(benches);
