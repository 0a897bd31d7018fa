//! The store's public value types: an invocation's record and status, the outcome a run reports,
//! the per-state counts, and the textual form of invocation ids (`inv-000000000042`). Pure data;
//! owns no storage.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Prefix of every invocation id.
const ID_PREFIX: &str = "inv-";
/// Digits an id is zero-padded to (longer numbers simply print longer).
const ID_DIGITS: usize = 12;

/// Where an accepted asynchronous invocation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, waiting to run.
    Queued,
    /// Handed to a sandbox (at least once).
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error (including "gave up after a restart").
    Failed,
}

impl Status {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    /// Whether the invocation has finished (succeeded or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended, as reported to [`Store::finish`](super::Store::finish).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response body.
    Succeeded(Vec<u8>),
    /// Why it failed.
    Failed(String),
}

/// One accepted asynchronous invocation, with its result once finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// Unique id, e.g. `inv-000000000042`; never reused, also across restarts.
    pub id: String,
    /// Name of the function invoked.
    pub function: String,
    /// The request body.
    pub input: Vec<u8>,
    /// Where it is in its life (queued, running, succeeded, failed).
    pub status: Status,
    /// The response body, when `status` is `Succeeded`.
    pub result: Option<Vec<u8>>,
    /// Why it failed, when `status` is `Failed`.
    pub error: Option<String>,
    /// How many times it was handed to a sandbox.
    pub attempts: u32,
    /// When it was accepted, ms (caller's clock).
    pub accepted_ms: u64,
    /// When the latest attempt started, ms.
    pub started_ms: Option<u64>,
    /// When it finished, ms.
    pub finished_ms: Option<u64>,
    /// What the function wrote to stdout and stderr while it ran (its last attempt), once it
    /// finished.
    pub logs: Option<crate::logs::InvocationLogs>,
}

/// An invocation without its payloads and logs, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvocationSummary {
    /// Its id.
    pub id: String,
    /// Name of the function invoked (`pipeline:<name>` for a pipeline).
    pub function: String,
    /// Where it is in its life (queued, running, succeeded, failed).
    pub status: Status,
    /// Why it failed, when `status` is `Failed`.
    pub error: Option<String>,
    /// How many times it was handed to a sandbox.
    pub attempts: u32,
    /// When it was accepted, ms since the Unix epoch.
    pub accepted_ms: u64,
    /// When the latest attempt started, ms.
    pub started_ms: Option<u64>,
    /// When it finished, ms.
    pub finished_ms: Option<u64>,
}

/// How many functions and invocations (by status) the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// Registered functions stored.
    pub functions: u64,
    /// Accepted asynchronous invocations waiting to run.
    pub queued: u64,
    /// Asynchronous invocations handed to a sandbox and not finished.
    pub running: u64,
    /// Finished asynchronous invocations with a result, not yet purged.
    pub succeeded: u64,
    /// Finished asynchronous invocations with an error, not yet purged.
    pub failed: u64,
}

/// The textual id of invocation number `n`.
pub(crate) fn format_id(n: u64) -> String {
    format!("{ID_PREFIX}{n:0ID_DIGITS$}")
}

/// The number behind a textual id; `None` unless `id` is exactly what [`format_id`] produces.
pub(crate) fn parse_id(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (format_id(n) == id).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_numerically_as_text_up_to_12_digits() {
        assert_eq!(format_id(42), "inv-000000000042");
        for n in [0, 1, 42, 999_999_999_999, 1_000_000_000_000, u64::MAX] {
            assert_eq!(parse_id(&format_id(n)), Some(n));
        }
        assert!(format_id(9) < format_id(10));
    }

    #[test]
    fn non_canonical_ids_are_rejected() {
        for bad in [
            "",
            "inv-",
            "inv-42",
            "42",
            "inv-+00000000042",
            "inv-00000000004x",
            "INV-000000000042",
            "inv-000000000042 ",
            "inv-99999999999999999999999",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Status::Succeeded).ok().as_deref(),
            Some("\"succeeded\"")
        );
        assert_eq!(Status::Running.to_string(), "running");
        assert!(Status::Failed.is_finished() && !Status::Queued.is_finished());
    }
}
