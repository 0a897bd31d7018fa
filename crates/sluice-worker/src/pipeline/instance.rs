//! One running instance of a stage: a long-running sandbox, its batching queue, and the task
//! that forms batches (up to the plan's batch size, or whatever arrived within the stage's
//! `max_wait_ms` of the oldest item) and sends them to the process as batch frames. Outputs come
//! back inline, as shared-memory segments of the instance's co-location group, or — for an
//! instance whose outputs go to a consumer on its GPU — as CUDA IPC handles of device buffers the
//! process keeps until the worker releases them. Releases reach the process in the next batch's
//! manifest, or in a `POST /release` once none has gone out for [`RELEASE_QUIET`]. If the process
//! dies, the batch in flight fails, its segments are deleted, its device buffers are given up (the
//! driver freed them), and the instance restarts.

use super::error::{RunError, StageError, StageErrorKind as Kind};
use super::payload::{Exporter, Group, Handover, Payload, Release, SegRef};
use super::stats::{PipelineMetrics, StageLabel};
use crate::engine::StageHost;
use crate::function::FunctionSpec;
use crate::protocol::{FunctionClient, ProtocolError};
use crate::sandbox::{Sandbox, SandboxRequest, UserLease};
use bytes::Bytes;
use sluice_handoff::cuda_ipc::IpcHandle;
use sluice_handoff::frame::{
    decode, encode_parts, BatchRequest, BatchResponse, DataRef, InputRef, OutputMode, RequestItem,
    RequestManifest, PIPELINE_INPUT,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Restarts of a dead instance before it gives up (and fails its items).
const MAX_RESTARTS: u32 = 5;

/// How long pending releases wait for a batch to carry them before a `POST /release` does.
pub(crate) const RELEASE_QUIET: Duration = Duration::from_millis(50);

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
    pub reply: oneshot::Sender<Result<StageOut, RunError>>,
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
    /// Ask for outputs as CUDA IPC handles (a consumer on this GPU accepts them).
    pub device_output: bool,
    /// The stage accepts inputs as CUDA IPC handles.
    pub accepts_ipc: bool,
    /// The user its sandboxes run as: its co-location group's (so both stages can use the
    /// group's shared memory) or the MPS clients'; `None`: one of its own.
    pub user: Option<UserLease>,
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
    ) -> Result<Arc<Instance>, StageError> {
        let sandbox = spawn(&cfg, &group, &host, serial()).await?;
        let first = sandbox.id();
        let (tx, rx) = mpsc::unbounded_channel();
        let (release_tx, release_rx) = mpsc::unbounded_channel();
        let inst = Arc::new(Instance {
            cfg,
            group,
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            process: Arc::new(Mutex::new(Some(sandbox))),
        });
        let mut runner = Runner {
            cfg: inst.cfg.clone(),
            group: inst.group.clone(),
            host,
            serial: Box::new(serial),
            queued: inst.queued.clone(),
            process: inst.process.clone(),
            metrics,
            restarts: 0,
            transport_broke: std::sync::atomic::AtomicBool::new(false),
            exporter: None,
            release_tx,
            pending: Vec::new(),
        };
        runner.export_from(first);
        tokio::spawn(runner.run(rx, release_rx));
        Ok(inst)
    }

    /// Queues an item; fails it at once if the instance has stopped.
    pub(crate) fn submit(&self, item: Item) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(item)) = self.tx.send(item) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let stopped = StageError::new(&self.cfg.stage, Kind::Stopped);
            let _ = item.reply.send(Err(stopped.into()));
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
) -> Result<Sandbox, StageError> {
    let mut env = cfg.extra_env.clone();
    if let Some(g) = group {
        env.push(("SLUICE_SHM_DIR".into(), g.dir().display().to_string()));
    }
    let user = cfg.user.clone();
    launch_stage(host, &cfg.spec, &cfg.stage, cfg.batch, env, serial, user).await
}

