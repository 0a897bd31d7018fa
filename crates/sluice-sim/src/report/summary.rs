//! The summary of one run: latency and queueing quantiles, per-function slowdown and fairness,
//! throughput, GPU utilisation and memory movement (the metrics of the MQFQ-Sticky paper).
//!
//! Owns [`Summary`], [`Quantiles`] and [`summarize`]; formatting them belongs to the sibling
//! modules. Quantiles and means come from `sluice_core::stats`.

use crate::record::{InvocationRecord, RunResult};
use serde::{Deserialize, Serialize};
use sluice_core::stats::{jain_index, mean, quantile_sorted};
use sluice_policy::scheduler::ColdCauses;
use std::collections::BTreeMap;

/// Mean and tail of a distribution of durations, in milliseconds. All zero for no samples.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Quantiles {
    /// Summarises `xs`, sorting it in place (by `total_cmp`).
    pub fn of_unsorted(xs: &mut [f64]) -> Quantiles {
        xs.sort_unstable_by(f64::total_cmp);
        let q = |p| quantile_sorted(xs, p).unwrap_or(0.0);
        Quantiles {
            mean: mean(xs).unwrap_or(0.0),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
        }
    }
}

/// The headline numbers of one run of one policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The queueing policy's name.
    pub policy: String,
    /// Invocations offered (arrivals).
    pub invocations: u64,
    /// Invocations completed (records).
    pub completed: u64,
    /// End-to-end latency, arrival to finish.
    pub latency_ms: Quantiles,
    /// Queueing delay, arrival to dispatch.
    pub queue_ms: Quantiles,
    /// Mean over functions (with ≥ 1 completed invocation) of each function's mean slowdown.
    pub mean_function_slowdown: f64,
    /// Jain's index over per-function mean slowdown: 1 is perfectly fair.
    pub jain_fairness: f64,
    /// The worst function's mean slowdown.
    pub max_function_slowdown: f64,
    /// Completed invocations per second of makespan.
    pub throughput_per_s: f64,
    /// Σ busy time / (GPUs × makespan): 0..1 in a consistent run.
    pub gpu_util: f64,
    /// Sandboxes created (cold starts).
    pub cold_starts: u64,
    /// The cold starts by cause, where the run counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start_causes: Option<ColdCauses>,
    /// Bytes moved host→device (prefetch and on-demand).
    pub bytes_to_device: u64,
    /// Bytes moved device→host (offload).
    pub bytes_to_host: u64,
    /// Offered GPU utilisation of the workload after load scaling.
    pub offered_util: f64,
    /// Invocations dropped at arrival by admission control.
    #[serde(default)]
    pub rejected: u64,
    /// Mean and p99 latency over the ideal bound's (see [`Summary::compare_to_ideal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_ideal: Option<VsIdeal>,
}

/// A run's latency as a multiple of the ideal bound's: the same arrivals with every invocation
/// warm and resident, work-conserving on the same devices (`crate::ideal`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VsIdeal {
    /// Mean latency / the ideal's mean latency.
    pub mean: f64,
    /// p99 latency / the ideal's p99 latency.
    pub p99: f64,
}

impl Summary {
    /// Records this run's mean and p99 as multiples of `ideal`'s (0 where the ideal's is 0).
    pub fn compare_to_ideal(&mut self, ideal: &Summary) {
        self.vs_ideal = Some(VsIdeal {
            mean: ratio(self.latency_ms.mean, ideal.latency_ms.mean),
            p99: ratio(self.latency_ms.p99, ideal.latency_ms.p99),
        });
    }
}

/// Summarises a run in O(n log n) over its records. An empty run gives zeros (and fairness 1).
pub fn summarize(r: &RunResult) -> Summary {
    let mut latencies: Vec<f64> = r
        .records
        .iter()
        .map(|rec| rec.latency().as_millis_f64())
        .collect();
    let mut queues: Vec<f64> = r
        .records
        .iter()
        .map(|rec| rec.queue_delay().as_millis_f64())
        .collect();
    let slowdowns = per_function_mean_slowdown(&r.records, r.functions.len());

    let makespan_s = r.makespan.as_secs_f64();
    let completed = r.records.len() as u64;
    let busy_s: f64 = r.gpu_busy.iter().map(|d| d.as_secs_f64()).sum();
    let capacity_s = r.gpus as f64 * makespan_s;

    Summary {
        policy: r.policy.clone(),
        invocations: r.invocations,
        completed,
        latency_ms: Quantiles::of_unsorted(&mut latencies),
        queue_ms: Quantiles::of_unsorted(&mut queues),
        mean_function_slowdown: mean(&slowdowns).unwrap_or(0.0),
        jain_fairness: jain_index(&slowdowns),
        max_function_slowdown: slowdowns.iter().copied().fold(0.0, f64::max),
        throughput_per_s: ratio(completed as f64, makespan_s),
        gpu_util: ratio(busy_s, capacity_s),
        cold_starts: r.cold_starts,
        cold_start_causes: r.cold_causes,
        bytes_to_device: r.bytes_to_device,
        bytes_to_host: r.bytes_to_host,
        offered_util: r.offered_util,
        rejected: r.rejected,
        vs_ideal: None,
    }
}

