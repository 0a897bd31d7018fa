//! One running instance of a stage: a long-running sandbox, its batching queue, and the task
//! that forms batches (up to the plan's batch size, or whatever arrived within the stage's
//! `max_wait_ms` of the oldest item) and sends them to the process as batch frames. Outputs come
//! back inline or as shared-memory segments of the instance's co-location group. If the process
//! dies, the batch in flight fails, its segments are deleted, and the instance restarts.

use super::payload::{Group, Payload, SegRef};
use super::stats::{PipelineMetrics, StageLabel};
use crate::engine::StageHost;
use crate::function::FunctionSpec;
use crate::protocol::FunctionClient;
use crate::sandbox::{Sandbox, SandboxRequest};
use bytes::Bytes;
use sluice_handoff::frame::{
    decode, encode, BatchRequest, BatchResponse, DataRef, DataRegion, InputRef, OutputMode,
    RequestItem, PIPELINE_INPUT,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Restarts of a dead instance before it gives up (and fails its items).
const MAX_RESTARTS: u32 = 5;

/// What an item got from its stage.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub payload: Payload,
    pub queue_ms: f64,
    pub total_ms: f64,
    pub batch: u32,
}

/// One item queued at an instance.
pub(crate) struct Item {
    pub request: u64,
    /// One per predecessor, in spec order, with the producer's name.
    pub inputs: Vec<(String, Payload)>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<StageOut, String>>,
}

/// How an instance runs.
#[derive(Clone, Debug)]
pub(crate) struct InstanceConfig {
    pub pipeline: String,
    pub stage: String,
    pub gpu: u32,
    pub batch: u32,
    pub max_wait: Duration,
    pub spec: FunctionSpec,
    pub extra_env: Vec<(String, String)>,
}

/// The handle routers use.
pub(crate) struct Instance {
    pub cfg: InstanceConfig,
    pub group: Option<Group>,
    tx: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
    process: Arc<Mutex<Option<Sandbox>>>,
}

impl Instance {
    /// Starts the process, waits until it is ready, and starts the batching task.
    pub(crate) async fn start(
        cfg: InstanceConfig,
        group: Option<Group>,
        host: StageHost,
        serial: impl Fn() -> u64 + Send + Sync + 'static,
        metrics: Arc<PipelineMetrics>,
    ) -> Result<Arc<Instance>, String> {
        let sandbox = spawn(&cfg, &group, &host, serial()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inst = Arc::new(Instance {
            cfg,
            group,
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            process: Arc::new(Mutex::new(Some(sandbox))),
        });
        let runner = Runner {
            cfg: inst.cfg.clone(),
            group: inst.group.clone(),
            host,
            serial: Box::new(serial),
            queued: inst.queued.clone(),
            process: inst.process.clone(),
            metrics,
            restarts: 0,
        };
        tokio::spawn(runner.run(rx));
        Ok(inst)
    }

    /// Queues an item; fails it at once if the instance has stopped.
    pub(crate) fn submit(&self, item: Item) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(item)) = self.tx.send(item) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let _ = item
                .reply
                .send(Err("the stage instance has stopped".into()));
        }
    }

    /// Items queued or running here.
    pub(crate) fn load(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Kills the process; queued items fail.
    pub(crate) async fn stop(&self) {
        if let Some(mut sb) = self.process.lock().await.take() {
            sb.kill().await;
        }
    }
}

