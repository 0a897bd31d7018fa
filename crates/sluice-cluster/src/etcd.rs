//! The etcd client Sluice uses, behind [`Coordinator`]: prefix listings, compare-and-swap puts
//! and deletes on `mod_revision`, leases, and writes fenced by a leader key. [`mirror`] keeps a
//! [`Cache`] of one prefix up to date (listing, then a watch from the next revision; again from
//! a fresh listing after an error or a compaction), with bounded back-off while etcd is away.

use crate::cache::Cache;
use crate::error::ClusterError;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A listing: `(key, value, mod_revision)` for each key.
pub type Listing = Vec<(Vec<u8>, Vec<u8>, i64)>;

/// What a conditional write expects of the key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist.
    Absent,
    /// The key exists at this `mod_revision`.
    Revision(i64),
}

/// A guard that fences writes to the current leader: the leader key must still exist with the
/// `create_revision` the leader won it at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The leader key.
    pub key: String,
    /// Its `create_revision` when won.
    pub create_revision: i64,
}

/// The etcd client: cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    client: Client,
    healthy: Arc<AtomicBool>,
}

impl Coordinator {
    /// Connects to `endpoints` (URLs such as `http://127.0.0.1:2379`). It does not fail when etcd
    /// is down at start: calls fail until it is reachable.
    pub async fn connect(endpoints: &[String]) -> Result<Coordinator, ClusterError> {
        if endpoints.is_empty() {
            return Err(ClusterError::Invalid("no etcd endpoint given".into()));
        }
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let eps: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let client = Client::connect(eps, Some(opts)).await?;
        Ok(Coordinator {
            client,
            healthy: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the last call (or the watch) reached etcd.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn mark<T>(&self, r: Result<T, etcd_client::Error>) -> Result<T, ClusterError> {
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        r.map_err(ClusterError::from)
    }

    /// Every key under `prefix`, and the store revision of the listing.
    pub async fn list(&self, prefix: &str) -> Result<(Listing, i64), ClusterError> {
        let r = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await;
        let resp = self.mark(r)?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let items = resp
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect();
        Ok((items, rev))
    }

    /// One key's value and `mod_revision`.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, ClusterError> {
        let r = self.client.clone().get(key, None).await;
        let resp = self.mark(r)?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    fn expect(key: &str, e: Expect) -> Compare {
        match e {
            Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Expect::Revision(r) => Compare::mod_revision(key, CompareOp::Equal, r),
        }
    }

    /// Puts `value` if the key is as `expect`ed; the new revision, or [`ClusterError::Conflict`].
    pub async fn put_if(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<i64, ClusterError> {
        let txn = Txn::new()
            .when([Self::expect(key, expect)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        self.cas(key, txn).await
    }

    /// Deletes the key if it is at `mod_revision`.
    pub async fn delete_if(&self, key: &str, mod_revision: i64) -> Result<i64, ClusterError> {
        let txn = Txn::new()
            .when([Self::expect(key, Expect::Revision(mod_revision))])
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        self.cas(key, txn).await
    }

    async fn cas(&self, key: &str, txn: Txn) -> Result<i64, ClusterError> {
        let r = self.client.clone().txn(txn).await;
        let resp = self.mark(r)?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let current = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => {
                    Some(g.kvs().first().map_or(0, |kv| kv.mod_revision()))
                }
                _ => None,
            })
            .unwrap_or(0);
        Err(ClusterError::Conflict {
            key: key.to_string(),
            current,
        })
    }

    /// Puts or deletes under `fence` (the leader's key): nothing happens unless the caller
    /// still leads. `Ok(false)` when it no longer does.
    pub async fn fenced(&self, fence: &Fence, ops: Vec<TxnOp>) -> Result<bool, ClusterError> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                fence.key.as_str(),
                CompareOp::Equal,
                fence.create_revision,
            )])
            .and_then(ops);
        let r = self.client.clone().txn(txn).await;
        Ok(self.mark(r)?.succeeded())
    }

    /// Grants a lease of `ttl_s` seconds.
    pub async fn grant(&self, ttl_s: i64) -> Result<i64, ClusterError> {
        let r = self.client.clone().lease_grant(ttl_s, None).await;
        Ok(self.mark(r)?.id())
    }

    /// Puts `value` bound to `lease`.
    pub async fn put_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<i64, ClusterError> {
        let r = self
            .client
            .clone()
            .put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await;
        Ok(self.mark(r)?.header().map_or(0, |h| h.revision()))
    }

    /// Creates `key` bound to `lease` if it does not exist: its `create_revision` if created.
    pub async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Option<i64>, ClusterError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let r = self.client.clone().txn(txn).await;
        let resp = self.mark(r)?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// Renews `lease` once; its remaining TTL in seconds (0 or less: it has expired).
    pub async fn renew(&self, lease: i64) -> Result<i64, ClusterError> {
        let r = self.client.clone().lease_keep_alive(lease).await;
        let (mut keeper, mut stream) = match r {
            Err(etcd_client::Error::LeaseKeepAliveError(m)) if m.contains("lease not found") => {
                self.healthy.store(true, Ordering::Relaxed);
                return Ok(0);
            }
            r => self.mark(r)?,
        };
        keeper.keep_alive().await?;
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .map_err(|_| ClusterError::Etcd("lease renewal timed out".into()))?;
        match msg {
            Ok(resp) => {
                self.healthy.store(true, Ordering::Relaxed);
                Ok(resp.map_or(0, |m| m.ttl()))
            }
            // etcd answered: the lease is gone (it expired while we were cut off).
            Err(etcd_client::Error::GRpcStatus(st)) if st.message().contains("lease not found") => {
                self.healthy.store(true, Ordering::Relaxed);
                Ok(0)
            }
            Err(e) => self.mark(Err(e)),
        }
    }

    /// Revokes `lease`, deleting its keys.
    pub async fn revoke(&self, lease: i64) -> Result<(), ClusterError> {
        let r = self.client.clone().lease_revoke(lease).await;
        self.mark(r).map(|_| ())
    }

    /// The raw client, for what this wrapper does not cover.
    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

/// Keeps `cache` equal to etcd's content under its prefix, forever: a listing, then a watch
/// from the next revision; on any error, a fresh listing after a back-off of 100 ms doubling
/// to 2 s. The cache keeps its content while etcd is away.
pub async fn mirror<T: DeserializeOwned + Send + Sync + 'static>(
    coord: Coordinator,
    cache: Arc<Cache<T>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match mirror_once(&coord, &cache).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::debug!(prefix = cache.prefix(), "etcd watch ended: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn mirror_once<T: DeserializeOwned>(
    coord: &Coordinator,
    cache: &Cache<T>,
) -> Result<(), ClusterError> {
    let (listing, rev) = coord.list(cache.prefix()).await?;
    cache.reset(&listing, rev);
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(rev + 1)
        .with_progress_notify();
    let mut stream = coord
        .client()
        .watch(cache.prefix(), Some(opts))
        .await
        .map_err(|e| {
            coord.healthy.store(false, Ordering::Relaxed);
            ClusterError::from(e)
        })?;
    loop {
        let msg = stream.message().await;
        let Some(resp) = coord.mark(msg)? else {
            return Err(ClusterError::Etcd("watch stream closed".into()));
        };
        if resp.canceled() {
            return Err(ClusterError::Etcd(format!(
                "watch canceled (compacted at {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            )));
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            match ev.event_type() {
                EventType::Put => cache.put(kv.key(), kv.value(), kv.mod_revision()),
                EventType::Delete => cache.delete(kv.key(), kv.mod_revision()),
            }
        }
    }
}
