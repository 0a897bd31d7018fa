//! Golden tests for the report module's text outputs: the summary table, the JSON summary and
//! the load-sweep markdown, rendered from small fixed runs built in code and compared
//! byte-for-byte with the files under `tests/data/report/`.
//!
//! When a change to the report format is intended, regenerate the goldens and review the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p sluice-sim --test report_golden
//! ```
//!
//! With `UPDATE_GOLDEN=1` set the tests rewrite the files instead of comparing.

use sluice_core::{Dur, FunctionId, GpuId, Time};
use sluice_policy::scheduler::ColdCauses;
use sluice_sim::record::{InvocationRecord, RunResult};
use sluice_sim::report::{render_sweep_markdown, render_table, summarize, to_json, SweepRow};
use std::path::PathBuf;

/// One record; `t` is arrival, dispatched, started, finished in microseconds.
fn rec(id: u64, func: u32, t: [u64; 4], solo_us: u64, cold: bool) -> InvocationRecord {
    InvocationRecord {
        id,
        func: FunctionId(func),
        arrival: Time::from_micros(t[0]),
        dispatched: Time::from_micros(t[1]),
        started: Time::from_micros(t[2]),
        finished: Time::from_micros(t[3]),
        gpu: GpuId((id % 2) as u16),
        cold,
        solo: Dur::from_micros(solo_us),
        bytes_to_device: if cold { 750_000_000 } else { 0 },
    }
}

fn run(policy: &str, records: Vec<InvocationRecord>, busy_ms: [u64; 2]) -> RunResult {
    let cold = records.iter().filter(|r| r.cold).count() as u64;
    RunResult {
        policy: policy.to_string(),
        workload: "golden".to_string(),
        functions: vec!["resnet".into(), "squeezenet".into(), "rnn".into()],
        invocations: 11,
        bytes_to_device: records.iter().map(|r| r.bytes_to_device).sum(),
        records,
        gpus: 2,
        makespan: Dur::from_millis(1_500),
        gpu_busy: busy_ms.map(Dur::from_millis).to_vec(),
        cold_starts: cold,
        // Each cold start is its function's first sandbox.
        cold_causes: Some(ColdCauses {
            first: cold,
            ..ColdCauses::default()
        }),
        bytes_to_host: 250_000_000,
        offered_util: 0.7,
        rejected: 1,
    }
}

/// FCFS: everything waits behind the long resnet calls. MQFQ-Sticky: short functions overtake.
fn runs() -> [RunResult; 2] {
    let fcfs = vec![
        rec(1, 0, [0, 0, 120_000, 420_000], 300_000, true),
        rec(2, 1, [10_000, 10_000, 95_500, 115_500], 20_000, true),
        rec(3, 1, [20_000, 115_500, 115_500, 135_500], 20_000, false),
        rec(4, 2, [30_000, 135_500, 215_000, 265_250], 50_000, true),
        rec(5, 0, [40_000, 265_250, 265_250, 565_250], 300_000, false),
        rec(6, 1, [50_000, 420_000, 420_000, 440_000], 20_000, false),
        rec(7, 1, [60_000, 440_000, 440_000, 460_000], 20_000, false),
        rec(8, 2, [70_000, 460_000, 460_000, 510_000], 50_000, false),
        rec(9, 1, [80_000, 510_000, 510_000, 530_125], 20_000, false),
        rec(10, 0, [90_000, 530_125, 530_125, 830_125], 300_000, false),
    ];
    let mqfq = vec![
        rec(2, 1, [10_000, 10_000, 95_500, 115_500], 20_000, true),
        rec(3, 1, [20_000, 20_000, 20_000, 40_000], 20_000, false),
        rec(1, 0, [0, 0, 120_000, 420_000], 300_000, true),
        rec(4, 2, [30_000, 40_000, 119_500, 169_750], 50_000, true),
        rec(6, 1, [50_000, 115_500, 115_500, 135_500], 20_000, false),
        rec(7, 1, [60_000, 135_500, 135_500, 155_500], 20_000, false),
        rec(8, 2, [70_000, 169_750, 169_750, 219_750], 50_000, false),
        rec(9, 1, [80_000, 155_500, 155_500, 175_625], 20_000, false),
        rec(5, 0, [40_000, 420_000, 420_000, 720_000], 300_000, false),
        rec(10, 0, [90_000, 720_000, 720_000, 1_020_000], 300_000, false),
    ];
    [
        run("fcfs", fcfs, [830, 120]),
        run("mqfq-sticky", mqfq, [1_020, 180]),
    ]
}

/// The ideal bound of the same arrivals: every invocation starts on arrival and runs solo.
fn ideal() -> sluice_sim::report::Summary {
    let records = runs()[0]
        .records
        .iter()
        .map(|r| {
            let a = r.arrival.as_micros();
            let solo = r.solo.as_micros();
            rec(r.id, r.func.0, [a, a, a, a + solo], solo, false)
        })
        .collect();
    summarize(&run("ideal", records, [700, 0]))
}

/// The runs' summaries, compared with the ideal bound.
fn summaries() -> Vec<sluice_sim::report::Summary> {
    let ideal = ideal();
    runs()
        .iter()
        .map(|r| {
            let mut s = summarize(r);
            s.compare_to_ideal(&ideal);
            s
        })
        .collect()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/report")
        .join(name)
}

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create golden dir");
        }
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "read {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the rendered output (UPDATE_GOLDEN=1 rewrites it).\n\
         --- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn report_table_matches_golden() {
    let rows = summaries();
    check_golden("table.golden.txt", &render_table(&rows));
}

#[test]
fn report_json_matches_golden() {
    let rows = summaries();
    let mut text = serde_json::to_string_pretty(&to_json(&rows)).expect("serialise JSON");
    text.push('\n');
    check_golden("summary.golden.json", &text);
}

#[test]
fn report_sweep_markdown_matches_golden() {
    let rows: Vec<SweepRow> = [0.5, 0.9]
        .iter()
        .flat_map(|&util| {
            summaries().into_iter().map(move |mut summary| {
                // Make the second load visibly heavier without another fixture.
                let k = if util > 0.5 { 4.0 } else { 1.0 };
                summary.latency_ms.mean *= k;
                summary.latency_ms.p99 *= k;
                SweepRow {
                    target_util: util,
                    summary,
                }
            })
        })
        .collect();
    check_golden("sweep.golden.md", &render_sweep_markdown(&rows));
}