/// Starts one stage process in sandbox `serial` through the host's launcher (as functions are),
/// with the stage protocol's environment (`SLUICE_STAGE`, `SLUICE_MAX_BATCH`) added to `env`
/// (which holds its device placement), as `user` when given, and waits until it is ready; a
/// process that does not get ready is killed and its stderr is in the error.
pub(super) async fn launch_stage(
    host: &StageHost,
    spec: &FunctionSpec,
    stage: &str,
    max_batch: u32,
    mut env: Vec<(String, String)>,
    serial: u64,
    user: Option<UserLease>,
) -> Result<Sandbox, StageError> {
    env.push(("SLUICE_STAGE".into(), stage.to_string()));
    env.push(("SLUICE_MAX_BATCH".into(), max_batch.to_string()));
    let req = SandboxRequest {
        id: serial,
        spec,
        extra_env: env,
        read_only: Vec::new(),
        user,
    };
    Sandbox::start_ready(&host.launcher, req, host.start_timeout, None)
        .await
        .map_err(|e| StageError::new(stage, Kind::NotStarted(e.to_string())))
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
    /// The last exchange lost its connection (the process died, or closed its socket): the next
    /// batch must not reuse the process before it is known to be gone or is restarted.
    transport_broke: std::sync::atomic::AtomicBool,
    /// The running process's exported device buffers (with `device_output` only).
    exporter: Option<Arc<Exporter>>,
    release_tx: mpsc::UnboundedSender<Release>,
    /// Handles of the running process's outputs that no consumer needs any more.
    pending: Vec<IpcHandle>,
}

/// A batch frame ready to go: its items (those whose inputs could be prepared), the inline
/// payloads of the data region (as they lie: copied once, when the frame is built), and an early
/// result for each item that could not be sent.
struct Prepared {
    items: Vec<RequestItem>,
    data: Region,
    failed: Vec<Option<RunError>>,
}

/// The inline payloads of a frame and the offsets they will have in its data region.
#[derive(Default)]
struct Region {
    parts: Vec<Bytes>,
    len: u64,
}

impl Region {
    fn push(&mut self, bytes: Bytes) -> DataRef {
        let r = DataRef::Inline {
            offset: self.len,
            len: bytes.len() as u64,
        };
        self.len += bytes.len() as u64;
        self.parts.push(bytes);
        r
    }
}

impl Runner {
    fn label(&self) -> StageLabel {
        StageLabel {
            pipeline: self.cfg.pipeline.clone(),
            stage: self.cfg.stage.clone(),
        }
    }

    /// Device buffers of the process with sandbox serial `serial` (a fresh start or a restart).
    fn export_from(&mut self, serial: u64) {
        if let Some(old) = self.exporter.take() {
            old.mark_dead();
        }
        self.pending.clear();
        if self.cfg.device_output {
            self.exporter = Some(Exporter::new(
                self.cfg.stage.clone(),
                self.cfg.gpu,
                serial,
                self.release_tx.clone(),
                self.process.clone(),
            ));
        }
    }

    /// Keeps a release if it is for the running process (one for a dead process is moot).
    fn queue_release(&mut self, (serial, handle): Release) {
        if self.exporter.as_ref().is_some_and(|e| e.serial == serial) {
            self.pending.push(handle);
        }
    }

