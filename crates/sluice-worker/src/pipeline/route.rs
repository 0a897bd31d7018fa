//! Running one request through a deployment: every stage waits for all its predecessors' outputs
//! (fan-in), picks an instance — one on the GPU of its first producer when there is one, so the
//! hand-off stays in place (shared memory, or CUDA IPC on that GPU), else the least loaded —
//! queues the item there, counts each hand-off by kind (`shm`, `cuda-ipc`, `copy`), and publishes its
//! output to its successors (fan-out). The result is the sink stage's output; with several sinks,
//! a JSON object of them by stage name.

use super::deploy::Deployment;
use super::error::{RunError, StageError, StageErrorKind};
use super::instance::{Item, StageOut};
use super::payload::Payload;
use super::stats::{HandoffLabel, PipelineMetrics};
use bytes::Bytes;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// A finished stage of one request.
#[derive(Clone, Debug)]
struct Done {
    out: StageOut,
    gpu: u32,
}

type Slot = Option<Result<Arc<Done>, RunError>>;

/// Per-stage timing of one request, ms.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StageTiming {
    /// The stage's name in the spec.
    pub stage: String,
    /// From queued at the instance until its batch started, ms.
    pub queue_ms: f64,
    /// From queued at the instance until its batch's answer, ms (includes `queue_ms`).
    pub total_ms: f64,
    /// Size of the batch the request's item ran in.
    pub batch: u32,
}

/// A request's result.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The sink stage's output as it produced it; with several sinks, a JSON object of their
    /// outputs by stage name.
    pub body: Bytes,
    /// Whether the worker built `body` as JSON (several sinks); false: the sink's own bytes.
    pub json: bool,
    /// From the request's start through the DAG to its result, ms.
    pub total_ms: f64,
    /// Per stage, in the DAG's topological order.
    pub stages: Vec<StageTiming>,
}

/// Picks the instance of `stage` for an item whose first producer ran on `near`.
fn pick(dep: &Deployment, stage: usize, near: Option<u32>) -> usize {
    let cands = &dep.by_stage[stage];
    let local: Vec<usize> = cands
        .iter()
        .copied()
        .filter(|&k| Some(dep.instances[k].cfg.gpu) == near)
        .collect();
    let pool = if local.is_empty() { cands } else { &local };
    pool.iter()
        .copied()
        .min_by_key(|&k| dep.instances[k].load())
        .unwrap_or(cands[0])
}

/// Runs `input` through `dep`.
pub(crate) async fn run(
    dep: Arc<Deployment>,
    metrics: Arc<PipelineMetrics>,
    request: u64,
    input: Bytes,
) -> Result<Finished, RunError> {
    let started = Instant::now();
    let order = (dep.spec.topo_order()).map_err(|e| RunError::Spec(e.to_string()))?;
    let n = dep.spec.stages.len();
    let mut senders: Vec<Option<watch::Sender<Slot>>> = (0..n).map(|_| None).collect();
    let mut receivers: Vec<Option<watch::Receiver<Slot>>> = (0..n).map(|_| None).collect();
    for s in 0..n {
        let (tx, rx) = watch::channel(None);
        senders[s] = Some(tx);
        receivers[s] = Some(rx);
    }
    for &s in &order {
        let preds = dep.spec.predecessors(s);
        let waits: Vec<(String, watch::Receiver<Slot>)> = preds
            .iter()
            .filter_map(|&p| {
                receivers[p]
                    .clone()
                    .map(|rx| (dep.spec.stages[p].name.clone(), rx))
            })
            .collect();
        let Some(tx) = senders[s].take() else {
            continue;
        };
        let (dep, metrics, input) = (dep.clone(), metrics.clone(), input.clone());
        tokio::spawn(async move {
            let result = run_stage(&dep, &metrics, request, s, waits, input).await;
            tx.send_replace(Some(result));
        });
    }
    let mut outputs = Vec::new();
    for s in dep.spec.sinks() {
        let Some(mut rx) = receivers[s].clone() else {
            continue;
        };
        let done = wait(&mut rx).await?;
        outputs.push((s, done));
    }
    let mut stages = Vec::with_capacity(n);
    for &s in &order {
        if let Some(rx) = &receivers[s] {
            if let Some(Ok(d)) = rx.borrow().as_ref() {
                stages.push(StageTiming {
                    stage: dep.spec.stages[s].name.clone(),
                    queue_ms: d.out.queue_ms,
                    total_ms: d.out.total_ms,
                    batch: d.out.batch,
                });
            }
        }
    }
    let (body, json) = if outputs.len() == 1 {
        (outputs[0].1.out.payload.to_bytes().await?, false)
    } else {
        let mut obj = serde_json::Map::new();
        for (s, d) in &outputs {
            let bytes = d.out.payload.to_bytes().await?;
            let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            });
            obj.insert(dep.spec.stages[*s].name.clone(), v);
        }
        let body = serde_json::to_vec(&obj).map_err(|e| RunError::Encode(e.to_string()))?;
        (Bytes::from(body), true)
    };
    Ok(Finished {
        body,
        json,
        total_ms: started.elapsed().as_secs_f64() * 1e3,
        stages,
    })
}

async fn wait(rx: &mut watch::Receiver<Slot>) -> Result<Arc<Done>, RunError> {
    let slot = rx
        .wait_for(|v| v.is_some())
        .await
        .map_err(|_| RunError::Lost)?;
    match slot.as_ref() {
        Some(Ok(d)) => Ok(d.clone()),
        Some(Err(e)) => Err(e.clone()),
        None => Err(RunError::Lost),
    }
}

async fn run_stage(
    dep: &Deployment,
    metrics: &PipelineMetrics,
    request: u64,
    s: usize,
    waits: Vec<(String, watch::Receiver<Slot>)>,
    input: Bytes,
) -> Result<Arc<Done>, RunError> {
    let mut inputs = Vec::with_capacity(waits.len().max(1));
    let mut near = None;
    for (name, mut rx) in waits {
        let d = wait(&mut rx).await?;
        near.get_or_insert(d.gpu);
        inputs.push((name, d.out.payload.clone()));
    }
    if inputs.is_empty() {
        inputs.push((String::new(), Payload::Inline(input)));
    }
    let k = pick(dep, s, near);
    let inst = &dep.instances[k];
    for (from, p) in &inputs {
        if !from.is_empty() {
            let handover = p.handover(inst.group.as_ref(), inst.cfg.gpu, inst.cfg.accepts_ipc);
            metrics
                .handoffs
                .get_or_create(&HandoffLabel {
                    pipeline: dep.spec.name.clone(),
                    kind: handover.label().into(),
                })
                .inc();
        }
    }
    let (reply, rx) = oneshot::channel();
    inst.submit(Item {
        request,
        inputs,
        enqueued: Instant::now(),
        reply,
    });
    let dropped = || StageError::new(&dep.spec.stages[s].name, StageErrorKind::Dropped);
    let out = rx.await.map_err(|_| dropped())??;
    dep.stage_latency[s].record(out.total_ms);
    dep.stage_batch[s].record(out.batch as f64);
    Ok(Arc::new(Done {
        out,
        gpu: inst.cfg.gpu,
    }))
}

/// Counts a finished request in the deployment's figures.
pub(crate) fn account(dep: &Deployment, result: &Result<Finished, RunError>) {
    match result {
        Ok(f) => {
            dep.completed.fetch_add(1, Ordering::Relaxed);
            dep.e2e.record(f.total_ms);
        }
        Err(_) => {
            dep.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
