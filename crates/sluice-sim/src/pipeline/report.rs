//! The summary of one pipeline run: per-stage latency (queueing + batch wait + service), mean
//! batch and utilisation, end-to-end latency, completions, drops and throughput, as a serde type
//! (JSON) and an aligned text table.
//!
//! Only requests that arrived in the measured window count. A stage's latency runs from the
//! instant its item was ready on its instance (all inputs handed over) to the end of its batch;
//! the end-to-end latency runs from arrival to the last sink's finish, so it also holds the
//! hand-offs. Utilisation is the busy share of the stage's executors over the window (under
//! time-sharing, the share of its GPU's time the stage held). Empty samples give zeros; `items`
//! and `completed` say how many there were.

use super::config::RunConfig;
use serde::{Deserialize, Serialize};
use sluice_core::stats::{mean, quantile_sorted};
use sluice_core::Dur;
use sluice_pipeline::{PipelineSpec, Plan};
use std::fmt::Write;

/// Latency statistics, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Median (interpolated between samples).
    pub p50: f64,
    /// 99th percentile (interpolated between samples).
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl LatencyMs {
    /// Statistics of `xs` (zeros for no samples).
    pub fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        LatencyMs {
            p50: quantile_sorted(&xs, 0.5).unwrap_or(0.0),
            p99: quantile_sorted(&xs, 0.99).unwrap_or(0.0),
            mean: mean(&xs).unwrap_or(0.0),
        }
    }
}

/// One stage over the measured window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    /// The stage's name in the spec.
    pub stage: String,
    /// Instances of the stage in the plan.
    pub instances: usize,
    /// Items of completed measured requests.
    pub items: u64,
    /// Ready on the instance → batch finished.
    pub latency_ms: LatencyMs,
    /// Mean size of the batches started in the window (0 if none).
    pub mean_batch: f64,
    /// Busy share of the stage's executors over the window, 0..=1.
    pub utilisation: f64,
}

/// One simulated run of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    /// The spec's name.
    pub pipeline: String,
    /// The planner policy that made the plan.
    pub policy: String,
    /// GPUs in the plan's cluster.
    pub gpus: u32,
    /// Mean Poisson arrival rate, requests per second.
    pub rate_rps: f64,
    /// Length of the measured window, seconds.
    pub duration_s: f64,
    /// Seed of the arrival and service-noise streams.
    pub seed: u64,
    /// One entry per stage, in spec order.
    pub per_stage: Vec<StageRun>,
    /// Arrival → last sink finished.
    pub e2e_ms: LatencyMs,
    /// Requests that arrived in the window.
    pub offered: u64,
    /// Requests that arrived in the window, were not dropped and finished at every sink.
    pub completed: u64,
    /// Requests that arrived in the window and were dropped at a full instance queue.
    pub dropped: u64,
    /// Completed requests per second of window.
    pub throughput_rps: f64,
    /// The run stopped early on `max_drops`.
    pub aborted: bool,
}

/// What the engine hands the report.
pub(crate) struct RunData<'a> {
    pub spec: &'a PipelineSpec,
    pub plan: &'a Plan,
    pub cfg: &'a RunConfig,
    pub stage_ms: Vec<Vec<f64>>,
    pub e2e_ms: Vec<f64>,
    pub offered: u64,
    pub dropped: u64,
    pub aborted: bool,
    pub inst_busy_us: Vec<u64>,
    /// (batches, items) started in the window, per instance.
    pub inst_batches: Vec<(u64, u64)>,
    pub window: Dur,
}

