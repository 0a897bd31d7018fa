//! Queueing policies: which queued invocation runs next on a device whose token was just taken.
//!
//! Every policy implements [`QueuePolicy`] and is selectable by name through [`build`]:
//! `fcfs`, `sjf`, `eedf`, `batch`, `paella`, `mqfq`, `mqfq-sticky`. Policies hold invocations,
//! never sandboxes or devices; what they know of the outside comes through [`DispatchCtx`].
//! Policies with per-function flows report flow-state changes as [`FlowEvent`]s, which the
//! scheduler turns into memory movement.

mod batch;
mod eedf;
mod fcfs;
mod heads;
mod mqfq;
mod ord;
mod paella;
mod sjf;

#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use eedf::Eedf;
pub use fcfs::Fcfs;
pub use heads::HeadPolicy;
pub use mqfq::{Mqfq, MqfqParams, Ttl};
pub use paella::Paella;
pub use sjf::Sjf;

use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, GpuId, Invocation, Time};

/// The state of a function's flow under flow-based policies (MQFQ and MQFQ-Sticky).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowState {
    /// Backlogged and eligible, or idle but inside its anticipation TTL: keep it hot.
    Active,
    /// Backlogged but ahead of virtual time by more than the throttle threshold: not eligible.
    Throttled,
    /// Empty, nothing in flight, TTL expired.
    Inactive,
}

/// A flow changed state at `at`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// The function whose flow changed.
    pub func: FunctionId,
    /// The state it entered.
    pub state: FlowState,
    /// The `now` of the call that made the change.
    pub at: Time,
}

/// What a policy may ask about the world while choosing.
pub struct DispatchCtx<'a> {
    /// The device whose token was taken for this dispatch.
    pub gpu: GpuId,
    /// Whether `func` has an idle warm sandbox on `gpu`.
    pub warm: &'a dyn Fn(FunctionId) -> bool,
}

/// A queueing policy. Calls carry `now`; implementations must be deterministic.
///
/// Contract, checked by the shared tests in `queue/tests.rs`:
/// - every enqueued invocation is dispatched exactly once (requeued ones count again);
/// - invocations of one function leave in arrival order (FIFO within a flow);
/// - `len` is the number of queued (not dispatched) invocations;
/// - no operation scans every function: cost is O(log n) or amortised O(1) in backlogged flows.
pub trait QueuePolicy: Send {
    /// The policy's name, as accepted by [`build`].
    fn name(&self) -> &'static str;

    /// Declares a function and its fair-share weight (> 0). Enqueue of an undeclared function
    /// declares it with weight 1.
    fn register(&mut self, func: FunctionId, weight: f64) {
        let _ = (func, weight);
    }

    /// Adds an invocation at the tail of its function's queue.
    fn enqueue(&mut self, inv: Invocation, now: Time);

    /// Removes and returns the invocation to start on `ctx.gpu`, or `None` if nothing may start.
    fn dispatch(&mut self, now: Time, ctx: &DispatchCtx<'_>) -> Option<Invocation>;

    /// Undoes the dispatch of `inv` (it could not start after all): it goes back to the head of
    /// its function's queue and the function is no longer counted as in flight for it.
    fn requeue_front(&mut self, inv: Invocation, now: Time);

    /// An invocation of `func` that was dispatched has finished.
    fn complete(&mut self, func: FunctionId, now: Time);

    /// The estimator's newest service-time estimate for `func` (mean execution time).
    fn set_estimate(&mut self, func: FunctionId, est: Dur) {
        let _ = (func, est);
    }

    /// Advances timers (anticipation TTLs) to `now`.
    fn tick(&mut self, now: Time) {
        let _ = now;
    }

    /// The earliest instant at which [`QueuePolicy::tick`] has work to do.
    fn next_timer(&self) -> Option<Time> {
        None
    }

    /// Number of queued invocations.
    fn len(&self) -> usize;

    /// Whether nothing is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves flow-state changes since the last call into `out` (flow-based policies only).
    fn drain_events(&mut self, out: &mut Vec<FlowEvent>) {
        let _ = out;
    }

    /// The current state of `func`'s flow, for flow-based policies.
    fn flow_state(&self, func: FunctionId) -> Option<FlowState> {
        let _ = func;
        None
    }

    /// Whether a function's invocations dispatched back to back should run one after another
    /// in one sandbox (a batch), rather than each in a sandbox of its own. The scheduler then
    /// lines them up behind the sandbox running the batch (`batch`).
    fn batches_in_one_sandbox(&self) -> bool {
        false
    }
}

/// Parameters of all policies, with documented defaults; unknown keys are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueParams {
    /// `batch`: the most invocations of one function dispatched back to back (`None`: no cap).
    pub batch_max_size: Option<usize>,
    /// `paella`: a function whose deficit exceeds this goes first (Paella's default: 25).
    pub paella_threshold: f64,
    /// `mqfq` and `mqfq-sticky`.
    pub mqfq: MqfqParams,
}

impl Default for QueueParams {
    fn default() -> Self {
        QueueParams {
            batch_max_size: None,
            paella_threshold: 25.0,
            mqfq: MqfqParams::default(),
        }
    }
}

/// The policy names [`build`] accepts.
pub const POLICY_NAMES: &[&str] = &[
    "fcfs",
    "sjf",
    "eedf",
    "batch",
    "paella",
    "mqfq",
    "mqfq-sticky",
];

/// A policy name that [`build`] does not know, or parameters it rejects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    /// `name` is none of [`POLICY_NAMES`].
    #[error(
        "unknown queueing policy {0:?}; known: fcfs, sjf, eedf, batch, paella, mqfq, mqfq-sticky"
    )]
    UnknownPolicy(String),
    /// A [`QueueParams`] value is out of range; the message names it.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
}

/// Builds the policy called `name` with `params`.
pub fn build(name: &str, params: &QueueParams) -> Result<Box<dyn QueuePolicy>, BuildError> {
    if params.batch_max_size == Some(0) {
        return Err(BuildError::InvalidParam(
            "batch_max_size must be at least 1".into(),
        ));
    }
    if !(params.paella_threshold.is_finite() && params.paella_threshold > 0.0) {
        return Err(BuildError::InvalidParam(
            "paella_threshold must be a positive number".into(),
        ));
    }
    params.mqfq.validate().map_err(BuildError::InvalidParam)?;
    Ok(match name {
        "fcfs" => Box::new(Fcfs::new()),
        "sjf" => Box::new(Sjf::new()),
        "eedf" => Box::new(Eedf::new()),
        "batch" => Box::new(Batch::new(params.batch_max_size)),
        "paella" => Box::new(Paella::new(params.paella_threshold)),
        "mqfq" => Box::new(Mqfq::plain(params.mqfq.clone())),
        "mqfq-sticky" => Box::new(Mqfq::sticky(params.mqfq.clone())),
        other => return Err(BuildError::UnknownPolicy(other.to_string())),
    })
}
