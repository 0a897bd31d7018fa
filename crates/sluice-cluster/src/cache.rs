//! A watch cache of one etcd prefix: the latest value of every key under it, parsed, with its
//! `mod_revision`. It is filled by [`crate::etcd::mirror`] (a full listing, then watch events)
//! and read on every request without touching etcd. While etcd is unreachable the cache keeps
//! its last content, so routers keep serving.
//!
//! A value that does not parse is skipped with a warning (it is not Sluice's), never a panic.

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// A cached value with the revision it was written at.
#[derive(Debug)]
pub struct Versioned<T> {
    /// The parsed value.
    pub value: Arc<T>,
    /// The key's `mod_revision`.
    pub mod_revision: i64,
}

impl<T> Clone for Versioned<T> {
    fn clone(&self) -> Self {
        Versioned {
            value: self.value.clone(),
            mod_revision: self.mod_revision,
        }
    }
}

struct State<T> {
    items: BTreeMap<String, Versioned<T>>,
    /// The store revision the cache reflects.
    revision: i64,
}

/// The cache of one prefix, keyed by the part of the key after the prefix.
pub struct Cache<T> {
    prefix: String,
    state: RwLock<State<T>>,
    /// Bumped on every change; [`Cache::subscribe`] to wait for one.
    generation: watch::Sender<u64>,
    synced: watch::Sender<bool>,
}

impl<T: DeserializeOwned> Cache<T> {
    /// An empty, not yet synced cache of `prefix`.
    pub fn new(prefix: &str) -> Arc<Cache<T>> {
        Arc::new(Cache {
            prefix: prefix.to_string(),
            state: RwLock::new(State {
                items: BTreeMap::new(),
                revision: 0,
            }),
            generation: watch::channel(0).0,
            synced: watch::channel(false).0,
        })
    }

    /// The prefix it mirrors.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<T>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn parse(&self, key: &[u8], value: &[u8], mod_revision: i64) -> Option<(String, Versioned<T>)> {
        let key = std::str::from_utf8(key).ok()?;
        let name = key.strip_prefix(&self.prefix)?;
        match serde_json::from_slice::<T>(value) {
            Ok(v) => Some((
                name.to_string(),
                Versioned {
                    value: Arc::new(v),
                    mod_revision,
                },
            )),
            Err(e) => {
                tracing::warn!(key, "skipping a malformed value: {e}");
                None
            }
        }
    }

    /// Replaces the whole content with a listing taken at `revision`.
    pub fn reset(&self, listing: &[(Vec<u8>, Vec<u8>, i64)], revision: i64) {
        let items = listing
            .iter()
            .filter_map(|(k, v, r)| self.parse(k, v, *r))
            .collect();
        {
            let mut st = self.write();
            st.items = items;
            st.revision = revision;
        }
        self.synced.send_replace(true);
        self.bump();
    }

    /// Applies a put event.
    pub fn put(&self, key: &[u8], value: &[u8], mod_revision: i64) {
        let parsed = self.parse(key, value, mod_revision);
        {
            let mut st = self.write();
            st.revision = st.revision.max(mod_revision);
            if let Some((name, v)) = parsed {
                // An older event never replaces a newer value (a writer may apply its own
                // write before the watch delivers earlier ones).
                if st
                    .items
                    .get(&name)
                    .is_none_or(|old| old.mod_revision <= mod_revision)
                {
                    st.items.insert(name, v);
                }
            }
        }
        self.bump();
    }

    /// Applies a delete event.
    pub fn delete(&self, key: &[u8], revision: i64) {
        let name = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(&self.prefix));
        {
            let mut st = self.write();
            st.revision = st.revision.max(revision);
            if let Some(n) = name {
                st.items.remove(n);
            }
        }
        self.bump();
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl<T> Cache<T> {
    /// One entry.
    pub fn get(&self, name: &str) -> Option<Versioned<T>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .get(name)
            .cloned()
    }

    /// Every entry, by name.
    pub fn snapshot(&self) -> Vec<(String, Versioned<T>)> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.items
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .contains_key(name)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .items
            .len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store revision reflected.
    pub fn revision(&self) -> i64 {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revision
    }

    /// Whether a full listing has been applied at least once.
    pub fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first listing is applied, at most `limit`; true if it was.
    pub async fn wait_synced(&self, limit: std::time::Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A receiver whose value changes on every change of the cache.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_then_events_and_junk_skipped() {
        let c: Arc<Cache<u32>> = Cache::new("/p/");
        c.reset(
            &[
                (b"/p/a".to_vec(), b"1".to_vec(), 5),
                (b"/p/b".to_vec(), b"oops".to_vec(), 6),
            ],
            6,
        );
        assert!(c.synced());
        assert_eq!(c.len(), 1);
        c.put(b"/p/b", b"2", 7);
        assert_eq!(*c.get("b").unwrap().value, 2);
        assert_eq!(c.get("b").unwrap().mod_revision, 7);
        c.delete(b"/p/a", 8);
        assert!(!c.contains("a"));
        assert_eq!(c.revision(), 8);
        c.put(b"/q/x", b"3", 9);
        assert_eq!(c.len(), 1);
        c.put(b"/p/b", b"5", 11);
        c.put(b"/p/b", b"4", 10);
        assert_eq!(*c.get("b").unwrap().value, 5, "an older event does not win");
    }
}
