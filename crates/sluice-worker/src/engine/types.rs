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
    /// Where its time went, from arrival to response.
    pub timing: Timing,
    /// Whether the invocation started its own sandbox (a cold start, timed in
    /// [`Timing::cold_start_ms`]) rather than reusing a live one.
    pub cold: bool,
}

/// How an invocation ended, with its function's output while it ran when
/// [`InvokeOptions::logs`](super::InvokeOptions::logs) asked for it (and it reached its sandbox).
#[derive(Debug)]
pub struct Invoked {
    /// The response and timing, or why there is none.
    pub result: Result<InvokeOk, InvokeError>,
    /// What the function wrote while the invocation ran (a cold one's includes its sandbox's
    /// start); `None` when not asked for, or when the invocation never reached a sandbox.
    pub logs: Option<InvocationLogs>,
}

/// Why an invocation produced no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// No function of this name is registered (404).
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// `max_queued` or `max_queued_per_function` is reached (429 with `Retry-After`).
    #[error("queue full ({queued} invocations waiting); retry later")]
    QueueFull {
        /// Invocations queued over all functions when this one was refused (also when it was
        /// the function's own bound that was reached).
        queued: usize,
        /// Suggested wait before retrying, seconds: the predicted queueing delay rounded up,
        /// at least 1.
        retry_after_s: u64,
    },
    /// The predicted queueing delay exceeds the function's `max_queue_ms` (429 with
    /// `Retry-After`).
    #[error(
        "overloaded: the predicted queueing delay of {predicted_ms} ms exceeds the function's \
         max_queue_ms of {bound_ms} ms; retry later"
    )]
    Overloaded {
        /// The scheduler's predicted queueing delay for this invocation, milliseconds.
        predicted_ms: u64,
        /// The function's `max_queue_ms` (its `timeout_ms` unless set), milliseconds.
        bound_ms: u64,
        /// Suggested wait before retrying, seconds: how far the prediction exceeds the bound,
        /// rounded up, at least 1.
        retry_after_s: u64,
    },
    /// The worker is draining: new invocations are refused (503) while queued ones finish.
    /// Already admitted (asynchronous) invocations are not refused for it.
    #[error("the worker is draining and accepts no new invocations")]
    Draining,
    /// The worker is stopping for good: refused, or ended while still queued (503). An accepted
    /// asynchronous invocation stays queued in the store and runs at the next start.
    #[error("the worker is shutting down; the invocation did not start")]
    ShuttingDown,
    /// The named function was unregistered while the invocation was still queued (404).
    #[error("function {0:?} was deleted before the invocation started")]
    FunctionDeleted(String),
    /// The scheduler rejected it: no device here can ever hold it (409); the text is the
    /// scheduler's reason.
    #[error("the invocation can never start on this worker: {0}")]
    Unplaceable(String),
    /// Its [`StartHook`](super::StartHook) failed, so it was not sent to its sandbox (409); the
    /// text is the hook's error (e.g. the asynchronous record could not be marked running).
    #[error("the invocation was withdrawn before it started: {0}")]
    Withdrawn(String),
    /// Its sandbox could not be created or did not become ready within `start_timeout_ms`
    /// (502); the text is the sandbox error, with a hint where there is one.
    #[error("the function's sandbox failed to start: {0}")]
    ColdStartFailed(String),
    /// The function did not answer within its `timeout_ms` (the value carried, milliseconds);
    /// its sandbox was killed (504).
    #[error("the function ran longer than its timeout of {0} ms and was killed")]
    Timeout(u64),
    /// The connection to the function failed or its sandbox was gone (502); the text is the
    /// protocol error, with the tail of its stderr where there is one.
    #[error("the function process crashed: {0}")]
    Crashed(String),
    /// The function answered `/invoke` with a non-2xx status (502); its sandbox stays live.
    #[error("the function returned status {status}: {body}")]
    FunctionError {
        /// The HTTP status the function answered.
        status: u16,
        /// The start of its response body (at most
        /// [`ERROR_BODY_LIMIT`](crate::protocol::ERROR_BODY_LIMIT) bytes), as text.
        body: String,
    },
    /// The function's response exceeded `max_response_bytes` (the value carried, bytes) (502).
    #[error("the function's response exceeded {0} bytes")]
    ResponseTooLarge(usize),
    /// A bug or lost bookkeeping in the worker (500).
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
    /// Whether the GPUs are real (NVML) or simulated.
    pub devices: BackendKind,
    /// The schedulable devices (whole GPUs or MIG instances).
    pub gpus: Vec<crate::devices::GpuInfo>,
    /// A warning for the operator: set on simulated GPUs (GPU functions then run on the CPU),
    /// `None` otherwise.
    pub note: Option<String>,
    /// The sandbox isolation in use: `bubblewrap`, `unshare`, the OCI runtime's program
    /// (`runc`, `crun`) or `plain process`.
    pub isolation: String,
    /// Limits and protections the sandboxes do not get on this host (`memory`, `cpu`, `pids`
    /// without cgroups; `separate_users` without root; `isolation` for plain processes).
    pub limits_not_enforced: Vec<&'static str>,
    /// The scheduling policy's name (e.g. `mqfq-sticky`).
    pub policy: String,
    /// Functions registered.
    pub functions: usize,
    /// Invocations queued and not yet started, over both queues.
    pub queued: usize,
    /// Live sandboxes by state.
    pub sandboxes: SandboxCounts,
    /// Whether the worker refuses new invocations (draining or stopping).
    pub draining: bool,
    /// Seconds since the engine was created.
    pub uptime_s: f64,
}

/// Sandboxes by state, over both queues.
#[derive(Debug, Default, Serialize)]
pub struct SandboxCounts {
    /// Being created and not yet ready.
    pub starting: usize,
    /// Ready and serving no invocation (kept alive for reuse until keep-alive expiry).
    pub idle: usize,
    /// Serving at least one invocation.
    pub busy: usize,
}