async fn spawn(
    cfg: &InstanceConfig,
    group: &Option<Group>,
    host: &StageHost,
    serial: u64,
) -> Result<Sandbox, String> {
    let dir = host.sandbox_root.join(format!("stage-{serial}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut env = cfg.extra_env.clone();
    env.push(("SLUICE_STAGE".into(), cfg.stage.clone()));
    env.push(("SLUICE_MAX_BATCH".into(), cfg.batch.to_string()));
    if let Some(g) = group {
        env.push(("SLUICE_SHM_DIR".into(), g.dir().display().to_string()));
    }
    let req = SandboxRequest {
        id: serial,
        spec: &cfg.spec,
        dir,
        extra_env: env,
    };
    let mut sandbox = host.launcher.spawn(req).await.map_err(|e| e.to_string())?;
    if let Err(e) = sandbox.wait_ready(host.start_timeout).await {
        let msg = format!(
            "stage {} did not start: {e}; stderr: {}",
            cfg.stage,
            sandbox.stderr_tail()
        );
        sandbox.kill().await;
        return Err(msg);
    }
    Ok(sandbox)
}

struct Runner {
    cfg: InstanceConfig,
    group: Option<Group>,
    host: StageHost,
    serial: Box<dyn Fn() -> u64 + Send + Sync>,
    queued: Arc<AtomicUsize>,
    process: Arc<Mutex<Option<Sandbox>>>,
    metrics: Arc<PipelineMetrics>,
    restarts: u32,
}

impl Runner {
    fn label(&self) -> StageLabel {
        StageLabel {
            pipeline: self.cfg.pipeline.clone(),
            stage: self.cfg.stage.clone(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Item>) {
        while let Some(first) = rx.recv().await {
            let deadline = tokio::time::Instant::from_std(first.enqueued + self.cfg.max_wait);
            let mut batch = vec![first];
            while batch.len() < self.cfg.batch as usize {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    _ => break,
                }
            }
            let n = batch.len();
            self.run_batch(batch).await;
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.metrics
                .queued
                .get_or_create(&self.label())
                .set(self.queued.load(Ordering::Relaxed) as i64);
        }
    }

    async fn client(&mut self) -> Result<FunctionClient, String> {
        let mut guard = self.process.lock().await;
        match guard.as_mut() {
            None => Err("the stage instance has stopped".into()),
            Some(sb) => {
                if let Some(exit) = sb.try_exited() {
                    let tail = sb.stderr_tail();
                    if self.restarts >= MAX_RESTARTS {
                        return Err(format!(
                            "stage {} died ({exit}) {} times; stderr: {tail}",
                            self.cfg.stage, self.restarts
                        ));
                    }
                    self.restarts += 1;
                    tracing::warn!(stage = %self.cfg.stage, "stage instance died ({exit}); restarting");
                    sb.kill().await;
                    let fresh = spawn(&self.cfg, &self.group, &self.host, (self.serial)()).await?;
                    *sb = fresh;
                }
                Ok(sb.client().clone())
            }
        }
    }

    async fn run_batch(&mut self, batch: Vec<Item>) {
        let started = Instant::now();
        let n = batch.len() as u32;
        let label = self.label();
        self.metrics
            .batch_size
            .get_or_create(&label)
            .observe(n as f64);
        let outs: Vec<Option<String>> = batch
            .iter()
            .map(|it| {
                self.group
                    .as_ref()
                    .map(|g| g.allocate(&format!("r{}", it.request)))
            })
            .collect();
        let result = match self.client().await {
            Ok(client) => self.exchange(&client, &batch, &outs).await,
            Err(e) => Err(e),
        };
        let total_end = Instant::now();
        let results: Vec<Result<Payload, String>> = match result {
            Ok(r) => r,
            Err(e) => {
                // A dead process is restarted on the next batch.
                vec![Err(e); batch.len()]
            }
        };
        for ((item, out), res) in batch.into_iter().zip(outs).zip(results) {
            // An allocated segment that did not become an output is deleted here.
            if let (Some(name), Some(g)) = (&out, &self.group) {
                let used = matches!(&res, Ok(Payload::Shm(s)) if &s.name == name);
                if !used {
                    let _ = g.discard(name);
                }
            }
            let queue_ms = started.duration_since(item.enqueued).as_secs_f64() * 1e3;
            let total_ms = total_end.duration_since(item.enqueued).as_secs_f64() * 1e3;
            self.metrics
                .stage_queue_seconds
                .get_or_create(&label)
                .observe(queue_ms / 1e3);
            self.metrics
                .stage_seconds
                .get_or_create(&label)
                .observe(total_ms / 1e3);
            let _ = item.reply.send(res.map(|payload| StageOut {
                payload,
                queue_ms,
                total_ms,
                batch: n,
            }));
        }
    }

    /// Sends one batch frame and turns the answer into one result per item.
    async fn exchange(
        &self,
        client: &FunctionClient,
        batch: &[Item],
        outs: &[Option<String>],
    ) -> Result<Vec<Result<Payload, String>>, String> {
        let mut data = DataRegion::new();
        let mut items = Vec::with_capacity(batch.len());
        for (k, (item, out)) in batch.iter().zip(outs).enumerate() {
            let mut inputs = Vec::with_capacity(item.inputs.len());
            for (from, p) in &item.inputs {
                let data_ref = match p {
                    Payload::Shm(s) if p.in_place_for(self.group.as_ref()) => DataRef::Shm {
                        path: s.name.clone(),
                        len: s.len,
                    },
                    _ => data.push(&p.to_bytes()?),
                };
                let from = if from.is_empty() {
                    PIPELINE_INPUT.to_string()
                } else {
                    from.clone()
                };
                inputs.push(InputRef {
                    from,
                    data: data_ref,
                });
            }
            items.push(RequestItem {
                id: k.to_string(),
                out: out.clone(),
                inputs,
            });
        }
        let manifest = BatchRequest {
            stage: self.cfg.stage.clone(),
            output: if self.group.is_some() {
                OutputMode::Shm
            } else {
                OutputMode::Inline
            },
            items,
        };
        let frame = encode(&manifest, data.as_bytes()).map_err(|e| e.to_string())?;
        let answer = client
            .batch(Bytes::from(frame), self.host.max_response_bytes)
            .await
            .map_err(|e| format!("stage {}: {e}", self.cfg.stage))?;
        let (resp, region): (BatchResponse, &[u8]) = decode(&answer)
            .map_err(|e| format!("stage {} answered a bad frame: {e}", self.cfg.stage))?;
        resp.check_answers(&manifest)
            .map_err(|e| format!("stage {} answered a bad frame: {e}", self.cfg.stage))?;
        let mut results = Vec::with_capacity(batch.len());
        for (item, out) in resp.items.into_iter().zip(outs) {
            results.push(match item.result {
                Err(e) => Err(format!("stage {}: {e}", self.cfg.stage)),
                Ok(DataRef::Inline { offset, len }) => {
                    let (o, l) = (offset as usize, len as usize);
                    Ok(Payload::Inline(answer.slice(
                        answer.len() - region.len() + o..answer.len() - region.len() + o + l,
                    )))
                }
                Ok(DataRef::Shm { path, len }) => self.accept_segment(out.as_deref(), path, len),
            });
        }
        Ok(results)
    }

    fn accept_segment(&self, out: Option<&str>, path: String, len: u64) -> Result<Payload, String> {
        let (Some(g), Some(expected)) = (&self.group, out) else {
            return Err(format!(
                "stage {} answered a shared-memory output it was not given",
                self.cfg.stage
            ));
        };
        if path != expected {
            return Err(format!(
                "stage {} wrote segment {path:?}, not the one it was given ({expected:?})",
                self.cfg.stage
            ));
        }
        let size = g
            .retain(&path, 1)
            .map_err(|e| format!("stage {}: {e}", self.cfg.stage))?;
        let seg = SegRef {
            group: g.clone(),
            name: path,
            len,
        };
        if size != len {
            return Err(format!(
                "stage {} declared {len} bytes but its segment holds {size}",
                self.cfg.stage
            ));
        }
        Ok(Payload::Shm(Arc::new(seg)))
    }
}
