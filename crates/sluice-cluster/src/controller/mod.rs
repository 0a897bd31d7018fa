//! The pipeline controller. Routers stand for election: the leader holds the key
//! `election/pipelines`, bound to its lease (created in a transaction only if absent), and
//! every write it makes is a transaction guarded by that key's `create_revision` (a deposed
//! leader's writes fail). Every `interval_ms` the leader:
//! - removes assignments of departed workers and deleted pipelines;
//! - re-points assignments at the pipeline's current revision (workers redeploy in place);
//! - measures each pipeline's load on its replicas (`GET /v1/pipelines/<name>` on the worker:
//!   measured requests/s against the plan's predicted capacity) and adds a replica above
//!   `scale_up_at` of the capacity, removes one when the load would stay below
//!   `scale_down_at` with one fewer (at most one change per pipeline per three intervals),
//!   always within the pipeline's `min_replicas..=max_replicas`;
//! - places new replicas (one whole Camelot plan per worker) on the workers with the most free
//!   GPUs (GPUs minus replicas already there), ties broken by id.
//!
//! Placement of replicas is [`plan_replicas`], pure and tested on its own.

use crate::etcd::Fence;
use crate::keys;
use crate::model::{Assignment, Member, PipelineRecord};
use crate::router::Shared;
use etcd_client::TxnOp;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Campaigns, and leads while elected, forever.
pub async fn run(s: Shared) {
    let cfg = s.cfg.controller.clone();
    let every = Duration::from_millis(cfg.interval_ms);
    let ttl = cfg.lease_ttl_s as i64;
    let mut lease = 0i64;
    loop {
        if lease == 0 {
            match s.coord.grant(ttl).await {
                Ok(l) => lease = l,
                Err(_) => {
                    tokio::time::sleep(every).await;
                    continue;
                }
            }
        }
        match s.coord.renew(lease).await {
            Ok(t) if t > 0 => {}
            Ok(_) => {
                lease = 0;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(every).await;
                continue;
            }
        }
        match s
            .coord
            .create_leased(keys::ELECTION, s.id.clone().into_bytes(), lease)
            .await
        {
            Ok(Some(rev)) => {
                let fence = Fence {
                    key: keys::ELECTION.to_string(),
                    create_revision: rev,
                };
                tracing::info!(router = %s.id, "elected pipeline controller");
                s.leader.store(true, Ordering::Relaxed);
                lead(&s, &fence, lease, every).await;
                s.leader.store(false, Ordering::Relaxed);
                tracing::info!(router = %s.id, "no longer the pipeline controller");
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("election: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Leads until the lease cannot be renewed within its TTL or a fenced write fails.
async fn lead(s: &Shared, fence: &Fence, lease: i64, every: Duration) {
    let ttl = Duration::from_secs(s.cfg.controller.lease_ttl_s);
    let mut last_renewed = Instant::now();
    let mut changed: HashMap<String, Instant> = HashMap::new();
    loop {
        if s.is_draining() {
            let _ = s.coord.revoke(lease).await;
            return;
        }
        match s.coord.renew(lease).await {
            Ok(t) if t > 0 => last_renewed = Instant::now(),
            Ok(_) => return,
            Err(_) if last_renewed.elapsed() + Duration::from_secs(1) >= ttl => return,
            Err(_) => {}
        }
        match reconcile(s, fence, &mut changed, every * 3).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::debug!("controller pass failed: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Load measured on one replica: requests/s and the plan's capacity.
async fn measure(s: &Shared, addr: &str, pipeline: &str) -> Option<(f64, f64)> {
    let v: serde_json::Value = s
        .client
        .get_json(
            addr,
            &format!("/v1/pipelines/{pipeline}"),
            Duration::from_secs(2),
        )
        .await
        .ok()?;
    let load = v["measured_load_rps"].as_f64()?;
    let cap = v["history"].as_array()?.last()?["capacity_rps"].as_f64()?;
    Some((load, cap))
}

/// One pass; `Ok(false)` when a fenced write showed this router no longer leads.
async fn reconcile(
    s: &Shared,
    fence: &Fence,
    changed: &mut HashMap<String, Instant>,
    cooldown: Duration,
) -> Result<bool, crate::ClusterError> {
    let members: BTreeMap<String, Member> = s
        .members
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k, (*v.value).clone()))
        .collect();
    let pipelines: BTreeMap<String, (PipelineRecord, i64)> = s
        .pipelines
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k, ((*v.value).clone(), v.mod_revision)))
        .collect();
    let mut current: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut ops = Vec::new();
    for (key, a) in s.assignments.snapshot() {
        let Some((w, p)) = keys::split_assignment(&key) else {
            continue;
        };
        if !members.contains_key(w) || !pipelines.contains_key(p) {
            ops.push(TxnOp::delete(keys::assignment(w, p), None));
        } else {
            current
                .entry(p.to_string())
                .or_default()
                .push((w.to_string(), a.value.revision));
        }
    }
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for (name, (rec, _)) in &pipelines {
        let on = current.get(name).map_or(0, Vec::len);
        let mut n = on.clamp(rec.min_replicas as usize, rec.max_replicas as usize);
        let cooled = changed.get(name).is_none_or(|t| t.elapsed() >= cooldown);
        if cooled && on > 0 {
            let mut load = 0.0;
            let mut cap = 0.0;
            let mut all = true;
            for (w, _) in current.get(name).into_iter().flatten() {
                let measured = match members.get(w) {
                    Some(m) => measure(s, &m.addr, name).await,
                    None => None,
                };
                match measured {
                    Some((l, c)) => {
                        load += l;
                        cap += c;
                    }
                    None => all = false,
                }
            }
            if all {
                n = scaled(on, n, load, cap, rec, &s.cfg.controller);
            }
        }
        if n != on {
            changed.insert(name.clone(), Instant::now());
        }
        want.insert(name.clone(), n);
    }
    let plan = plan_replicas(&members, &pipelines, &current, &want);
    for (p, (rec, rev)) in &pipelines {
        let placed = plan.get(p).cloned().unwrap_or_default();
        let had: HashMap<&str, i64> = current
            .get(p)
            .into_iter()
            .flatten()
            .map(|(w, r)| (w.as_str(), *r))
            .collect();
        for w in &placed {
            if had.get(w.as_str()) != Some(rev) {
                let a = Assignment {
                    revision: *rev,
                    request: rec.request.clone(),
                };
                let v = serde_json::to_vec(&a)
                    .map_err(|e| crate::ClusterError::Invalid(e.to_string()))?;
                ops.push(TxnOp::put(keys::assignment(w, p), v, None));
            }
        }
        for w in had.keys() {
            if !placed.iter().any(|x| x == w) {
                ops.push(TxnOp::delete(keys::assignment(w, p), None));
            }
        }
    }
    for chunk in ops.chunks(100) {
        if !s.coord.fenced(fence, chunk.to_vec()).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The replica count after one scaling decision: `on` replicas (clamped to the bounds:
/// `clamped`) carry `load` requests/s against a planned capacity of `cap` in all. One more
/// above `scale_up_at` of the capacity; one fewer when the load would stay below
/// `scale_down_at` of the capacity of one fewer; always within the record's bounds.
pub fn scaled(
    on: usize,
    clamped: usize,
    load: f64,
    cap: f64,
    rec: &PipelineRecord,
    cfg: &crate::config::ControllerConfig,
) -> usize {
    if on == 0 || !(cap > 0.0 && load.is_finite()) {
        return clamped;
    }
    if load > cfg.scale_up_at * cap {
        (on + 1).min(rec.max_replicas as usize).max(clamped)
    } else if on > 1 && load < cfg.scale_down_at * cap * (on - 1) as f64 / on as f64 {
        (on - 1).max(rec.min_replicas as usize)
    } else {
        clamped
    }
}

/// Where each pipeline's replicas run: existing ones stay (down to the wanted count, dropping
/// the highest worker ids first); new ones go to the workers with the most free GPUs that do
/// not hold the pipeline yet, ties broken by id. A replica needs the request's `gpus` (default
/// 1) free GPUs; a worker with no GPU counts as one. Pure and deterministic.
pub fn plan_replicas(
    members: &BTreeMap<String, Member>,
    pipelines: &BTreeMap<String, (PipelineRecord, i64)>,
    current: &BTreeMap<String, Vec<(String, i64)>>,
    want: &BTreeMap<String, usize>,
) -> BTreeMap<String, Vec<String>> {
    let mut free: BTreeMap<&str, i64> = members
        .iter()
        .map(|(id, m)| (id.as_str(), m.gpus.len().max(1) as i64))
        .collect();
    let need = |p: &str| {
        pipelines
            .get(p)
            .and_then(|(r, _)| r.request.gpus)
            .unwrap_or(1)
            .max(1) as i64
    };
    let mut plan: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (p, n) in want {
        let mut keep: Vec<String> = current
            .get(p)
            .into_iter()
            .flatten()
            .map(|(w, _)| w.clone())
            .filter(|w| members.contains_key(w))
            .collect();
        keep.sort();
        keep.truncate(*n);
        for w in &keep {
            if let Some(f) = free.get_mut(w.as_str()) {
                *f -= need(p);
            }
        }
        plan.insert(p.clone(), keep);
    }
    for (p, n) in want {
        let cost = need(p);
        let placed = plan.entry(p.clone()).or_default();
        while placed.len() < *n {
            let best = free
                .iter()
                .filter(|(w, f)| **f >= cost && !placed.iter().any(|x| x == *w))
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(w, _)| w.to_string());
            let Some(w) = best else { break };
            if let Some(f) = free.get_mut(w.as_str()) {
                *f -= cost;
            }
            placed.push(w);
        }
    }
    plan
}

#[cfg(test)]
mod tests;
