//! Registered functions in the store: put (insert or replace), get, list, delete, keyed by name.
//! Specs are stored as JSON exactly as given; validating them is the caller's job
//! ([`FunctionSpec::validate`](crate::function::FunctionSpec::validate)).

use super::records::{load, update};
use super::schema::{StoredInvocation, FUNCTIONS, QUEUED};
use super::types::format_id;
use super::{Status, Store, StoreError};
use crate::function::FunctionSpec;
use redb::{ReadableDatabase, ReadableTable};

fn decode(name: &str, bytes: &[u8]) -> Result<FunctionSpec, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(format!("function {name:?}"), e))
}

impl Store {
    /// Stores `spec` under its name, durably; returns true if it replaced a function of that name.
    pub fn put_function(&self, spec: &FunctionSpec) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(spec).map_err(|e| StoreError::Encode {
            what: format!("function {:?}", spec.name),
            reason: e.to_string(),
        })?;
        self.guarded("put_function", || {
            let wtx = self.db.begin_write()?;
            let replaced = {
                let mut t = wtx.open_table(FUNCTIONS)?;
                let old = t.insert(spec.name.as_str(), bytes.as_slice())?;
                old.is_some()
            };
            wtx.commit()?;
            Ok(replaced)
        })
    }

    /// The function registered under `name`, if any.
    pub fn get_function(&self, name: &str) -> Result<Option<FunctionSpec>, StoreError> {
        self.guarded("get_function", || {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(FUNCTIONS)?;
            let found = t.get(name)?;
            found.map(|v| decode(name, v.value())).transpose()
        })
    }

    /// Every registered function, sorted by name.
    pub fn list_functions(&self) -> Result<Vec<FunctionSpec>, StoreError> {
        self.guarded("list_functions", || {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(FUNCTIONS)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                out.push(decode(k.value(), v.value())?);
            }
            // Keys iterate in byte order, which is `String`'s order; sort anyway so the contract
            // does not rest on that.
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Every registered function whose record decodes, sorted by name, and the error of each
    /// one that does not (a damaged record is reported, not skipped silently; the caller
    /// decides). A failure of the database itself is the outer error.
    pub fn load_functions(&self) -> Result<(Vec<FunctionSpec>, Vec<StoreError>), StoreError> {
        self.guarded("load_functions", || {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(FUNCTIONS)?;
            let (mut good, mut bad) = (Vec::new(), Vec::new());
            for entry in t.iter()? {
                let (k, v) = entry?;
                match decode(k.value(), v.value()) {
                    Ok(spec) => good.push(spec),
                    Err(e) => bad.push(e),
                }
            }
            good.sort_by(|a, b: &FunctionSpec| a.name.cmp(&b.name));
            Ok((good, bad))
        })
    }

    /// Removes the function registered under `name`, durably; returns whether there was one.
    /// In the same transaction, each of its invocations still Queued (accepted, never handed to
    /// a sandbox) becomes Failed, so none runs after a restart; Running ones are left to
    /// finish. Linear in the queued invocations.
    pub fn delete_function(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.guarded("delete_function", || {
            let wtx = self.db.begin_write()?;
            let removed = {
                let mut t = wtx.open_table(FUNCTIONS)?;
                let old = t.remove(name)?;
                old.is_some()
            };
            if removed {
                let why = format!("function {name:?} was deleted before the invocation started");
                fail_queued_of(&wtx, name, &why, now_ms)?;
            }
            wtx.commit()?;
            Ok(removed)
        })
    }
}

/// Marks every Queued invocation of `function` Failed with `why`, inside `wtx`.
fn fail_queued_of(
    wtx: &redb::WriteTransaction,
    function: &str,
    why: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    let queued: Vec<u64> = {
        let t = wtx.open_table(QUEUED)?;
        let keys = t.iter()?.map(|e| e.map(|(k, _)| k.value()));
        keys.collect::<Result<_, _>>()?
    };
    for n in queued {
        let id = format_id(n);
        let old = load(wtx, n, &id)?;
        if old.function != function {
            continue;
        }
        let new = StoredInvocation {
            status: Status::Failed,
            error: Some(why.to_string()),
            finished_ms: Some(now_ms),
            ..old.clone()
        };
        update(wtx, n, &id, &old, &new)?;
    }
    Ok(())
}