/// `num / den`, or 0 when the denominator is not positive.
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Each function's mean slowdown, for functions with at least one record, in function-id order.
/// Ids beyond the run's function table (an inconsistent run) are still counted, not dropped.
fn per_function_mean_slowdown(records: &[InvocationRecord], n_functions: usize) -> Vec<f64> {
    let mut dense = vec![(0.0_f64, 0_u64); n_functions];
    let mut extra: BTreeMap<u32, (f64, u64)> = BTreeMap::new();
    for rec in records {
        let slot = match dense.get_mut(rec.func.index()) {
            Some(slot) => slot,
            None => extra.entry(rec.func.0).or_default(),
        };
        slot.0 += rec.slowdown();
        slot.1 += 1;
    }
    dense
        .into_iter()
        .chain(extra.into_values())
        .filter(|&(_, n)| n > 0)
        .map(|(sum, n)| sum / n as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{hand_made_run, rec};

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn hand_computed_numbers() {
        let s = summarize(&hand_made_run("fcfs"));
        assert_eq!(s.policy, "fcfs");
        assert_eq!((s.invocations, s.completed), (6, 5));
        // Latencies 10, 30, 40, 40, 60 ms: p99 at rank 3.96 = 40 + 0.96·20.
        close(s.latency_ms.mean, 36.0);
        close(s.latency_ms.p50, 40.0);
        close(s.latency_ms.p99, 59.2);
        close(s.latency_ms.p999, 59.92);
        // Queue delays 0, 0, 10, 20, 30 ms.
        close(s.queue_ms.mean, 12.0);
        close(s.queue_ms.p50, 10.0);
        close(s.queue_ms.p99, 29.6);
        close(s.queue_ms.p999, 29.96);
        // Slowdowns: a = (1 + 3 + 6) / 3 = 10/3, b = (2 + 2) / 2 = 2, c has no records.
        close(s.mean_function_slowdown, (10.0 / 3.0 + 2.0) / 2.0);
        close(s.max_function_slowdown, 10.0 / 3.0);
        // (16/3)² / (2 · (100/9 + 4)) = 256 / 272.
        close(s.jain_fairness, 16.0 / 17.0);
        close(s.throughput_per_s, 50.0); // 5 in 100 ms
        close(s.gpu_util, 0.5); // (60 + 40) / (2 · 100)
        assert_eq!(s.cold_starts, 1);
        assert_eq!(
            (s.bytes_to_device, s.bytes_to_host),
            (3_000_000_000, 1_000_000_000)
        );
        close(s.offered_util, 0.8);
    }

    #[test]
    fn empty_run_is_zeros_and_fair() {
        let mut r = hand_made_run("empty");
        r.records.clear();
        r.makespan = sluice_core::Dur::ZERO;
        r.gpus = 0;
        let s = summarize(&r);
        assert_eq!(s.completed, 0);
        assert_eq!(s.latency_ms, Quantiles::default());
        assert_eq!(s.queue_ms, Quantiles::default());
        assert_eq!(s.jain_fairness, 1.0);
        assert_eq!(s.mean_function_slowdown, 0.0);
        assert_eq!(s.max_function_slowdown, 0.0);
        assert_eq!((s.throughput_per_s, s.gpu_util), (0.0, 0.0));
    }

    #[test]
    fn unknown_function_ids_still_count() {
        let mut r = hand_made_run("x");
        r.functions.clear();
        r.records = vec![rec(1, 7, [0, 0, 0, 20], 10, false)];
        let s = summarize(&r);
        close(s.max_function_slowdown, 2.0);
        close(s.jain_fairness, 1.0);
    }
}
