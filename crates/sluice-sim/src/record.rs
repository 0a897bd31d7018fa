//! What a run produces: one record per invocation plus run-wide counters. Engines fill these;
//! reports only read them.

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, GpuId, Time};
use sluice_policy::scheduler::ColdCauses;

/// The life of one invocation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// The invocation's id: the index of its arrival in the workload.
    pub id: u64,
    /// The function invoked.
    pub func: FunctionId,
    /// When it arrived at the queue.
    pub arrival: Time,
    /// When the policy dispatched it onto a device token.
    pub dispatched: Time,
    /// When its execution began (after any cold start and memory movement).
    pub started: Time,
    /// When it finished.
    pub finished: Time,
    /// The device it ran on.
    pub gpu: GpuId,
    /// Whether it paid a cold start.
    pub cold: bool,
    /// Its warm execution time alone on the device: the denominator of slowdown.
    pub solo: Dur,
    /// Bytes moved host→device to make its sandbox resident before it started.
    pub bytes_to_device: u64,
}

impl InvocationRecord {
    /// End-to-end latency: arrival to finish.
    pub fn latency(&self) -> Dur {
        self.finished.since(self.arrival)
    }
    /// Time spent waiting in the queue before dispatch.
    pub fn queue_delay(&self) -> Dur {
        self.dispatched.since(self.arrival)
    }
    /// End-to-end latency over solo warm execution time (≥ 1 in a consistent run).
    pub fn slowdown(&self) -> f64 {
        let solo = self.solo.as_micros().max(1) as f64;
        self.latency().as_micros() as f64 / solo
    }
}

/// Everything one run of one policy produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The queueing policy's name.
    pub policy: String,
    /// The workload's name.
    pub workload: String,
    /// Function names, indexed by `FunctionId`.
    pub functions: Vec<String>,
    /// Number of invocations offered (arrivals).
    pub invocations: u64,
    /// One record per completed invocation, in completion order.
    pub records: Vec<InvocationRecord>,
    /// Number of GPUs modelled.
    pub gpus: usize,
    /// From time zero to the last completion (or last arrival, if later).
    pub makespan: Dur,
    /// Per GPU, time during which at least one invocation executed.
    pub gpu_busy: Vec<Dur>,
    /// Sandboxes created (cold starts).
    pub cold_starts: u64,
    /// The cold starts by cause, where the run's scheduler counted them (not a live run's, nor
    /// the ideal's, which pays none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_causes: Option<ColdCauses>,
    /// Bytes moved host→device (prefetch and on-demand) and device→host (offload).
    pub bytes_to_device: u64,
    /// Bytes moved device→host: idle sandboxes pushed out to make room or, under eager flow
    /// coupling, as their flow left Active.
    pub bytes_to_host: u64,
    /// Offered GPU utilisation after load scaling (see `Workload::offered_util`).
    pub offered_util: f64,
    /// Invocations dropped at arrival by admission control (never started).
    #[serde(default)]
    pub rejected: u64,
}
