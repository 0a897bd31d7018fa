//! Hand-made runs shared by the report module's unit tests (compiled only for tests).

use crate::record::{InvocationRecord, RunResult};
use sluice_core::{Dur, FunctionId, GpuId, Time};
use sluice_policy::scheduler::ColdCauses;

/// One record; `t` is arrival, dispatched, started, finished in whole milliseconds.
pub(crate) fn rec(id: u64, func: u32, t: [u64; 4], solo_ms: u64, cold: bool) -> InvocationRecord {
    let ms = |x: u64| Time::from_micros(x * 1_000);
    InvocationRecord {
        id,
        func: FunctionId(func),
        arrival: ms(t[0]),
        dispatched: ms(t[1]),
        started: ms(t[2]),
        finished: ms(t[3]),
        gpu: GpuId((id % 2) as u16),
        cold,
        solo: Dur::from_millis(solo_ms),
        bytes_to_device: if cold { 1_500_000_000 } else { 0 },
    }
}

/// Functions a, b, c (c never completes); 6 offered, 5 completed, 2 GPUs, 100 ms makespan.
///
/// | id | fn | arrival | dispatched | started | finished | solo | latency | queue | slowdown |
/// |----|----|---------|------------|---------|----------|------|---------|-------|----------|
/// | 1  | a  | 0       | 0          | 0       | 10       | 10   | 10      | 0     | 1        |
/// | 2  | a  | 0       | 10         | 10      | 30       | 10   | 30      | 10    | 3        |
/// | 3  | b  | 5       | 5          | 25      | 45       | 20   | 40      | 0     | 2        |
/// | 4  | b  | 10      | 30         | 30      | 50       | 20   | 40      | 20    | 2        |
/// | 5  | a  | 20      | 50         | 50      | 80       | 10   | 60      | 30    | 6        |
pub(crate) fn hand_made_run(policy: &str) -> RunResult {
    RunResult {
        policy: policy.to_string(),
        workload: "hand".to_string(),
        functions: vec!["a".into(), "b".into(), "c".into()],
        invocations: 6,
        records: vec![
            rec(1, 0, [0, 0, 0, 10], 10, false),
            rec(2, 0, [0, 10, 10, 30], 10, false),
            rec(3, 1, [5, 5, 25, 45], 20, true),
            rec(4, 1, [10, 30, 30, 50], 20, false),
            rec(5, 0, [20, 50, 50, 80], 10, false),
        ],
        gpus: 2,
        makespan: Dur::from_millis(100),
        gpu_busy: vec![Dur::from_millis(60), Dur::from_millis(40)],
        cold_starts: 1,
        cold_causes: Some(ColdCauses {
            first: 1,
            ..ColdCauses::default()
        }),
        bytes_to_device: 3_000_000_000,
        bytes_to_host: 1_000_000_000,
        offered_util: 0.8,
        rejected: 1,
    }
}
