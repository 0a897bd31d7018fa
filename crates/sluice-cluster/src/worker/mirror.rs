//! The registry mirror: makes the worker's registered functions equal to `functions/` in etcd.
//! It registers a function whose `mod_revision` it has not applied yet (so an unchanged spec
//! never restarts warm sandboxes), unregisters one that is gone, and writes both to the local
//! store (so the worker's own read API agrees). Functions the local store held from before and
//! etcd does not are removed once the first listing arrived. It runs on every cache change and
//! at least every 5 s (a failed store write is retried then).

use crate::cache::Cache;
use sluice_worker::api::Shared;
use sluice_worker::function::FunctionSpec;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Runs forever.
pub async fn run(state: Shared, cache: Arc<Cache<FunctionSpec>>) {
    let mut changes = cache.subscribe();
    let mut applied: HashMap<String, i64> = HashMap::new();
    loop {
        if cache.synced() {
            reconcile(&state, &cache, &mut applied).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
    }
}

async fn reconcile(
    state: &Shared,
    cache: &Cache<FunctionSpec>,
    applied: &mut HashMap<String, i64>,
) {
    let desired = cache.snapshot();
    for (name, v) in &desired {
        if applied.get(name) == Some(&v.mod_revision) {
            continue;
        }
        let spec = (*v.value).clone();
        if spec.name != *name || spec.validate().is_err() {
            tracing::warn!(function = %name, "skipping an invalid function spec from etcd");
            applied.insert(name.clone(), v.mod_revision);
            continue;
        }
        if let Err(e) = state.engine.check_fits(&spec) {
            tracing::warn!(function = %name, "cannot run here ({e}); not registered on this worker");
            state.engine.unregister(name);
            applied.insert(name.clone(), v.mod_revision);
            continue;
        }
        let store = state.store.clone();
        let stored = spec.clone();
        match tokio::task::spawn_blocking(move || store.put_function(&stored)).await {
            Ok(Ok(_)) => {
                state.engine.register(spec);
                applied.insert(name.clone(), v.mod_revision);
                tracing::info!(function = %name, revision = v.mod_revision, "function registered from the cluster");
            }
            Ok(Err(e)) => tracing::warn!(function = %name, "cannot store function: {e}"),
            Err(e) => tracing::warn!(function = %name, "cannot store function: {e}"),
        }
    }
    let keep: std::collections::HashSet<&str> = desired.iter().map(|(n, _)| n.as_str()).collect();
    let store = state.store.clone();
    let local = match tokio::task::spawn_blocking(move || store.list_functions()).await {
        Ok(Ok(v)) => v,
        _ => return,
    };
    for spec in local {
        if keep.contains(spec.name.as_str()) {
            continue;
        }
        let store = state.store.clone();
        let n = spec.name.clone();
        if let Ok(Ok(_)) =
            tokio::task::spawn_blocking(move || store.delete_function(&n, crate::now_ms())).await
        {
            state.engine.unregister(&spec.name);
            applied.remove(&spec.name);
            tracing::info!(function = %spec.name, "function removed from the cluster");
        }
    }
}
