//! The pipeline assignment reconciler: makes the worker's deployed pipelines equal to its
//! assignments (`assign/<id>/…`, written by the elected controller). A new assignment is
//! deployed, a changed one (another pipeline revision) redeployed in place, a removed one
//! stopped. Deployments take seconds, so they run one at a time in this task; a failure is
//! logged and tried again at the next change or within 5 s.

use crate::cache::Cache;
use crate::model::Assignment;
use sluice_worker::api::Shared;
use sluice_worker::pipeline::PipelineError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Runs forever.
pub async fn run(state: Shared, cache: Arc<Cache<Assignment>>) {
    let mut changes = cache.subscribe();
    let mut applied: HashMap<String, i64> = HashMap::new();
    loop {
        if cache.synced() {
            reconcile(&state, &cache, &mut applied).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
    }
}

async fn reconcile(state: &Shared, cache: &Cache<Assignment>, applied: &mut HashMap<String, i64>) {
    let desired = cache.snapshot();
    for (name, v) in &desired {
        let a = &v.value;
        if applied.get(name) == Some(&a.revision) {
            continue;
        }
        if a.request.spec.name != *name {
            tracing::warn!(pipeline = %name, "skipping an assignment whose spec has another name");
            applied.insert(name.clone(), a.revision);
            continue;
        }
        let exists = state.pipelines.view(name).is_some();
        let result = match state.pipelines.deploy(a.request.clone(), exists).await {
            Err(PipelineError::Exists(_)) => state.pipelines.deploy(a.request.clone(), true).await,
            r => r,
        };
        match result {
            Ok(_) => {
                applied.insert(name.clone(), a.revision);
                tracing::info!(pipeline = %name, revision = a.revision, "assigned pipeline deployed");
            }
            Err(e) => tracing::warn!(pipeline = %name, "cannot deploy assigned pipeline: {e}"),
        }
    }
    let keep: std::collections::HashSet<&str> = desired.iter().map(|(n, _)| n.as_str()).collect();
    for view in state.pipelines.list() {
        if keep.contains(view.name.as_str()) {
            continue;
        }
        match state.pipelines.delete(&view.name).await {
            Ok(()) | Err(PipelineError::Unknown(_)) => {
                applied.remove(&view.name);
                let store = state.store.clone();
                let n = view.name.clone();
                let _ = tokio::task::spawn_blocking(move || store.delete_pipeline(&n)).await;
                tracing::info!(pipeline = %view.name, "pipeline unassigned and stopped");
            }
            Err(e) => tracing::warn!(pipeline = %view.name, "cannot stop pipeline: {e}"),
        }
    }
}
