//! What the engine answers: invocation results with their timing (and, when asked for, what the
//! function wrote meanwhile), the ways an invocation can fail (each maps to one HTTP status in
//! the API), and the status snapshot.

use crate::devices::BackendKind;
use crate::logs::InvocationLogs;
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;

/// Where an invocation's time went.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Arrival to dispatch (a token granted).
    pub queue_ms: f64,
    /// Sandbox creation until ready (0 when warm).
    pub cold_start_ms: f64,
    /// The function's own time: request sent to response read.
    pub exec_ms: f64,
    /// Arrival to response.
    pub total_ms: f64,
}

impl Timing {
    pub(crate) fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }
}

/// A successful invocation.
#[derive(Clone, Debug)]
pub struct InvokeOk {
    /// The function's JSON response, as it sent it.
    pub body: Bytes,
    pub timing: Timing,
    pub cold: bool,
}

/// How an invocation ended, with its function's output while it ran when
/// [`InvokeOptions::logs`](super::InvokeOptions::logs) asked for it (and it reached its sandbox).
#[derive(Debug)]
pub struct Invoked {
    pub result: Result<InvokeOk, InvokeError>,
    pub logs: Option<InvocationLogs>,
}

/// Why an invocation produced no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    #[error("queue full ({queued} invocations waiting); retry later")]
    QueueFull { queued: usize, retry_after_s: u64 },
    #[error(
        "overloaded: the predicted queueing delay of {predicted_ms} ms exceeds the function's \
         max_queue_ms of {bound_ms} ms; retry later"
    )]
    Overloaded {
        predicted_ms: u64,
        bound_ms: u64,
        retry_after_s: u64,
    },
    #[error("the worker is draining and accepts no new invocations")]
    Draining,
    #[error("the worker is shutting down; the invocation did not start")]
    ShuttingDown,
    #[error("function {0:?} was deleted before the invocation started")]
    FunctionDeleted(String),
    #[error("the invocation can never start on this worker: {0}")]
    Unplaceable(String),
    #[error("the invocation was withdrawn before it started: {0}")]
    Withdrawn(String),
    #[error("the function's sandbox failed to start: {0}")]
    ColdStartFailed(String),
    #[error("the function ran longer than its timeout of {0} ms and was killed")]
    Timeout(u64),
    #[error("the function process crashed: {0}")]
    Crashed(String),
    #[error("the function returned status {status}: {body}")]
    FunctionError { status: u16, body: String },
    #[error("the function's response exceeded {0} bytes")]
    ResponseTooLarge(usize),
    #[error("internal error: {0}")]
    Internal(String),
}

impl InvokeError {
    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            InvokeError::UnknownFunction(_) => "unknown",
            InvokeError::QueueFull { .. } => "rejected",
            InvokeError::Overloaded { .. } => "overloaded",
            InvokeError::Draining => "draining",
            InvokeError::ShuttingDown => "shutting_down",
            InvokeError::FunctionDeleted(_) => "deleted",
            InvokeError::Unplaceable(_) => "unplaceable",
            InvokeError::Withdrawn(_) => "withdrawn",
            InvokeError::ColdStartFailed(_) => "start_failed",
            InvokeError::Timeout(_) => "timeout",
            InvokeError::Crashed(_) => "crashed",
            InvokeError::FunctionError { .. } => "function_error",
            InvokeError::ResponseTooLarge(_) => "too_large",
            InvokeError::Internal(_) => "internal",
        }
    }
}

/// A snapshot for `/v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub devices: BackendKind,
    pub gpus: Vec<crate::devices::GpuInfo>,
    pub note: Option<String>,
    pub isolation: String,
    /// Limits and protections the sandboxes do not get on this host (`memory`, `cpu`, `pids`
    /// without cgroups; `separate_users` without root; `isolation` for plain processes).
    pub limits_not_enforced: Vec<&'static str>,
    pub policy: String,
    pub functions: usize,
    pub queued: usize,
    pub sandboxes: SandboxCounts,
    pub draining: bool,
    pub uptime_s: f64,
}

/// Sandboxes by state, over both queues.
#[derive(Debug, Default, Serialize)]
pub struct SandboxCounts {
    pub starting: usize,
    pub idle: usize,
    pub busy: usize,
}
