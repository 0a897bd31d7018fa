//! Record-level helpers shared by the invocation operations: reading an invocation's stored
//! part inside a write transaction, keeping the four state indexes in step with it, and
//! assembling a full [`InvocationRecord`] from its parts. No transaction begins or commits here.

use super::schema::{StoredInvocation, FAILED, INVOCATIONS, QUEUED, RUNNING, SUCCEEDED};
use super::types::format_id;
use super::{InvocationRecord, Status, StoreError};
use redb::{ReadableTable, WriteTransaction};

pub(super) fn unknown(id: &str) -> StoreError {
    StoreError::UnknownInvocation(id.to_string())
}

/// Reads the stored part of invocation `n` inside a write transaction.
pub(super) fn load(
    wtx: &WriteTransaction,
    n: u64,
    id: &str,
) -> Result<StoredInvocation, StoreError> {
    let t = wtx.open_table(INVOCATIONS)?;
    let found = t.get(n)?;
    match found {
        Some(v) => StoredInvocation::decode(id, v.value()),
        None => Err(unknown(id)),
    }
}

/// The key of a finished record in its state index.
fn finished_key(m: &StoredInvocation, n: u64, id: &str) -> Result<(u64, u64), StoreError> {
    match m.finished_ms {
        Some(at) => Ok((at, n)),
        None => Err(StoreError::corrupt(
            format!("invocation {id}"),
            format!("{} without a finish time", m.status),
        )),
    }
}

/// Removes `n` from the state index `m.status` names; a missing entry means the tables disagree.
fn index_remove(
    wtx: &WriteTransaction,
    n: u64,
    m: &StoredInvocation,
    id: &str,
) -> Result<(), StoreError> {
    let present = match m.status {
        Status::Queued => wtx.open_table(QUEUED)?.remove(n)?.is_some(),
        Status::Running => wtx.open_table(RUNNING)?.remove(n)?.is_some(),
        Status::Succeeded => {
            let key = finished_key(m, n, id)?;
            wtx.open_table(SUCCEEDED)?.remove(key)?.is_some()
        }
        Status::Failed => {
            let key = finished_key(m, n, id)?;
            wtx.open_table(FAILED)?.remove(key)?.is_some()
        }
    };
    if present {
        Ok(())
    } else {
        let why = format!("is {} but missing from that index", m.status);
        Err(StoreError::corrupt(format!("invocation {id}"), why))
    }
}

pub(super) fn index_insert(
    wtx: &WriteTransaction,
    n: u64,
    m: &StoredInvocation,
    id: &str,
) -> Result<(), StoreError> {
    match m.status {
        Status::Queued => drop(wtx.open_table(QUEUED)?.insert(n, ())?),
        Status::Running => drop(wtx.open_table(RUNNING)?.insert(n, ())?),
        Status::Succeeded => drop(
            wtx.open_table(SUCCEEDED)?
                .insert(finished_key(m, n, id)?, ())?,
        ),
        Status::Failed => drop(
            wtx.open_table(FAILED)?
                .insert(finished_key(m, n, id)?, ())?,
        ),
    }
    Ok(())
}

/// Replaces the stored part of `n` (`old` -> `new`), moving it between state indexes.
pub(super) fn update(
    wtx: &WriteTransaction,
    n: u64,
    id: &str,
    old: &StoredInvocation,
    new: &StoredInvocation,
) -> Result<(), StoreError> {
    index_remove(wtx, n, old, id)?;
    index_insert(wtx, n, new, id)?;
    let bytes = new.encode(id)?;
    wtx.open_table(INVOCATIONS)?.insert(n, bytes.as_slice())?;
    Ok(())
}

/// Reads the payloads of `n` and assembles the full record (without its logs).
pub(super) fn assemble<T, U>(
    inputs: &T,
    results: &U,
    n: u64,
    m: StoredInvocation,
) -> Result<InvocationRecord, StoreError>
where
    T: ReadableTable<u64, &'static [u8]>,
    U: ReadableTable<u64, &'static [u8]>,
{
    let id = format_id(n);
    let input = match inputs.get(n)? {
        Some(v) => v.value().to_vec(),
        None => {
            return Err(StoreError::corrupt(
                format!("invocation {id}"),
                "input missing",
            ))
        }
    };
    let result = results.get(n)?.map(|v| v.value().to_vec());
    Ok(m.into_record(id, input, result, None))
}