    fn drain_releases(&mut self, rx: &mut mpsc::UnboundedReceiver<Release>) {
        while let Ok(release) = rx.try_recv() {
            self.queue_release(release);
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Item>,
        mut releases: mpsc::UnboundedReceiver<Release>,
    ) {
        let mut last_batch = tokio::time::Instant::now();
        loop {
            let quiet = last_batch + RELEASE_QUIET;
            tokio::select! {
                item = rx.recv() => {
                    let Some(first) = item else { break };
                    let deadline =
                        tokio::time::Instant::from_std(first.enqueued + self.cfg.max_wait);
                    let mut batch = vec![first];
                    while batch.len() < self.cfg.batch as usize {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(item)) => batch.push(item),
                            _ => break,
                        }
                    }
                    let n = batch.len();
                    self.drain_releases(&mut releases);
                    self.run_batch(batch).await;
                    last_batch = tokio::time::Instant::now();
                    self.queued.fetch_sub(n, Ordering::Relaxed);
                    self.metrics
                        .queued
                        .get_or_create(&self.label())
                        .set(self.queued.load(Ordering::Relaxed) as i64);
                }
                Some(release) = releases.recv() => self.queue_release(release),
                _ = tokio::time::sleep_until(quiet), if !self.pending.is_empty() => {
                    self.drain_releases(&mut releases);
                    self.send_releases().await;
                    last_batch = tokio::time::Instant::now();
                }
            }
        }
    }

    /// `POST /release` of the pending handles. At most once: a release that fails is dropped
    /// (the handle's bytes may by then belong to a new buffer, which a second try would free).
    async fn send_releases(&mut self) {
        let handles = std::mem::take(&mut self.pending);
        let client = {
            let mut guard = self.process.lock().await;
            // Dead or stopped: the driver freed its memory; the next batch restarts it.
            let Some(sb) = guard.as_mut() else {
                return;
            };
            if sb.try_exited().is_some() {
                return;
            }
            sb.client().clone()
        };
        if let Err(e) = client.release(&handles).await {
            tracing::warn!(
                stage = %self.cfg.stage,
                "releasing {} device buffers failed (kept by the stage until it exits): {e}",
                handles.len()
            );
        }
    }

    /// This stage's error of `kind`.
    fn error(&self, kind: Kind) -> StageError {
        StageError::new(&self.cfg.stage, kind)
    }

    async fn client(&mut self) -> Result<FunctionClient, StageError> {
        let broke = self
            .transport_broke
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let mut guard = self.process.lock().await;
        match guard.as_mut() {
            None => Err(self.error(Kind::Stopped)),
            Some(sb) => {
                if broke {
                    settle(sb).await;
                }
                if let Some(exit) = sb.try_exited() {
                    let tail = sb.stderr_tail();
                    if self.restarts >= MAX_RESTARTS {
                        return Err(self.error(Kind::DiedTooOften {
                            exit: exit.to_string(),
                            restarts: self.restarts,
                            stderr: tail,
                        }));
                    }
                    self.restarts += 1;
                    tracing::warn!(stage = %self.cfg.stage, "stage instance died ({exit}); restarting");
                    sb.kill().await;
                    if let Some(e) = &self.exporter {
                        e.mark_dead();
                    }
                    let fresh = spawn(&self.cfg, &self.group, &self.host, (self.serial)()).await?;
                    *sb = fresh;
                    let id = sb.id();
                    let client = sb.client().clone();
                    drop(guard);
                    self.export_from(id);
                    return Ok(client);
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
        // Segments only for shm output: a name allocated but not written is deleted, and with it
        // a recycled file of the pool.
        let shm_group = self.group.as_ref().filter(|_| !self.cfg.device_output);
        let outs: Vec<Option<String>> = batch
            .iter()
            .map(|it| {
                shm_group.map(|g| g.allocate_for(&format!("r{}", it.request), &self.cfg.stage))
            })
            .collect();
        let result = match self.client().await {
            Ok(client) => {
                let prepared = self.prepare(&batch, &outs).await;
                let release = if prepared.items.is_empty() {
                    Vec::new()
                } else {
                    std::mem::take(&mut self.pending)
                };
                self.exchange(&client, prepared, release).await
            }
            Err(e) => Err(e.into()),
        };
        let total_end = Instant::now();
        let results: Vec<Result<Payload, RunError>> = match result {
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

    /// The request items of a batch, with their inputs as references or inline copies. An item
    /// whose input cannot be handed over (a device buffer of a producer that died, or one that
    /// would need a copy without a CUDA driver) fails alone.
    async fn prepare(&self, batch: &[Item], outs: &[Option<String>]) -> Prepared {
        let mut prepared = Prepared {
            items: Vec::with_capacity(batch.len()),
            data: Region::default(),
            failed: vec![None; batch.len()],
        };
        for (k, (item, out)) in batch.iter().zip(outs).enumerate() {
            match self.inputs(item, &mut prepared.data).await {
                Ok(inputs) => prepared.items.push(RequestItem {
                    id: k.to_string(),
                    out: out.clone(),
                    inputs,
                }),
                Err(e) => prepared.failed[k] = Some(e),
            }
        }
        prepared
    }

    async fn inputs(&self, item: &Item, data: &mut Region) -> Result<Vec<InputRef>, RunError> {
        let mut inputs = Vec::with_capacity(item.inputs.len());
        for (from, p) in &item.inputs {
            let handover = p.handover(self.group.as_ref(), self.cfg.gpu, self.cfg.accepts_ipc);
            let data_ref = match (p, handover) {
                (Payload::Shm(s), Handover::Shm) => DataRef::Shm {
                    path: s.name.clone(),
                    len: s.len,
                },
                (Payload::Ipc(r), Handover::CudaIpc) => {
                    if !r.exporter.alive().await {
                        let consumer = self.cfg.stage.clone();
                        let kind = Kind::DiedBeforeHandover { consumer };
                        return Err(StageError::new(&r.exporter.stage, kind).into());
                    }
                    DataRef::CudaIpc {
                        handle: r.handle,
                        len: r.len,
                        device: r.exporter.gpu,
                    }
                }
                _ => data.push(p.to_bytes().await?),
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
        Ok(inputs)
    }

    /// Sends one batch frame (with `release`, the handles the process may free) and turns the
    /// answer into one result per item of the batch.
    async fn exchange(
        &self,
        client: &FunctionClient,
        prepared: Prepared,
        release: Vec<IpcHandle>,
    ) -> Result<Vec<Result<Payload, RunError>>, RunError> {
        let Prepared {
            items,
            data,
            failed,
        } = prepared;
        // Every slot is overwritten below but those of items that failed early.
        let mut results: Vec<Result<Payload, RunError>> = failed
            .into_iter()
            .map(|f| Err(f.unwrap_or_else(|| self.error(Kind::Dropped).into())))
            .collect();
        if items.is_empty() {
            return Ok(results);
        }
        let output = if self.cfg.device_output {
            OutputMode::CudaIpc
        } else if self.group.is_some() {
            OutputMode::Shm
        } else {
            OutputMode::Inline
        };
        let manifest = RequestManifest {
            batch: BatchRequest {
                stage: self.cfg.stage.clone(),
                output,
                items,
            },
            release,
        };
        let parts: Vec<&[u8]> = data.parts.iter().map(|b| b.as_ref()).collect();
        let frame = encode_parts(&manifest, &parts)
            .map_err(|e| RunError::Encode(format!("the batch frame: {e}")))?;
        let answer = client
            .batch(Bytes::from(frame), self.host.max_response_bytes)
            .await
            .map_err(|e| {
                if matches!(e, ProtocolError::Connect(_) | ProtocolError::Io(_)) {
                    self.transport_broke
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                self.error(Kind::Call(e.to_string()))
            })?;
        let bad_frame = |e: &dyn std::fmt::Display| self.error(Kind::BadFrame(e.to_string()));
        let (resp, region): (BatchResponse, &[u8]) = decode(&answer).map_err(|e| bad_frame(&e))?;
        resp.check_answers(&manifest.batch)
            .map_err(|e| bad_frame(&e))?;
        let base = answer.len() - region.len();
        for (item, asked) in resp.items.into_iter().zip(&manifest.batch.items) {
            // The ids are the items' indices in the batch (checked against the request above).
            let k: usize = asked.id.parse().map_err(|_| bad_frame(&"bad item id"))?;
            results[k] = match item.result {
                Err(e) => Err(self.error(Kind::Refused(e.to_string())).into()),
                Ok(DataRef::Inline { offset, len }) => {
                    let (o, l) = (base + offset as usize, len as usize);
                    Ok(Payload::Inline(answer.slice(o..o + l)))
                }
                Ok(DataRef::Shm { path, len }) => self
                    .accept_segment(asked.out.as_deref(), path, len)
                    .map_err(RunError::from),
                Ok(DataRef::CudaIpc {
                    handle,
                    len,
                    device,
                }) => self
                    .accept_device(handle, len, device)
                    .map_err(RunError::from),
            };
        }
        Ok(results)
    }

    /// Takes over a device buffer the process exported; it is released to the process when the
    /// payload's last holder drops it (at once, when it is refused here).
    fn accept_device(
        &self,
        handle: IpcHandle,
        len: u64,
        device: u32,
    ) -> Result<Payload, StageError> {
        let Some(exporter) = &self.exporter else {
            return Err(self.error(Kind::UnaskedDeviceOutput));
        };
        let held = exporter.adopt(handle, len)?;
        if device != self.cfg.gpu {
            return Err(self.error(Kind::WrongGpu {
                device,
                runs_on: self.cfg.gpu,
            }));
        }
        Ok(Payload::Ipc(Arc::new(held)))
    }

    fn accept_segment(
        &self,
        out: Option<&str>,
        path: String,
        len: u64,
    ) -> Result<Payload, StageError> {
        let (Some(g), Some(expected)) = (&self.group, out) else {
            return Err(self.error(Kind::UnaskedSegment));
        };
        if path != expected {
            return Err(self.error(Kind::WrongSegment {
                path,
                expected: expected.to_string(),
            }));
        }
        let size = g
            .retain(&path, 1)
            .map_err(|e| self.error(Kind::Segment(e.to_string())))?;
        let seg = SegRef {
            group: g.clone(),
            name: path,
            len,
        };
        if size != len {
            return Err(self.error(Kind::SegmentSize {
                declared: len,
                holds: size,
            }));
        }
        Ok(Payload::Shm(Arc::new(seg)))
    }
}

/// How long a stage process whose connection broke gets to exit on its own.
const SETTLE: Duration = Duration::from_secs(2);

/// After a broken connection: waits (bounded) for the process to exit, so the next batch sees it
/// dead and restarts it; one that still runs with a broken socket is killed, for the same end.
async fn settle(sb: &mut Sandbox) {
    let deadline = Instant::now() + SETTLE;
    while sb.try_exited().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if sb.try_exited().is_none() {
        sb.kill().await;
    }
}
