//! The cluster crate's errors: what failed talking to etcd, NATS or a worker, and the
//! outcomes of a compare-and-swap that callers must tell apart (a lost race is not a failure).

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd could not be reached or refused the call.
    #[error("etcd: {0}")]
    Etcd(String),
    /// NATS or JetStream could not be reached or refused the call.
    #[error("nats: {0}")]
    Nats(String),
    /// A compare-and-swap lost: the key changed (or appeared) since it was read.
    #[error("conflict on {key}: it changed since it was read (now at revision {current})")]
    Conflict {
        /// The key written.
        key: String,
        /// Its current `mod_revision` (0: absent).
        current: i64,
    },
    /// A value read from etcd or JetStream is not what Sluice writes there.
    #[error("malformed value at {key}: {message}")]
    Malformed {
        /// Where it was read.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Invalid configuration or input.
    #[error("{0}")]
    Invalid(String),
}

impl From<etcd_client::Error> for ClusterError {
    fn from(e: etcd_client::Error) -> Self {
        ClusterError::Etcd(e.to_string())
    }
}
