//! Whole-store invocation maintenance: crash recovery at startup (requeue or fail what a
//! restart cut off), retention (purge finished records by finish time) and O(1) counts.

use super::records::{assemble, load, update};
use super::schema::{
    StoredInvocation, FAILED, FUNCTIONS, INPUTS, INVOCATIONS, LOGS, QUEUED, RESULTS, RUNNING,
    SUCCEEDED,
};
use super::types::format_id;
use super::{InvocationRecord, Status, Store, StoreCounts, StoreError};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

/// Most finished records one purge transaction removes (keeps write transactions short).
const PURGE_BATCH: usize = 1024;

impl Store {
    /// Run once at startup, before accepting work. Running invocations were cut off by the
    /// restart: those with `attempts >= max_attempts` are marked Failed and dropped; the others
    /// go back to Queued (attempts kept). Returns every Queued invocation, oldest first, for the
    /// caller to enqueue again (at-least-once). One write transaction; calling it again returns
    /// the same set.
    pub fn recover(
        &self,
        max_attempts: u32,
        now_ms: u64,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        self.guarded("recover", || {
            let wtx = self.db.begin_write()?;
            let running: Vec<u64> = {
                let t = wtx.open_table(RUNNING)?;
                let keys = t.iter()?.map(|e| e.map(|(k, _)| k.value()));
                keys.collect::<Result<_, _>>()?
            };
            for n in running {
                let id = format_id(n);
                let old = load(&wtx, n, &id)?;
                let mut new = StoredInvocation {
                    status: Status::Queued,
                    ..old.clone()
                };
                if old.attempts >= max_attempts {
                    new.status = Status::Failed;
                    new.finished_ms = Some(now_ms);
                    new.error = Some(format!(
                        "worker restarted during execution; giving up after {} attempts",
                        old.attempts
                    ));
                }
                update(&wtx, n, &id, &old, &new)?;
            }
            let mut out = Vec::new();
            {
                let queued = wtx.open_table(QUEUED)?;
                let (invs, inputs) = (wtx.open_table(INVOCATIONS)?, wtx.open_table(INPUTS)?);
                let results = wtx.open_table(RESULTS)?;
                for entry in queued.iter()? {
                    let n = entry?.0.value();
                    let id = format_id(n);
                    let found = invs.get(n)?;
                    let bytes =
                        found.ok_or_else(|| StoreError::corrupt(&id, "queued but missing"))?;
                    let stored = StoredInvocation::decode(&id, bytes.value())?;
                    out.push(assemble(&inputs, &results, n, stored)?);
                }
            }
            wtx.commit()?;
            Ok(out)
        })
    }

    /// Retention: deletes every finished invocation with `finished_ms < cutoff_ms`, payloads
    /// included, in transactions of at most 1024 records; returns how many were deleted.
    /// Unfinished invocations are never purged.
    pub fn purge_finished_before(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        self.guarded("purge_finished_before", || {
            let mut total = 0;
            loop {
                let wtx = self.db.begin_write()?;
                let mut batch: Vec<(bool, (u64, u64))> = Vec::new();
                for (succeeded, def) in [(true, SUCCEEDED), (false, FAILED)] {
                    let t = wtx.open_table(def)?;
                    let room = PURGE_BATCH - batch.len();
                    for entry in t.range(..(cutoff_ms, 0u64))?.take(room) {
                        batch.push((succeeded, entry?.0.value()));
                    }
                }
                for &(succeeded, key) in &batch {
                    let def = if succeeded { SUCCEEDED } else { FAILED };
                    wtx.open_table(def)?.remove(key)?;
                    wtx.open_table(INVOCATIONS)?.remove(key.1)?;
                    wtx.open_table(INPUTS)?.remove(key.1)?;
                    wtx.open_table(RESULTS)?.remove(key.1)?;
                    wtx.open_table(LOGS)?.remove(key.1)?;
                }
                wtx.commit()?;
                total += batch.len();
                if batch.len() < PURGE_BATCH {
                    return Ok(total);
                }
            }
        })
    }

    /// How many functions, and invocations in each state, the store holds (O(1) each).
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.guarded("counts", || {
            let rtx = self.db.begin_read()?;
            Ok(StoreCounts {
                functions: rtx.open_table(FUNCTIONS)?.len()?,
                queued: rtx.open_table(QUEUED)?.len()?,
                running: rtx.open_table(RUNNING)?.len()?,
                succeeded: rtx.open_table(SUCCEEDED)?.len()?,
                failed: rtx.open_table(FAILED)?.len()?,
            })
        })
    }
}
