//! Per-stage and end-to-end measurements of a deployed pipeline: a window of recent latencies
//! for the status endpoint's p50/p99, batch sizes, item counts, and the Prometheus families the
//! worker exports for pipelines (`sluice_pipeline_*`). Owns no routing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;
use sluice_core::stats::{mean, quantile_sorted};
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many recent samples a window keeps.
const WINDOW: usize = 4096;

/// Recent samples of one quantity, for quantiles.
#[derive(Debug, Default)]
pub(crate) struct Window {
    samples: Mutex<VecDeque<f64>>,
}

impl Window {
    pub(crate) fn record(&self, v: f64) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() == WINDOW {
            s.pop_front();
        }
        s.push_back(v);
    }

    /// (count, p50, p99, mean) of the window; zeros when empty.
    pub(crate) fn summary(&self) -> Quantiles {
        self.recent(WINDOW)
    }

    /// The same over the `n` most recent samples.
    pub(crate) fn recent(&self, n: usize) -> Quantiles {
        let mut v: Vec<f64> = {
            let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            s.iter().rev().take(n).copied().collect()
        };
        v.sort_by(f64::total_cmp);
        Quantiles {
            count: v.len(),
            p50_ms: quantile_sorted(&v, 0.5).unwrap_or(0.0),
            p99_ms: quantile_sorted(&v, 0.99).unwrap_or(0.0),
            mean_ms: mean(&v).unwrap_or(0.0),
        }
    }
}

/// Quantiles of a window, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabel {
    pub pipeline: String,
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PipelineLabel {
    pub pipeline: String,
    pub outcome: String,
}

type StageHist = Family<StageLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(100e-6, 2.0, 22))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

/// The pipeline families in their own registry (appended to `/metrics`).
pub(crate) struct PipelineMetrics {
    registry: Registry,
    pub requests: Family<PipelineLabel, Counter>,
    pub e2e_seconds: Family<PipelineLabel, Histogram, fn() -> Histogram>,
    pub stage_seconds: StageHist,
    pub stage_queue_seconds: StageHist,
    pub batch_size: StageHist,
    pub queued: Family<StageLabel, Gauge>,
    pub handoffs: Family<HandoffLabel, Counter>,
    pub shm_bytes: Family<StageLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandoffLabel {
    pub pipeline: String,
    pub kind: String,
}

impl PipelineMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice_pipeline");
        let requests = Family::<PipelineLabel, Counter>::default();
        registry.register("requests", "Pipeline requests by outcome", requests.clone());
        let e2e_seconds: Family<PipelineLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "latency_seconds",
            "End-to-end latency of pipeline requests",
            e2e_seconds.clone(),
        );
        let stage_seconds: StageHist = Family::new_with_constructor(latency_histogram);
        registry.register(
            "stage_latency_seconds",
            "Time an item spends in a stage: queue, batch fill and service",
            stage_seconds.clone(),
        );
        let stage_queue_seconds: StageHist = Family::new_with_constructor(latency_histogram);
        registry.register(
            "stage_queue_seconds",
            "Time an item waits in a stage's batching queue",
            stage_queue_seconds.clone(),
        );
        let batch_size: StageHist = Family::new_with_constructor(batch_histogram);
        registry.register(
            "batch_size",
            "Batch sizes run by stages",
            batch_size.clone(),
        );
        let queued = Family::<StageLabel, Gauge>::default();
        registry.register("stage_queued", "Items queued at a stage", queued.clone());
        let handoffs = Family::<HandoffLabel, Counter>::default();
        registry.register(
            "handoffs",
            "Stage-to-stage hand-offs by kind (shm = in place, copy = through the worker)",
            handoffs.clone(),
        );
        let shm_bytes = Family::<StageLabel, Gauge>::default();
        registry.register(
            "shm_bytes",
            "Bytes held in shared-memory segments per co-location group",
            shm_bytes.clone(),
        );
        PipelineMetrics {
            registry,
            requests,
            e2e_seconds,
            stage_seconds,
            stage_queue_seconds,
            batch_size,
            queued,
            handoffs,
            shm_bytes,
        }
    }

    /// OpenMetrics text of the pipeline families (with its `# EOF`).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_most_recent_samples() {
        let w = Window::default();
        for i in 0..(WINDOW + 10) {
            w.record(i as f64);
        }
        let q = w.summary();
        assert_eq!(q.count, WINDOW);
        assert!(q.p50_ms >= 10.0 + (WINDOW as f64) / 2.0 - 2.0);
        assert!(q.p99_ms > q.p50_ms);
    }

    #[test]
    fn empty_window_is_zero() {
        assert_eq!(Window::default().summary(), Quantiles::default());
    }

    #[test]
    fn metrics_encode_names() {
        let m = PipelineMetrics::new();
        let l = StageLabel {
            pipeline: "p".into(),
            stage: "s".into(),
        };
        m.batch_size.get_or_create(&l).observe(4.0);
        let text = m.encode();
        assert!(text.contains("sluice_pipeline_batch_size"), "{text}");
    }
}
