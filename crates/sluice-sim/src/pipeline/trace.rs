//! What a traced pipeline run did: every batch, every stage item and every request, with their
//! instants, for tests and for anyone who wants more than the summary.

use serde::Serialize;
use sluice_core::Time;

/// One batch as it ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchRecord {
    pub instance: usize,
    pub gpu: u32,
    pub size: u32,
    /// Ready instant of the oldest item in the batch.
    pub oldest_ready: Time,
    /// When the batch became ready (full, or its oldest item's wait ran out).
    pub ready: Time,
    pub start: Time,
    pub finish: Time,
}

/// One stage item of one request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemRecord {
    pub request: usize,
    pub stage: usize,
    pub instance: usize,
    pub ready: Time,
    pub start: Time,
    pub finish: Time,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRecord {
    pub arrival: Time,
    /// When the last sink finished it; `None` if dropped or the run stopped first.
    pub done: Option<Time>,
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
