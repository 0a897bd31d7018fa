//! Accepted asynchronous invocations: accept (durable before the API answers 202), the
//! Queued -> Running -> Succeeded/Failed transitions (the finish keeps the function's output
//! with the record), and lookup. Each operation is one short
//! transaction that changes a record and its state index together. Startup recovery, retention
//! and counts are in `maintenance.rs`; the queue and execution are not the store's.

use super::records::{assemble, index_insert, load, unknown, update};
use super::schema::{StoredInvocation, INPUTS, INVOCATIONS, KEY_NEXT_ID, LOGS, META, RESULTS};
use super::types::{format_id, parse_id};
use super::{InvocationRecord, Outcome, Status, Store, StoreError};
use crate::logs::InvocationLogs;
use redb::{ReadableDatabase, ReadableTable};

impl Store {
    /// Records a new invocation of `function` with body `input` as Queued, durably: once this
    /// returns Ok the invocation survives a crash. Ids come from a counter stored in the file,
    /// so they increase and are never reused, also across restarts.
    pub fn accept(
        &self,
        function: &str,
        input: &[u8],
        now_ms: u64,
    ) -> Result<InvocationRecord, StoreError> {
        self.guarded("accept", || {
            let wtx = self.db.begin_write()?;
            let n = {
                let mut meta = wtx.open_table(META)?;
                let next = meta.get(KEY_NEXT_ID)?.map(|v| v.value());
                let n = next.ok_or_else(|| StoreError::corrupt("meta", "id counter missing"))?;
                let after = n
                    .checked_add(1)
                    .ok_or_else(|| StoreError::corrupt("meta", "id counter exhausted"))?;
                meta.insert(KEY_NEXT_ID, after)?;
                n
            };
            let id = format_id(n);
            let stored = StoredInvocation {
                function: function.to_string(),
                status: Status::Queued,
                error: None,
                attempts: 0,
                accepted_ms: now_ms,
                started_ms: None,
                finished_ms: None,
            };
            let bytes = stored.encode(&id)?;
            let clash = wtx
                .open_table(INVOCATIONS)?
                .insert(n, bytes.as_slice())?
                .is_some();
            if clash {
                // Dropping `wtx` aborts the transaction: nothing is overwritten.
                return Err(StoreError::corrupt(
                    "meta",
                    format!("id counter reissued {id}"),
                ));
            }
            wtx.open_table(INPUTS)?.insert(n, input)?;
            index_insert(&wtx, n, &stored, &id)?;
            wtx.commit()?;
            Ok(stored.into_record(id, input.to_vec(), None, None))
        })
    }

    /// Marks `id` Running and counts an attempt. Allowed from Queued or Running (a retry).
    pub fn mark_running(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        self.guarded("mark_running", || {
            let n = parse_id(id).ok_or_else(|| unknown(id))?;
            let wtx = self.db.begin_write()?;
            let old = load(&wtx, n, id)?;
            if old.status.is_finished() {
                let (from, action) = (old.status, "start it");
                return Err(StoreError::InvalidTransition {
                    id: id.into(),
                    from,
                    action,
                });
            }
            let new = StoredInvocation {
                status: Status::Running,
                attempts: old.attempts.saturating_add(1),
                started_ms: Some(now_ms),
                ..old.clone()
            };
            update(&wtx, n, id, &old, &new)?;
            wtx.commit()?;
            Ok(())
        })
    }

    /// Records how `id` ended, durably. Allowed once, from Queued or Running.
    pub fn finish(&self, id: &str, outcome: Outcome, now_ms: u64) -> Result<(), StoreError> {
        self.finish_logged(id, outcome, None, now_ms)
    }

    /// [`Store::finish`], keeping `logs` (what the function wrote while it ran) with the record.
    pub fn finish_logged(
        &self,
        id: &str,
        outcome: Outcome,
        logs: Option<&InvocationLogs>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.guarded("finish", || {
            let n = parse_id(id).ok_or_else(|| unknown(id))?;
            let wtx = self.db.begin_write()?;
            let old = load(&wtx, n, id)?;
            if old.status.is_finished() {
                let (from, action) = (old.status, "finish it again");
                return Err(StoreError::InvalidTransition {
                    id: id.into(),
                    from,
                    action,
                });
            }
            let mut new = StoredInvocation {
                finished_ms: Some(now_ms),
                ..old.clone()
            };
            match outcome {
                Outcome::Succeeded(body) => {
                    new.status = Status::Succeeded;
                    wtx.open_table(RESULTS)?.insert(n, body.as_slice())?;
                }
                Outcome::Failed(error) => {
                    new.status = Status::Failed;
                    new.error = Some(error);
                }
            }
            if let Some(logs) = logs {
                let bytes = serde_json::to_vec(logs).map_err(|e| StoreError::Encode {
                    what: format!("logs of {id}"),
                    reason: e.to_string(),
                })?;
                wtx.open_table(LOGS)?.insert(n, bytes.as_slice())?;
            }
            update(&wtx, n, id, &old, &new)?;
            wtx.commit()?;
            Ok(())
        })
    }

    /// The invocation `id` with its payloads and logs; `None` if no such id is stored (or it is malformed).
    pub fn get_invocation(&self, id: &str) -> Result<Option<InvocationRecord>, StoreError> {
        let Some(n) = parse_id(id) else {
            return Ok(None);
        };
        self.guarded("get_invocation", || {
            let rtx = self.db.begin_read()?;
            let stored = {
                let t = rtx.open_table(INVOCATIONS)?;
                let found = t.get(n)?;
                match found {
                    Some(v) => StoredInvocation::decode(id, v.value())?,
                    None => return Ok(None),
                }
            };
            let (inputs, results) = (rtx.open_table(INPUTS)?, rtx.open_table(RESULTS)?);
            let mut record = assemble(&inputs, &results, n, stored)?;
            if let Some(v) = rtx.open_table(LOGS)?.get(n)? {
                let logs = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::corrupt(format!("logs of {id}"), e))?;
                record.logs = Some(logs);
            }
            Ok(Some(record))
        })
    }
}
