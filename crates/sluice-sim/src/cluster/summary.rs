//! What a cluster run reports: [`ClusterSummary`] (one row per router: cold starts, memory moved,
//! load imbalance, spills, remapped keys and latency quantiles), built from streaming
//! aggregates ([`Histogram`]) because a day of a thousand workers is too many invocations to keep
//! one record each; the text table and the JSON rows.

use crate::report::Quantiles;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_policy::scheduler::ColdCauses;

/// Buckets per factor of e: about 2% wide, so quantiles are within 1% of the truth.
const PER_E: f64 = 50.0;

/// A log-bucketed histogram of durations in microseconds with an exact mean. Integer counts and
/// sum: histograms merged in any order are identical.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum_us: u128,
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us <= 1 {
            0
        } else {
            ((us as f64).ln() * PER_E) as usize + 1
        }
    }

    /// Adds one sample.
    pub fn add(&mut self, us: u64) {
        let b = Self::bucket(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
        self.sum_us += u128::from(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.n += other.n;
        self.sum_us += other.sum_us;
    }

    /// Samples added.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `p` quantile in ms (the geometric middle of its bucket); 0 without samples.
    fn quantile_ms(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((p * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                if b == 0 {
                    return 0.001;
                }
                let mid = ((b as f64 - 0.5) / PER_E).exp();
                return mid / 1000.0;
            }
        }
        0.0
    }

    /// Mean, p50, p99 and p99.9 in ms.
    pub fn quantiles(&self) -> Quantiles {
        Quantiles {
            mean: if self.n == 0 {
                0.0
            } else {
                self.sum_us as f64 / self.n as f64 / 1000.0
            },
            p50: self.quantile_ms(0.5),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
        }
    }
}

/// The headline numbers of one cluster run under one router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// The routing rule (`ch-bl`, `ch-rlu`, `random`, `round-robin`, `least-loaded`, `p2c`).
    pub router: String,
    /// Each worker's queueing policy.
    pub policy: String,
    /// Workers at the start.
    pub workers: usize,
    /// GPUs per worker.
    pub gpus_per_worker: usize,
    /// Invocations offered (arrivals).
    pub invocations: u64,
    /// Invocations completed.
    pub completed: u64,
    /// Invocations refused (admission, no device fits, no worker).
    pub rejected: u64,
    /// Sandboxes created, over all workers.
    pub cold_starts: u64,
    /// The same by cause (`sluice_policy::scheduler::ColdCauses`), over all workers.
    #[serde(default)]
    pub cold_start_causes: ColdCauses,
    /// Host↔device bytes moved over all workers, GB (10⁹ bytes).
    pub gb_moved: f64,
    /// Max over mean of the workers' busy time (each worker's GPU busy time over its GPU time
    /// in the cluster, so workers that joined or left late are not penalised): 1 is even.
    pub load_imbalance: f64,
    /// Invocations a hashing router sent past their home because of load (bounded-load spills
    /// and the power-of-two fallback); `null` for the rules without homes.
    pub spilled: Option<u64>,
    /// Of those, the invocations placed by the power-of-two fallback, which ignores the bound:
    /// no worker within the walk (`probes`) was under its bound. `null` for the rules without
    /// homes.
    #[serde(default)]
    pub fallbacks: Option<u64>,
    /// Functions whose home moved with churn (hashing routers; `null` for the others).
    pub remapped: Option<u64>,
    /// End-to-end latency, arrival to finish.
    pub latency_ms: Quantiles,
    /// Queueing delay inside the worker, arrival to dispatch.
    pub queue_ms: Quantiles,
    /// Σ busy time / Σ GPU time in the cluster.
    pub gpu_util: f64,
    /// From time zero to the last completion, seconds.
    pub makespan_s: f64,
}

/// The rows under a `"routers"` key.
pub fn to_json(rows: &[ClusterSummary]) -> Value {
    let routers: Vec<Value> = rows
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .unwrap_or_else(|e| json!({ "router": s.router.as_str(), "error": e.to_string() }))
        })
        .collect();
    json!({ "routers": routers })
}

fn opt(x: Option<u64>) -> String {
    x.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A text table, one line per router.
pub fn render_table(rows: &[ClusterSummary]) -> String {
    let mut out = format!(
        "{:<13} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>6} {:>8}\n",
        "router",
        "completed",
        "cold",
        "GB moved",
        "imbalance",
        "spilled",
        "fallbacks",
        "remapped",
        "mean ms",
        "p99 ms",
        "util",
        "rejected"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<13} {:>11} {:>10} {:>9.1} {:>9.3} {:>9} {:>9} {:>8} {:>10.1} {:>10.1} {:>6.3} {:>8}\n",
            r.router,
            r.completed,
            r.cold_starts,
            r.gb_moved,
            r.load_imbalance,
            opt(r.spilled),
            opt(r.fallbacks),
            opt(r.remapped),
            r.latency_ms.mean,
            r.latency_ms.p99,
            r.gpu_util,
            r.rejected
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        assert_eq!(h.quantiles(), Quantiles::default());
        for ms in 1..=1000u64 {
            h.add(ms * 1000);
        }
        let q = h.quantiles();
        assert!((q.mean - 500.5).abs() < 1e-9);
        assert!((q.p50 / 500.0 - 1.0).abs() < 0.02, "{q:?}");
        assert!((q.p99 / 990.0 - 1.0).abs() < 0.02, "{q:?}");
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn json_row_shape() {
        let row = ClusterSummary {
            router: "ch-bl".into(),
            policy: "mqfq-sticky".into(),
            workers: 4,
            gpus_per_worker: 2,
            invocations: 10,
            completed: 9,
            rejected: 1,
            cold_starts: 3,
            cold_start_causes: ColdCauses {
                first: 2,
                concurrent: 1,
                ..ColdCauses::default()
            },
            gb_moved: 1.5,
            load_imbalance: 1.1,
            spilled: Some(2),
            fallbacks: Some(1),
            remapped: None,
            latency_ms: Quantiles::default(),
            queue_ms: Quantiles::default(),
            gpu_util: 0.5,
            makespan_s: 60.0,
        };
        let v = to_json(std::slice::from_ref(&row));
        let r = &v["routers"][0];
        assert_eq!(r["router"], "ch-bl");
        for k in [
            "invocations",
            "completed",
            "rejected",
            "cold_starts",
            "spilled",
            "fallbacks",
            "workers",
        ] {
            assert!(r[k].is_u64(), "{k}");
        }
        for k in ["gb_moved", "load_imbalance", "gpu_util", "makespan_s"] {
            assert!(r[k].is_f64(), "{k}");
        }
        assert!(r["remapped"].is_null());
        assert_eq!(r["cold_start_causes"]["first"], 2);
        assert_eq!(r["cold_start_causes"]["concurrent"], 1);
        for g in ["latency_ms", "queue_ms"] {
            for q in ["mean", "p50", "p99", "p999"] {
                assert!(r[g][q].is_f64(), "{g}.{q}");
            }
        }
        let back: ClusterSummary = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(back, row);
        let t = render_table(&[row]);
        assert!(t.contains("ch-bl") && t.lines().count() == 2, "{t}");
    }
}
