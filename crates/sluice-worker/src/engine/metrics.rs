//! The worker's Prometheus metrics: invocations by function and outcome, latency histograms per
//! phase, queue lengths, flow states, sandboxes by state and bought ahead, cold starts by cause,
//! memory moved, and GPU readings.
//! Gauges that mirror engine state are refreshed just before each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sluice_policy::scheduler::ColdCauses;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    pub function: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Phase {
    pub function: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Named {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Cause {
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Gpu {
    pub gpu: String,
}

type Hist = Family<Phase, Histogram, fn() -> Histogram>;
type FGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~ 1.7 h in 26 doubling buckets.
    Histogram::new(exponential_buckets(50e-6, 2.0, 26))
}

/// Every metric the worker exports.
pub struct Metrics {
    registry: Registry,
    pub(crate) invocations: Family<Outcome, Counter>,
    pub(crate) latency: Hist,
    pub(crate) queue_length: Family<Named, Gauge>,
    pub(crate) flows: Family<Named, Gauge>,
    pub(crate) sandboxes: Family<Named, Gauge>,
    pub(crate) bytes_moved: Family<Named, Counter>,
    pub(crate) sandboxes_bought: Counter,
    pub(crate) cold_starts: Family<Cause, Counter>,
    pub(crate) gpu_util: Family<Gpu, FGauge>,
    pub(crate) gpu_mem_used: Family<Gpu, Gauge>,
    pub(crate) gpu_mem_total: Family<Gpu, Gauge>,
    pub(crate) gpu_resident: Family<Gpu, Gauge>,
    pub(crate) gpu_processes: Family<Gpu, Gauge>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            invocations: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            queue_length: Family::default(),
            flows: Family::default(),
            sandboxes: Family::default(),
            bytes_moved: Family::default(),
            sandboxes_bought: Counter::default(),
            cold_starts: Family::default(),
            gpu_util: Family::default(),
            gpu_mem_used: Family::default(),
            gpu_mem_total: Family::default(),
            gpu_resident: Family::default(),
            gpu_processes: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "invocations",
            "Invocations finished, by function and outcome",
            m.invocations.clone(),
        );
        registry.register(
            "latency_seconds",
            "Invocation latency by phase: queue, cold_start, execution, end_to_end",
            m.latency.clone(),
        );
        registry.register(
            "queue_length",
            "Queued invocations, by queue (gpu, cpu)",
            m.queue_length.clone(),
        );
        registry.register(
            "flows",
            "Function flows by state (active, throttled, inactive)",
            m.flows.clone(),
        );
        registry.register(
            "sandboxes",
            "Sandboxes by state (starting, idle, busy)",
            m.sandboxes.clone(),
        );
        registry.register(
            "memory_moved_bytes",
            "Sandbox memory moved, by direction",
            m.bytes_moved.clone(),
        );
        registry.register(
            "sandboxes_bought",
            "Sandboxes the scheduler bought ahead: created with no invocation waiting for them",
            m.sandboxes_bought.clone(),
        );
        registry.register(
            "cold_starts",
            "Sandboxes created, by cause (first, gone, concurrent, elsewhere, ahead, prewarm)",
            m.cold_starts.clone(),
        );
        registry.register(
            "gpu_utilization",
            "GPU utilisation sampled from NVML, 0..1",
            m.gpu_util.clone(),
        );
        registry.register(
            "gpu_memory_used_bytes",
            "GPU memory in use (NVML)",
            m.gpu_mem_used.clone(),
        );
        registry.register(
            "gpu_memory_total_bytes",
            "GPU memory capacity",
            m.gpu_mem_total.clone(),
        );
        registry.register(
            "gpu_resident_bytes",
            "Sandbox memory the scheduler keeps resident on each GPU",
            m.gpu_resident.clone(),
        );
        registry.register(
            "gpu_processes",
            "Compute processes on each GPU, MPS clients included (NVML)",
            m.gpu_processes.clone(),
        );
        Metrics { registry, ..m }
    }

    pub(crate) fn observe(&self, function: &str, phase: &str, seconds: f64) {
        self.latency
            .get_or_create(&Phase {
                function: function.to_string(),
                phase: phase.to_string(),
            })
            .observe(seconds);
    }

    pub(crate) fn count(&self, function: &str, outcome: &str) {
        self.invocations
            .get_or_create(&Outcome {
                function: function.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub(crate) fn set(family: &Family<Named, Gauge>, name: &str, v: i64) {
        family
            .get_or_create(&Named {
                name: name.to_string(),
            })
            .set(v);
    }

    /// Raises the cold-start counters to the schedulers' counts `c` (they only grow).
    pub(crate) fn mirror_cold_causes(&self, c: &ColdCauses) {
        for (cause, n) in c.by_name() {
            let counter = self.cold_starts.get_or_create(&Cause { cause });
            let seen = counter.get();
            if n > seen {
                counter.inc_by(n - seen);
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
