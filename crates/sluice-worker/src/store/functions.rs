//! Registered functions in the store: put (insert or replace), get, list, delete, keyed by name.
//! Specs are stored as JSON exactly as given; validating them is the caller's job
//! ([`FunctionSpec::validate`](crate::function::FunctionSpec::validate)).

use super::schema::FUNCTIONS;
use super::{Store, StoreError};
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

    /// Removes the function registered under `name`, durably; returns whether there was one.
    /// Its invocations are kept (they finish or fail on their own).
    pub fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        self.guarded("delete_function", || {
            let wtx = self.db.begin_write()?;
            let removed = {
                let mut t = wtx.open_table(FUNCTIONS)?;
                let old = t.remove(name)?;
                old.is_some()
            };
            wtx.commit()?;
            Ok(removed)
        })
    }
}