impl PipelineRun {
    pub(crate) fn from_data(d: RunData<'_>) -> Self {
        let window_us = d.window.as_micros().max(1) as f64;
        let per_stage = d
            .spec
            .stages
            .iter()
            .enumerate()
            .zip(d.stage_ms)
            .map(|((s, stage), xs)| {
                let ks: Vec<usize> = (0..d.plan.instances.len())
                    .filter(|&k| d.plan.instances[k].stage == s)
                    .collect();
                let busy: u64 = ks.iter().map(|&k| d.inst_busy_us[k]).sum();
                let (batches, items) = ks.iter().fold((0, 0), |(b, i), &k| {
                    (b + d.inst_batches[k].0, i + d.inst_batches[k].1)
                });
                StageRun {
                    stage: stage.name.clone(),
                    instances: ks.len(),
                    items: xs.len() as u64,
                    latency_ms: LatencyMs::of(xs),
                    mean_batch: if batches == 0 {
                        0.0
                    } else {
                        items as f64 / batches as f64
                    },
                    utilisation: busy as f64 / (ks.len().max(1) as f64 * window_us),
                }
            })
            .collect();
        let completed = d.e2e_ms.len() as u64;
        PipelineRun {
            pipeline: d.spec.name.clone(),
            policy: d.plan.policy.clone(),
            gpus: d.plan.gpus,
            rate_rps: d.cfg.rate_rps,
            duration_s: d.cfg.duration_s,
            seed: d.cfg.seed,
            per_stage,
            e2e_ms: LatencyMs::of(d.e2e_ms),
            offered: d.offered,
            completed,
            dropped: d.dropped,
            throughput_rps: completed as f64 / d.cfg.duration_s,
            aborted: d.aborted,
        }
    }

    /// The run as a JSON value (non-finite numbers become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
    }

    /// A header line, one aligned row per stage and an end-to-end line.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "pipeline {}  policy {}  gpus {}  rate {:.1} rps  window {:.1} s  seed {}\n",
            self.pipeline, self.policy, self.gpus, self.rate_rps, self.duration_s, self.seed
        );
        let header = [
            "stage",
            "instances",
            "items",
            "p50 ms",
            "p99 ms",
            "mean batch",
            "util %",
        ];
        let rows: Vec<Vec<String>> = self
            .per_stage
            .iter()
            .map(|s| {
                vec![
                    s.stage.clone(),
                    s.instances.to_string(),
                    s.items.to_string(),
                    ms(s.latency_ms.p50, s.items),
                    ms(s.latency_ms.p99, s.items),
                    format!("{:.2}", s.mean_batch),
                    format!("{:.1}", s.utilisation * 100.0),
                ]
            })
            .collect();
        out.push_str(&align(&header, &rows));
        let _ = writeln!(
            out,
            "end to end: p50 {} ms  p99 {} ms  mean {} ms  completed {}/{}  dropped {}  \
             throughput {:.1} rps{}",
            ms(self.e2e_ms.p50, self.completed),
            ms(self.e2e_ms.p99, self.completed),
            ms(self.e2e_ms.mean, self.completed),
            self.completed,
            self.offered,
            self.dropped,
            self.throughput_rps,
            if self.aborted {
                "  (stopped early: too many drops)"
            } else {
                ""
            }
        );
        out
    }
}

/// Milliseconds to three significant decimals, `-` when there were no samples.
fn ms(x: f64, samples: u64) -> String {
    if samples == 0 {
        "-".into()
    } else {
        format!("{x:.3}")
    }
}

/// Column 0 left aligned, the rest right aligned, two spaces apart, under a dashed rule.
fn align(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    let mut out = String::new();
    for line in [&header, &rule].into_iter().chain(rows) {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_stats_of_samples_and_of_nothing() {
        let l = LatencyMs::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(l.p50, 50.5);
        assert!((l.p99 - 99.01).abs() < 1e-9);
        assert_eq!(l.mean, 50.5);
        assert_eq!(LatencyMs::of(Vec::new()), LatencyMs::default());
    }

    #[test]
    fn table_columns_line_up() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string()],
            vec!["long-name".to_string(), "12345".to_string()],
        ];
        let text = align(&["stage", "n"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(lines[3].starts_with("long-name") && lines[3].ends_with("12345"));
    }
}
