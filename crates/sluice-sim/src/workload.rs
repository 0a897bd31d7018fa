//! A workload: the functions of a run with their device profiles, and the arrivals to replay.

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, Time};

/// How one function behaves on the modelled devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionProfile {
    /// The function's name in the trace (or catalogue, for synthetic mixes).
    pub name: String,
    /// The catalogue class it was mapped onto (e.g. `squeezenet`).
    pub class: String,
    /// Warm execution time alone on a GPU.
    pub gpu_warm: Dur,
    /// Warm execution time on a CPU.
    pub cpu_warm: Dur,
    /// Sandbox creation plus CUDA context plus model load, before the first execution.
    pub cold_start: Dur,
    /// Device memory held by a warm sandbox of this function, bytes.
    pub gpu_mem_bytes: u64,
}

/// One invocation to replay: function `func` arrives at `at`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// When it arrives, from the start of the run.
    pub at: Time,
    /// The function invoked: an index into [`Workload::functions`].
    pub func: FunctionId,
}

/// The functions (indexed by [`FunctionId`]) and the arrivals, sorted by time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// A short description of the source, e.g. `azure2019:…/100`.
    pub name: String,
    /// Every function's profile, indexed by [`FunctionId`].
    pub functions: Vec<FunctionProfile>,
    /// Every invocation to replay, sorted by time.
    pub arrivals: Vec<Arrival>,
}

impl Workload {
    /// Span from time zero to the last arrival.
    pub fn span(&self) -> Dur {
        self.arrivals
            .last()
            .map(|a| a.at.since(Time::ZERO))
            .unwrap_or(Dur::ZERO)
    }

    /// Offered GPU utilisation on `gpus` devices: total solo warm GPU time of all arrivals over
    /// `span × gpus`. 1.0 means the work would keep every GPU busy running one function at a time.
    pub fn offered_util(&self, gpus: usize) -> f64 {
        let span = self.span().as_secs_f64();
        if span <= 0.0 || gpus == 0 {
            return 0.0;
        }
        let work: f64 = self
            .arrivals
            .iter()
            .map(|a| self.functions[a.func.index()].gpu_warm.as_secs_f64())
            .sum();
        work / (span * gpus as f64)
    }
}
