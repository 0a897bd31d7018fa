//! Membership at scale, measured: `n` simulated workers (lease holders in one process, not `n`
//! processes) join, renew once, then stop renewing, while a router-side watch cache of
//! `workers/` observes. Reports how long after each join its key was seen, and how long after
//! its lease was due to expire (last renewal + TTL) its removal was seen. The target is that
//! both are within TTL + 1 s. Used by the `lease_scale` example and the `leases` test.

use crate::cache::Cache;
use crate::etcd::{mirror, Coordinator};
use crate::keys;
use crate::model::Member;
use crate::ClusterError;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What one run measured (milliseconds).
#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    /// Simulated workers.
    pub workers: usize,
    /// Lease TTL, s.
    pub ttl_s: i64,
    /// From the first grant until every join was seen.
    pub join_all_ms: f64,
    /// Join seen after its put was acknowledged: p50, p99, max.
    pub join_seen_ms: [f64; 3],
    /// Removal seen after its lease was due (last renewal + TTL): p50, p99, max.
    pub loss_seen_ms: [f64; 3],
    /// Removals never seen within TTL + 10 s.
    pub losses_missed: usize,
}

fn quantiles(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [0.0; 3];
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    [q(0.5), q(0.99), v[v.len() - 1]]
}

/// When each id appeared and disappeared.
type Seen = Arc<std::sync::Mutex<(HashMap<String, Instant>, HashMap<String, Instant>)>>;

fn member(i: usize) -> Member {
    Member {
        id: format!("sim-{i:05}"),
        addr: format!("127.0.0.1:{}", 20_000 + i % 40_000),
        gpus: Vec::new(),
        devices: "simulated".into(),
        tokens_per_gpu: 2,
        cpu_slots: 2,
        isolation: "none".into(),
        labels: BTreeMap::new(),
        joined_ms: crate::now_ms(),
    }
}

/// Records when each key appears and disappears in `cache`, until `stop`.
async fn observe(cache: Arc<Cache<Member>>, seen: Seen) {
    let mut rx = cache.subscribe();
    let mut present: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let now = Instant::now();
        let snap: std::collections::HashSet<String> =
            cache.snapshot().into_iter().map(|(k, _)| k).collect();
        {
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            for k in snap.difference(&present) {
                s.0.entry(k.clone()).or_insert(now);
            }
            for k in present.difference(&snap) {
                s.1.entry(k.clone()).or_insert(now);
            }
        }
        present = snap;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Runs the measurement against etcd at `endpoints` with `n` workers and leases of `ttl_s`.
pub async fn run(endpoints: &[String], n: usize, ttl_s: i64) -> Result<ScaleReport, ClusterError> {
    let holder = Coordinator::connect(endpoints).await?;
    let router = Coordinator::connect(endpoints).await?;
    let prefix = format!("{}scale-{}/", keys::WORKERS, crate::now_ms());
    let cache: Arc<Cache<Member>> = Cache::new(&prefix);
    let watch = tokio::spawn(mirror(router, cache.clone()));
    if !cache.wait_synced(Duration::from_secs(10)).await {
        return Err(ClusterError::Etcd("the watch did not sync".into()));
    }
    let seen: Seen = Arc::new(std::sync::Mutex::new((HashMap::new(), HashMap::new())));
    let observer = tokio::spawn(observe(cache.clone(), seen.clone()));
    let start = Instant::now();
    let joined: Vec<Result<(String, i64, Instant), ClusterError>> = stream::iter(0..n)
        .map(|i| {
            let c = holder.clone();
            let key = format!("{prefix}sim-{i:05}");
            async move {
                let lease = c.grant(ttl_s).await?;
                let v = serde_json::to_vec(&member(i))
                    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                c.put_leased(&key, v, lease).await?;
                Ok((format!("sim-{i:05}"), lease, Instant::now()))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let joined: Vec<(String, i64, Instant)> = joined.into_iter().collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(ttl_s as u64 + 1);
    while cache.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join_all_ms = start.elapsed().as_secs_f64() * 1e3;
    // Renew every lease once (a worker's keep-alive), then stop: each is due at renewal + TTL.
    let renewed: Vec<Result<(String, Instant), ClusterError>> =
        stream::iter(joined.iter().cloned())
            .map(|(id, lease, _)| {
                let c = holder.clone();
                async move {
                    c.renew(lease).await?;
                    Ok((id, Instant::now()))
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
    let renewed: HashMap<String, Instant> = renewed.into_iter().collect::<Result<_, _>>()?;
    let ttl = Duration::from_secs(ttl_s as u64);
    let deadline = Instant::now() + ttl + Duration::from_secs(10);
    while !cache.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    observer.abort();
    watch.abort();
    let s = seen.lock().unwrap_or_else(|e| e.into_inner());
    let join_seen: Vec<f64> = joined
        .iter()
        .filter_map(|(id, _, put)| {
            s.0.get(id)
                .map(|t| t.saturating_duration_since(*put).as_secs_f64() * 1e3)
        })
        .collect();
    let mut missed = 0;
    let mut loss_seen = Vec::new();
    for (id, at) in &renewed {
        match s.1.get(id) {
            Some(t) => {
                loss_seen.push((t.duration_since(*at).as_secs_f64() - ttl.as_secs_f64()) * 1e3)
            }
            None => missed += 1,
        }
    }
    Ok(ScaleReport {
        workers: n,
        ttl_s,
        join_all_ms,
        join_seen_ms: quantiles(join_seen),
        loss_seen_ms: quantiles(loss_seen),
        losses_missed: missed,
    })
}
