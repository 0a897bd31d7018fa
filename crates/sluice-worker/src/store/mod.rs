//! The worker's embedded, crash-safe store (redb): registered functions and every accepted
//! asynchronous invocation with its result, until retention purges it.
//!
//! Durability: every mutating method is one redb write transaction committed with
//! `Durability::Immediate` (redb's default), i.e. the commit is fsynced before the method
//! returns Ok. So after `accept` returns, the invocation survives `kill -9` and power loss
//! (given a disk that honours fsync); the API answers 202 only after that. After a restart,
//! [`Store::recover`] hands back every unfinished invocation (or fails those that used up their
//! attempts): nothing accepted silently vanishes.
//!
//! Layout and schema versioning: `schema.rs`. Functions: `functions.rs`. Invocations:
//! `invocations.rs` (+ `records.rs`), listing them a page at a time: `listing.rs`,
//! recovery/retention/counts: `maintenance.rs`. Value types: `types.rs`. Errors: `error.rs`.
//!
//! No panic escapes: redb can panic on a damaged file (e.g. `unreachable!` on a garbage page),
//! so every call into it runs under `catch_unwind` and such a panic becomes an error naming the
//! file (`StoreError::Open` at open, `StoreError::Corrupt` afterwards). Such a panic prints no
//! backtrace either: while a store call runs, a panic hook (`quiet.rs`) reduces it to one log
//! line; panics elsewhere reach the previous hook unchanged.
//!
//! A damaged store is never mistaken for an empty one: a 0-byte file (truncated, or a crash
//! before redb wrote its header) is refused at open with `StoreError::Empty`, which says how to
//! recover; a record that does not decode is `StoreError::Corrupt`, naming it.
//!
//! Methods are synchronous and may block on disk I/O; call them from async code through
//! `tokio::task::spawn_blocking`. Write transactions are serialized by redb; reads run
//! concurrently with them. A file is open in one process at a time.

mod error;
mod functions;
mod invocations;
mod listing;
mod maintenance;
mod pipelines;
mod quiet;
mod records;
mod schema;
mod types;

pub use error::StoreError;
pub use listing::{ListPage, ListQuery, SCAN_BUDGET};
pub(crate) use types::parse_id;
pub use types::{InvocationRecord, InvocationSummary, Outcome, Status, StoreCounts};

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};

/// The store. `Send + Sync`; share it through an `Arc`.
pub struct Store {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (and its parent directories) if missing. A file
    /// left by a crash is repaired by redb on open. An unreadable or corrupt file, one open in
    /// another process, or one with a newer schema is an error that names the path.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        quiet::install();
        let opened = quiet::catch(|| -> Result<redb::Database, StoreError> {
            let db = redb::Database::create(path).map_err(|e| open_err(e.into()))?;
            schema::init(&db, path)?;
            Ok(db)
        });
        let db = opened.unwrap_or_else(|p| Err(open_err(damaged(p).into())))?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` (one operation on the database), turning a panic inside redb into an error.
    fn guarded<T>(
        &self,
        op: &str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        quiet::catch(f).unwrap_or_else(|p| {
            let what = format!("{op} on {}", self.path.display());
            Err(StoreError::corrupt(what, damaged(p)))
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Describes a panic caught from redb.
fn damaged(payload: Box<dyn Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("the file looks damaged (the database library panicked: {msg})")
}

#[cfg(test)]
mod tests;

/// Compile-time check: the store is shared across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<StoreError>();
};
