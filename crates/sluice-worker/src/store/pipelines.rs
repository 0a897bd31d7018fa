//! Deployed pipelines in the store: their deploy requests by name, so a restarted worker
//! deploys them again. Values are JSON; the store does not interpret them.

use super::schema::PIPELINES;
use super::{Store, StoreError};
use redb::{ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;
use serde::Serialize;

impl Store {
    /// Stores `request` under `name`, durably; returns true if it replaced one.
    pub fn put_pipeline<T: Serialize>(&self, name: &str, request: &T) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(request).map_err(|e| StoreError::Encode {
            what: format!("pipeline {name:?}"),
            reason: e.to_string(),
        })?;
        self.guarded("put_pipeline", || {
            let wtx = self.db.begin_write()?;
            let replaced = {
                let mut t = wtx.open_table(PIPELINES)?;
                let old = t.insert(name, bytes.as_slice())?;
                old.is_some()
            };
            wtx.commit()?;
            Ok(replaced)
        })
    }

    /// Every stored pipeline request, sorted by name.
    pub fn list_pipelines<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        self.guarded("list_pipelines", || {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(PIPELINES)?;
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (k, v) = entry?;
                let name = k.value().to_string();
                let req = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::corrupt(format!("pipeline {name:?}"), e))?;
                out.push((name, req));
            }
            Ok(out)
        })
    }

    /// Removes pipeline `name`, durably; returns whether there was one.
    pub fn delete_pipeline(&self, name: &str) -> Result<bool, StoreError> {
        self.guarded("delete_pipeline", || {
            let wtx = self.db.begin_write()?;
            let removed = {
                let mut t = wtx.open_table(PIPELINES)?;
                let old = t.remove(name)?;
                old.is_some()
            };
            wtx.commit()?;
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn pipelines_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(!s.put_pipeline("b", &serde_json::json!({"x": 2})).unwrap());
            assert!(!s.put_pipeline("a", &serde_json::json!({"x": 1})).unwrap());
            assert!(s.put_pipeline("a", &serde_json::json!({"x": 3})).unwrap());
        }
        let s = Store::open(&path).unwrap();
        let all: Vec<(String, serde_json::Value)> = s.list_pipelines().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], ("a".to_string(), serde_json::json!({"x": 3})));
        assert!(s.delete_pipeline("a").unwrap());
        assert!(!s.delete_pipeline("a").unwrap());
        assert_eq!(s.list_pipelines::<serde_json::Value>().unwrap().len(), 1);
    }
}
