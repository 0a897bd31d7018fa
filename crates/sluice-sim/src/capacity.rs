//! Capacity search (`sluice sim --capacity`): for each policy, the fewest GPUs on which a trace at
//! its recorded rate meets a latency target.
//!
//! A GPU count *meets* the target when every invocation completed (none rejected) and the chosen
//! statistic of latency (mean or p99) is at or below the target. The search assumes that adding
//! GPUs never makes a policy worse (checked for the bundled traces from 1 to 16 GPUs, see
//! docs/mqfq-results.md): it tries `max_gpus` first (`gpus: None` when even that misses), then
//! bisects, so a policy costs about `log2(max_gpus) + 1` runs. Policies run in parallel threads.

use crate::experiment::{parallel, Experiment, ExperimentError};
use crate::report::{summarize, Summary};
use crate::workload::Workload;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The latency statistic a target is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// Mean latency.
    Mean,
    /// 99th percentile latency.
    P99,
}

/// A latency target: `p99=<ms>` or `mean=<ms>`.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct Slo {
    /// Which statistic.
    pub stat: Stat,
    /// The target, milliseconds.
    pub ms: f64,
}

/// A target that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid latency target `{0}`: expected p99=<ms> or mean=<ms> with a positive number")]
pub struct SloError(String);

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(s: &str) -> Result<Slo, SloError> {
        let bad = || SloError(s.chars().take(60).collect());
        let (stat, ms) = s.split_once('=').ok_or_else(bad)?;
        let stat = match stat.trim() {
            "p99" => Stat::P99,
            "mean" => Stat::Mean,
            _ => return Err(bad()),
        };
        let ms: f64 = ms.trim().parse().map_err(|_| bad())?;
        if !(ms.is_finite() && ms > 0.0) {
            return Err(bad());
        }
        Ok(Slo { stat, ms })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stat = match self.stat {
            Stat::Mean => "mean",
            Stat::P99 => "p99",
        };
        write!(f, "{stat}={}", self.ms)
    }
}

impl Slo {
    /// Whether a run meets the target: nothing rejected, everything completed, statistic within.
    pub fn met_by(&self, s: &Summary) -> bool {
        let value = match self.stat {
            Stat::Mean => s.latency_ms.mean,
            Stat::P99 => s.latency_ms.p99,
        };
        s.rejected == 0 && s.completed == s.invocations && value <= self.ms
    }
}

/// Mean and p99 latency of one run, ms.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Mean, ms.
    pub mean: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

/// One policy's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityRow {
    /// The policy.
    pub policy: String,
    /// The fewest GPUs meeting the target; `None` if `max_gpus` do not.
    pub gpus: Option<usize>,
    /// Latency at that count (at `max_gpus` when the target is not met).
    pub latency_ms: Latency,
}

/// For each of `exp`'s policies, the fewest GPUs in `1..=max_gpus` on which `w` meets `slo`.
/// `progress(policy_index, gpus_tried)` is called before each run.
pub fn search(
    exp: &Experiment,
    w: &Workload,
    slo: Slo,
    max_gpus: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<CapacityRow>, ExperimentError> {
    exp.validate()?;
    let max = max_gpus.max(1);
    parallel(exp.policies.len(), |i| {
        let policy = &exp.policies[i];
        let at = |gpus: usize| {
            progress(i, gpus);
            exp.run_one(w, policy, gpus, &mut |_| {})
                .map(|r| summarize(&r))
        };
        let top = at(max)?;
        if !slo.met_by(&top) {
            return Ok(row(policy, None, &top));
        }
        // Invariant: `hi` meets the target with summary `best`; every count below `lo` misses.
        let (mut lo, mut hi, mut best) = (1, max, top);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let s = at(mid)?;
            if slo.met_by(&s) {
                hi = mid;
                best = s;
            } else {
                lo = mid + 1;
            }
        }
        Ok(row(policy, Some(hi), &best))
    })
}

fn row(policy: &str, gpus: Option<usize>, s: &Summary) -> CapacityRow {
    CapacityRow {
        policy: policy.to_string(),
        gpus,
        latency_ms: Latency {
            mean: s.latency_ms.mean,
            p99: s.latency_ms.p99,
        },
    }
}

/// `{"capacity": [CapacityRow, ...]}` plus the trace and the target.
pub fn to_json(trace: &str, slo: Slo, max_gpus: usize, rows: &[CapacityRow]) -> serde_json::Value {
    serde_json::json!({
        "trace": trace,
        "slo": slo.to_string(),
        "max_gpus": max_gpus,
        "capacity": rows,
    })
}

/// A text table: policy, GPUs (or `> max`), mean and p99 at that count.
pub fn render_table(max_gpus: usize, rows: &[CapacityRow]) -> String {
    let mut out = format!(
        "{:<12}  {:>6}  {:>12}  {:>12}\n",
        "policy", "GPUs", "mean ms", "p99 ms"
    );
    for r in rows {
        let gpus = r
            .gpus
            .map_or_else(|| format!("> {max_gpus}"), |g| g.to_string());
        out.push_str(&format!(
            "{:<12}  {:>6}  {:>12.1}  {:>12.1}\n",
            r.policy, gpus, r.latency_ms.mean, r.latency_ms.p99
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        let s: Slo = "p99=500".parse().unwrap();
        assert_eq!((s.stat, s.ms), (Stat::P99, 500.0));
        assert_eq!(s.to_string(), "p99=500");
        let m: Slo = " mean = 20.5 ".parse().unwrap();
        assert_eq!((m.stat, m.ms), (Stat::Mean, 20.5));
        for bad in ["p99", "p95=3", "p99=-1", "p99=x", "mean=inf", ""] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_marks_unmet_targets() {
        let rows = [row_of("fcfs", Some(3)), row_of("sjf", None)];
        let t = render_table(8, &rows);
        assert!(t.contains("fcfs") && t.contains("     3"));
        assert!(t.contains("> 8"));
        let v = to_json("t", "p99=5".parse().unwrap(), 8, &rows);
        assert_eq!(v["capacity"][1]["gpus"], serde_json::Value::Null);
        assert_eq!(v["capacity"][0]["gpus"], 3);
        assert_eq!(v["slo"], "p99=5");
    }

    fn row_of(policy: &str, gpus: Option<usize>) -> CapacityRow {
        CapacityRow {
            policy: policy.into(),
            gpus,
            latency_ms: Latency {
                mean: 1.0,
                p99: 2.0,
            },
        }
    }
}
