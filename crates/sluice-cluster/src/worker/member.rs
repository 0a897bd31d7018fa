//! Membership: the worker announces itself under `workers/<id>`, bound to a lease of `ttl`
//! seconds, and renews the lease every `ttl/3` (every 500 ms while renewals fail).
//!
//! Fencing: etcd deletes the key when the lease expires, and routers stop sending work then.
//! So the worker must stop taking work no later than that: when it has not renewed for
//! `ttl - 1 s` it drains itself (new invocations get 503; running ones finish). It keeps
//! trying; once etcd answers again it renews the old lease if it still lives, or joins again
//! with a new lease, and only then takes work again.

use crate::etcd::Coordinator;
use crate::keys;
use crate::model::Member;
use sluice_worker::api::Shared;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

struct Inner {
    coord: Coordinator,
    joined: AtomicBool,
    lease: AtomicI64,
}

/// A handle on the membership task.
pub struct MemberHandle {
    inner: Arc<Inner>,
}

impl MemberHandle {
    /// Whether the worker holds a live lease now.
    pub fn joined(&self) -> bool {
        self.inner.joined.load(Ordering::Relaxed)
    }

    /// Revokes the lease (waiting at most `limit`), so routers drop the worker at once.
    pub async fn leave(&self, limit: Duration) {
        let lease = self.inner.lease.load(Ordering::Relaxed);
        self.inner.joined.store(false, Ordering::Relaxed);
        if lease != 0 {
            let _ = tokio::time::timeout(limit, self.inner.coord.revoke(lease)).await;
        }
    }
}

/// Starts the membership task.
pub fn start(
    coord: Coordinator,
    state: Shared,
    record: Member,
    ttl_s: i64,
) -> (MemberHandle, JoinHandle<()>) {
    let inner = Arc::new(Inner {
        coord,
        joined: AtomicBool::new(false),
        lease: AtomicI64::new(0),
    });
    let task = tokio::spawn(run(inner.clone(), state, record, ttl_s));
    (MemberHandle { inner }, task)
}

/// The drain the agent applies and lifts (it never lifts one it did not apply).
struct Fence {
    state: Shared,
    applied: bool,
}

impl Fence {
    fn raise(&mut self, why: &str) {
        if !self.applied {
            tracing::warn!("cluster lease not renewed ({why}): draining until it is");
            self.state.engine.set_draining(true);
            self.applied = true;
        }
    }

    fn lower(&mut self) {
        if self.applied {
            tracing::info!("cluster lease renewed: taking work again");
            self.state.engine.set_draining(false);
            self.applied = false;
        }
    }
}

async fn run(inner: Arc<Inner>, state: Shared, mut record: Member, ttl_s: i64) {
    let ttl = Duration::from_secs(ttl_s.max(2) as u64);
    let fence_after = ttl.saturating_sub(Duration::from_secs(1));
    let key = keys::worker(&record.id);
    let mut fence = Fence {
        state,
        applied: false,
    };
    // Until the first join the worker takes no work from anyone (nothing routes to it yet;
    // draining keeps a stray direct call from running either).
    fence.raise("not joined yet");
    let mut last_ok = Instant::now() - ttl;
    let mut lease: i64 = 0;
    loop {
        if lease == 0 {
            match join(&inner.coord, &key, &mut record, ttl_s).await {
                Ok(l) => {
                    lease = l;
                    inner.lease.store(l, Ordering::Relaxed);
                    inner.joined.store(true, Ordering::Relaxed);
                    last_ok = Instant::now();
                    tracing::info!(id = %record.id, lease = l, "joined the cluster");
                    fence.lower();
                }
                Err(e) => tracing::debug!("cannot join the cluster yet: {e}"),
            }
        } else {
            match inner.coord.renew(lease).await {
                Ok(t) if t > 0 => {
                    last_ok = Instant::now();
                    inner.joined.store(true, Ordering::Relaxed);
                    fence.lower();
                }
                Ok(_) => {
                    tracing::warn!(lease, "cluster lease expired: joining again");
                    lease = 0;
                    inner.joined.store(false, Ordering::Relaxed);
                    fence.raise("expired");
                    continue;
                }
                Err(e) => tracing::debug!("lease renewal failed: {e}"),
            }
        }
        let healthy = lease != 0 && last_ok.elapsed() < ttl / 3 + Duration::from_millis(200);
        if last_ok.elapsed() >= fence_after {
            inner.joined.store(false, Ordering::Relaxed);
            fence.raise("etcd unreachable");
        }
        let pause = if healthy {
            ttl / 3
        } else {
            Duration::from_millis(500)
        };
        tokio::time::sleep(pause).await;
    }
}

/// Grants a lease and puts the membership record under it.
async fn join(
    coord: &Coordinator,
    key: &str,
    record: &mut Member,
    ttl_s: i64,
) -> Result<i64, crate::ClusterError> {
    let lease = coord.grant(ttl_s).await?;
    record.joined_ms = crate::now_ms();
    let value =
        serde_json::to_vec(record).map_err(|e| crate::ClusterError::Invalid(e.to_string()))?;
    if let Err(e) = coord.put_leased(key, value, lease).await {
        let _ = coord.revoke(lease).await;
        return Err(e);
    }
    Ok(lease)
}
