//! The on-disk layout (schema version 1): the redb tables, what each key and value holds, the
//! version check at open, and the encoding of an invocation's small, often rewritten part.
//!
//! Tables:
//! - `meta`: `&str -> u64`: `schema_version`, `next_invocation` (the id counter).
//! - `functions`: name -> JSON of [`FunctionSpec`](crate::function::FunctionSpec).
//! - `pipelines`: name -> JSON of the pipeline's deploy request (added without a version bump:
//!   older builds never open it).
//! - `invocations`: id number -> JSON of [`StoredInvocation`] (everything but the payloads).
//! - `inputs`, `results`: id number -> raw request / response bytes (written once each, so
//!   status changes never rewrite a payload).
//! - `logs`: id number -> JSON of [`InvocationLogs`](crate::logs::InvocationLogs), what the
//!   function wrote while its last attempt ran (written once, when it finishes; added without a
//!   version bump: an older build ignores the table, and its retention leaves those rows).
//! - `queued`, `running`: id number -> `()`: the unfinished invocations, by state.
//! - `succeeded`, `failed`: `(finished_ms, id number) -> ()`: finished ones, by finish time (for
//!   retention).
//!
//! Every invocation is in exactly one of the four state indexes, changed in the same
//! transaction as its record. Owns no operation logic; see `functions.rs` and `invocations.rs`.

use super::{InvocationRecord, InvocationSummary, Status, StoreError};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The schema this build reads and writes.
pub(crate) const SCHEMA_VERSION: u64 = 1;
pub(crate) const KEY_VERSION: &str = "schema_version";
pub(crate) const KEY_NEXT_ID: &str = "next_invocation";

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const FUNCTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("functions");
pub(crate) const PIPELINES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipelines");
pub(crate) const INVOCATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("invocations");
pub(crate) const INPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("inputs");
pub(crate) const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
pub(crate) const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
pub(crate) const QUEUED: TableDefinition<u64, ()> = TableDefinition::new("queued");
pub(crate) const RUNNING: TableDefinition<u64, ()> = TableDefinition::new("running");
pub(crate) const SUCCEEDED: TableDefinition<(u64, u64), ()> = TableDefinition::new("succeeded");
pub(crate) const FAILED: TableDefinition<(u64, u64), ()> = TableDefinition::new("failed");

/// Creates any missing table, stamps a new file with [`SCHEMA_VERSION`], and refuses a file
/// written by a newer schema. One short write transaction.
pub(crate) fn init(db: &redb::Database, path: &Path) -> Result<(), StoreError> {
    let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: path.to_path_buf(),
        source: e,
    };
    // Check the version read-only first, so a newer file is never written to.
    let found = {
        let rtx = db.begin_read().map_err(|e| open_err(e.into()))?;
        match rtx.open_table(META) {
            Ok(meta) => meta
                .get(KEY_VERSION)
                .map_err(|e| open_err(e.into()))?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(open_err(e.into())),
        }
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        Some(v) if v < 1 => {
            return Err(open_err(format!("invalid schema version {v}").into()));
        }
        _ => {}
    }
    let wtx = db.begin_write().map_err(|e| open_err(e.into()))?;
    create_tables(&wtx, found.is_none()).map_err(|e| open_err(e.into()))?;
    wtx.commit().map_err(|e| open_err(e.into()))
}

fn create_tables(wtx: &WriteTransaction, fresh: bool) -> Result<(), redb::Error> {
    {
        let mut meta = wtx.open_table(META)?;
        if fresh {
            meta.insert(KEY_VERSION, SCHEMA_VERSION)?;
        }
        if meta.get(KEY_NEXT_ID)?.is_none() {
            meta.insert(KEY_NEXT_ID, 1)?;
        }
    }
    wtx.open_table(FUNCTIONS)?;
    wtx.open_table(PIPELINES)?;
    wtx.open_table(INVOCATIONS)?;
    wtx.open_table(INPUTS)?;
    wtx.open_table(RESULTS)?;
    wtx.open_table(LOGS)?;
    wtx.open_table(QUEUED)?;
    wtx.open_table(RUNNING)?;
    wtx.open_table(SUCCEEDED)?;
    wtx.open_table(FAILED)?;
    Ok(())
}

/// An invocation as stored in `invocations`: the record without its id (the key) and payloads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredInvocation {
    pub function: String,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
    pub attempts: u32,
    pub accepted_ms: u64,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

impl StoredInvocation {
    pub(crate) fn encode(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Encode {
            what: format!("invocation {id}"),
            reason: e.to_string(),
        })
    }

    pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::corrupt(format!("invocation {id}"), e))
    }

    /// The summary, given its id.
    pub(crate) fn summary(self, id: String) -> InvocationSummary {
        InvocationSummary {
            id,
            function: self.function,
            status: self.status,
            error: self.error,
            attempts: self.attempts,
            accepted_ms: self.accepted_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
        }
    }

    /// The full record, given its id and payloads.
    pub(crate) fn into_record(
        self,
        id: String,
        input: Vec<u8>,
        result: Option<Vec<u8>>,
        logs: Option<crate::logs::InvocationLogs>,
    ) -> InvocationRecord {
        InvocationRecord {
            id,
            function: self.function,
            input,
            status: self.status,
            result,
            error: self.error,
            attempts: self.attempts,
            accepted_ms: self.accepted_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            logs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_invocation_round_trips_and_garbage_is_corrupt() {
        let s = StoredInvocation {
            function: "f".into(),
            status: Status::Running,
            error: None,
            attempts: 2,
            accepted_ms: 5,
            started_ms: Some(7),
            finished_ms: None,
        };
        let bytes = s.encode("inv-1").map_err(|e| e.to_string());
        let back =
            bytes.and_then(|b| StoredInvocation::decode("inv-1", &b).map_err(|e| e.to_string()));
        assert_eq!(back, Ok(s));
        let err = StoredInvocation::decode("inv-000000000009", b"\xff{")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("corrupt") && m.contains("inv-000000000009")));
    }
}
