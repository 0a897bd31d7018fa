//! What a traced pipeline run did: every batch, every stage item and every request, with their
//! instants, for tests and for anyone who wants more than the summary.

use serde::Serialize;
use sluice_core::Time;

/// One batch as it ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchRecord {
    /// The instance that ran it: an index into the plan's instances.
    pub instance: usize,
    /// The GPU that instance is on.
    pub gpu: u32,
    /// Items in the batch: at most the instance's planned batch.
    pub size: u32,
    /// Ready instant of the oldest item in the batch.
    pub oldest_ready: Time,
    /// When the batch became ready (full, or its oldest item's wait ran out).
    pub ready: Time,
    /// When it started: once ready and its executor was free.
    pub start: Time,
    /// When it finished: start plus the batch's service time (noise included).
    pub finish: Time,
}

/// One stage item of one request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemRecord {
    /// The request's id: its index in [`Trace::requests`].
    pub request: usize,
    /// The stage's index in the spec.
    pub stage: usize,
    /// The instance that ran it: an index into the plan's instances.
    pub instance: usize,
    /// When every input had reached the instance and it joined the instance's queue.
    pub ready: Time,
    /// When its batch started.
    pub start: Time,
    /// When its batch finished.
    pub finish: Time,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    /// When it arrived and entered the source stages.
    pub arrival: Time,
    /// When the last sink finished it; `None` if dropped or the run stopped first.
    pub done: Option<Time>,
    /// Whether one of its items met a full instance queue (`queue_limit`): nothing more of it was
    /// sent on.
    pub dropped: bool,
}

/// Everything a traced run did, warm-up included.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trace {
    /// In start order.
    pub batches: Vec<BatchRecord>,
    /// Items that ran, by request then stage.
    pub items: Vec<ItemRecord>,
    /// By request id.
    pub requests: Vec<RequestRecord>,
}
