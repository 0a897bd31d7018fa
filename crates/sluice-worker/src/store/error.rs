//! The store's error type: every failure of [`Store`](super::Store) is one of these, with enough
//! context (the file's path, the invocation id, the record that failed to decode) to act on.
//! Owns the conversions from redb's error types; does not own any retry or recovery policy.

use super::Status;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file exists but is empty: truncated or damaged. Opening it would start with
    /// no functions and no invocations, as if they had never been.
    #[error(
        "store file {} is empty (0 bytes): it was truncated or damaged, and starting from it \
         would silently lose every registered function and accepted invocation. Restore it from \
         a backup, or move it aside to start with an empty store (mv {} {}.damaged)",
        path.display(),
        path.display(),
        path.display()
    )]
    Empty {
        /// The store file.
        path: PathBuf,
    },
    /// The database file could not be created, opened or initialised (unreadable, not a redb
    /// file, damaged beyond repair, already open by another process, no space, ...).
    #[error(
        "cannot open store at {}: {source} (if the file is damaged: restore it from a backup, or \
         move it aside to start with an empty store)",
        path.display()
    )]
    Open {
        /// The store file.
        path: PathBuf,
        /// redb's error, or what the schema check found wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The file was written by a newer version of Sluice whose schema this one does not know.
    #[error(
        "store at {} has schema version {found}, newer than the {supported} this build supports; \
         upgrade Sluice or point it at another file",
        path.display()
    )]
    NewerSchema {
        /// The store file.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: u64,
        /// The newest schema version this build reads and writes.
        supported: u64,
    },
    /// The embedded database reported an error (I/O, storage, transaction).
    #[error("store database error: {0}")]
    Db(String),
    /// A stored value does not decode, or the tables disagree with each other.
    #[error("store is corrupt: {what}")]
    Corrupt {
        /// The record or table and what is wrong with it, e.g.
        /// `invocation inv-000000000007: <decode error>`.
        what: String,
    },
    /// A value could not be encoded for storage.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being stored: `function "name"`, `pipeline "name"`, `invocation <id>` or
        /// `logs of <id>`.
        what: String,
        /// The serializer's error.
        reason: String,
    },
    /// No invocation with this id is stored (never accepted, malformed, or already purged).
    #[error("unknown invocation {0:?}")]
    UnknownInvocation(String),
    /// The invocation is not in a state that allows the requested change (e.g. finishing one
    /// that already finished).
    #[error("invocation {id} is {from}; cannot {action}")]
    InvalidTransition {
        /// The invocation's id.
        id: String,
        /// The status it is in.
        from: Status,
        /// What was asked, as a phrase (`start it`, `finish it again`).
        action: &'static str,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StoreError {
    /// A decode failure of `what` (e.g. `"invocation inv-000000000007"`).
    pub(crate) fn corrupt(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what: format!("{what}: {why}"),
        }
    }
}
