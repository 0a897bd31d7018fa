//! Carrying out the scheduler's actions: start an invocation (creating its sandbox on a cold
//! start, or sending it to a sandbox that already runs others of its function), create a sandbox
//! bought ahead, move memory, destroy idle sandboxes. A crash or timeout of one invocation kills
//! its sandbox; any other invocation running in it then fails as crashed. A warm sandbox whose process exited while
//! idle is caught before anything is sent to it: the scheduler forgets it and the invocation
//! goes back to the head of its queue. Everything that waits runs in its own task, never under
//! the state lock. The timer task, prewarming and gauges are in `upkeep`.

use super::prestart::{put_back_if_dead, withdraw, Running};
use super::{Inner, InvokeError, InvokeOk, Invoked, Metrics, QueueKind, State, Timing};
use crate::devices::sandbox_env::{gpu_env, Placement};
use crate::devices::shim::{self, ShimControl};
use crate::devices::{BackendKind, MpsDaemon};
use crate::function::FunctionSpec;
use crate::logs::{InvocationLogs, INVOCATION_TAIL};
use crate::protocol::ProtocolError;
use crate::sandbox::{Output, Sandbox, SandboxRequest, StartError};
use sluice_core::{FunctionId, GpuId, SandboxId};
use sluice_policy::memory::{Location, MemMove};
use sluice_policy::scheduler::{Action, Start};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Inner {
    /// Runs actions outside the state lock.
    pub(super) fn execute(self: &Arc<Self>, actions: Vec<(QueueKind, Action)>) {
        for (q, action) in actions {
            match action {
                Action::Start(s) => {
                    tokio::spawn(run_start(self.clone(), q, s));
                }
                Action::Move(m) => {
                    if let Some(moving) = self.move_memory(q, m) {
                        tokio::spawn(moving);
                    }
                }
                Action::Destroy(sb) => {
                    if let Some(mut sandbox) = self.lock().live.remove(&(q, sb)) {
                        tokio::spawn(async move { sandbox.kill().await });
                    }
                }
                Action::Reject(r) => self.reject(r),
                Action::Create(c) => {
                    self.metrics.sandboxes_bought.inc();
                    let spec = self.spec(&self.lock(), c.func);
                    match spec {
                        Some(spec) => super::upkeep::create_ahead(self, q, c.sandbox, c.gpu, spec),
                        // Deleted meanwhile: nothing to create; a line that formed behind it
                        // goes back to the queue.
                        None => {
                            let actions = {
                                let mut st = self.lock();
                                let now = self.now();
                                st.sched(q).forget_sandbox(c.sandbox, now);
                                self.poll(&mut st, q, now)
                            };
                            self.execute(actions);
                        }
                    }
                }
            }
        }
    }

    /// Memory moves: always counted; on real GPUs with `gpu.shim` on, carried out by the
    /// sandbox's managed-memory shim (`PREFETCH device|host` on its socket), returned as a future
    /// to await or spawn. On simulated GPUs, and for a sandbox that never used CUDA (no shim
    /// socket), they stay bookkeeping.
    fn move_memory(
        &self,
        q: QueueKind,
        m: MemMove,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.count_move(m.bytes, m.to);
        if q != QueueKind::Gpu || self.devices.kind() != BackendKind::Nvml || !self.cfg.gpu.shim {
            return None;
        }
        // Pinned: a function that replaced its shim socket with a symlink gets no moves.
        let pinned = self
            .lock()
            .live
            .get(&(q, m.sandbox))?
            .pin(shim::SOCKET_NAME)
            .ok();
        let control = pinned
            .as_ref()
            .map(|(_, path)| ShimControl::new(path.clone(), shim::DEFAULT_TIMEOUT));
        Some(async move {
            // A sandbox that never used CUDA has no shim socket.
            let (Some(control), Some(_held)) = (control, pinned) else {
                return;
            };
            match control.prefetch(m.to).await {
                Ok(c) => {
                    tracing::debug!(sandbox = ?m.sandbox, to = ?m.to, bytes = c.bytes, ms = ?c.ms, "shim prefetch")
                }
                Err(e) => {
                    tracing::warn!(sandbox = ?m.sandbox, to = ?m.to, "memory move failed: {e}")
                }
            }
        })
    }

    fn count_move(&self, bytes: u64, to: Location) {
        let dir = match to {
            Location::Device => "to_device",
            Location::Host => "to_host",
        };
        self.metrics
            .bytes_moved
            .get_or_create(&super::metrics::Named { name: dir.into() })
            .inc_by(bytes);
    }

    pub(super) fn spec(&self, st: &State, func: FunctionId) -> Option<Arc<FunctionSpec>> {
        st.specs.get(func.index()).cloned()
    }

    /// Environment that places GPU sandbox `id` on its device, and the host files it needs
    /// for that (the shim library).
    fn device_env(
        &self,
        q: QueueKind,
        gpu: GpuId,
        spec: &FunctionSpec,
        id: u64,
    ) -> (Vec<(String, String)>, Vec<PathBuf>) {
        let no_device = || {
            (
                vec![("CUDA_VISIBLE_DEVICES".into(), String::new())],
                Vec::new(),
            )
        };
        if q == QueueKind::Cpu {
            return no_device();
        }
        let Some(info) = self.devices.gpus().get(usize::from(gpu.0)) else {
            return no_device();
        };
        let g = &self.cfg.gpu;
        let library = (g.shim && self.devices.kind() == BackendKind::Nvml)
            .then(|| shim::locate_library(g.shim_path.as_deref()))
            .flatten();
        if g.shim && library.is_none() && self.devices.kind() == BackendKind::Nvml {
            static MISSING: std::sync::Once = std::sync::Once::new();
            MISSING.call_once(|| {
                tracing::warn!(
                    "gpu.shim is on but {} is not found: sandboxes run without it",
                    shim::LIBRARY_NAME
                )
            });
        }
        let pipe = MpsDaemon::pipe_dir_under(&self.cfg.data_dir.join("mps"));
        let inside = self.launcher.inner_socket_dir(id);
        let env = gpu_env(&Placement {
            backend: self.devices.kind(),
            gpu: info,
            sm_share: 100 / self.cfg.scheduler.slots.tokens_per_gpu.clamp(1, 100),
            gpu_memory_mb: spec.resources.gpu_memory_mb,
            mps_pipe_dir: g.mps.then_some(pipe.as_path()),
            shim: library.as_deref().map(|l| (l, inside.as_path())),
        });
        (env, library.into_iter().collect())
    }

    /// Creates and starts a sandbox whose output feeds its function's logs; waits until it is
    /// ready. A sandbox that does not start is logged with why (and a hint, when its stderr
    /// gives one).
    pub(super) async fn create_sandbox(
        &self,
        q: QueueKind,
        sb: SandboxId,
        gpu: GpuId,
        spec: &FunctionSpec,
    ) -> Result<Sandbox, StartError> {
        let _ = sb;
        // Sandbox ids are per scheduler and restart at zero with the worker; processes, cgroups
        // and directories get a serial unique across queues, workers and restarts.
        let serial = super::next_serial();
        let (extra_env, read_only) = self.device_env(q, gpu, spec, serial);
        // MPS serves one user's clients at a time: GPU sandboxes then share one user.
        let user = (q == QueueKind::Gpu)
            .then(|| self.mps_user.clone())
            .flatten();
        let req = SandboxRequest {
            id: serial,
            spec,
            extra_env,
            read_only,
            user,
        };
        tracing::debug!(queue = queue_tag(q), serial, "starting a sandbox");
        let timeout = Duration::from_millis(self.cfg.start_timeout_ms);
        let sink = self.logs.sink(&spec.name, serial);
        let started = Sandbox::start_ready(&self.launcher, req, timeout, Some(sink)).await;
        if let Err(e) = &started {
            let hint = e.hint().map(|h| format!("; hint: {h}")).unwrap_or_default();
            let why = crate::sandbox::one_line(&e.to_string());
            tracing::warn!(function = %spec.name, "the function failed to start: {why}{hint}");
        }
        started
    }
}

fn queue_tag(q: QueueKind) -> &'static str {
    match q {
        QueueKind::Gpu => "gpu",
        QueueKind::Cpu => "cpu",
    }
}

/// Runs one dispatched invocation to completion and reports it to the scheduler. Several of
/// these tasks may run in one sandbox at once (a function with `concurrency` > 1): each sends
/// its request through its own clone of the sandbox's client, while the process itself stays in
/// `State.live`.
async fn run_start(inner: Arc<Inner>, q: QueueKind, s: Start) {
    let dispatched = Instant::now();
    if !s.cold && put_back_if_dead(&inner, q, &s).await {
        return;
    }
    let _running = Running::new(&inner);
    let (pending, spec, client) = {
        let mut st = inner.lock();
        let pending = st.take_pending(s.inv.id.0);
        let client =
            (st.live.get(&(q, s.sandbox))).map(|sb| (sb.client().clone(), sb.output().clone()));
        (pending, inner.spec(&st, s.inv.func), client)
    };
    for &m in &s.moves {
        if let Some(moving) = inner.move_memory(q, m) {
            // The starting sandbox's own memory is on the device before it runs; other
            // sandboxes' memory moves in the background.
            if m.sandbox == s.sandbox && m.to == Location::Device {
                moving.await;
            } else {
                tokio::spawn(moving);
            }
        }
    }
    let (Some(mut pending), Some(spec)) = (pending, spec) else {
        // Nothing to run (cannot happen): give back what the start took, and leave a running
        // sandbox alone — other invocations may be using it.
        if s.cold {
            fail_sandbox(&inner, q, &s).await;
        } else {
            finish(&inner, q, &s, Duration::ZERO);
        }
        return;
    };
    let queue_time = dispatched.duration_since(pending.arrived);
    let client = match (s.cold, client) {
        (false, Some(client)) => Ok(client),
        (false, None) => Err(InvokeError::Crashed(GONE.to_string())),
        (true, _) => match inner.create_sandbox(q, s.sandbox, s.gpu, &spec).await {
            Ok(sandbox) => {
                let client = (sandbox.client().clone(), sandbox.output().clone());
                let (go, actions) = {
                    let mut st = inner.lock();
                    st.live.insert((q, s.sandbox), sandbox);
                    let go = (!st.sched(q).sandbox_ready(s.sandbox)).then(|| {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        st.parked.insert((q, s.inv.id), tx);
                        rx
                    });
                    // It may take more invocations now, and one fewer sandbox is starting.
                    (go, inner.poll(&mut st, q, inner.now()))
                };
                inner.execute(actions);
                // Ready, but every token of its device is busy: wait for one.
                let waited = match go {
                    Some(go) => go.await.is_ok(),
                    None => true,
                };
                if waited {
                    Ok(client)
                } else {
                    Err(InvokeError::Internal(
                        "the worker stopped while the invocation waited for a token".into(),
                    ))
                }
            }
            Err(e) => {
                let hint = e.hint().map(|h| format!("; hint: {h}")).unwrap_or_default();
                Err(InvokeError::ColdStartFailed(format!("{e}{hint}")))
            }
        },
    };
    let (client, output) = match client {
        Ok(c) => c,
        Err(e) => {
            fail_sandbox(&inner, q, &s).await;
            return respond(&inner.metrics, &pending.func, pending.reply, Err(e));
        }
    };
    if let Some(hook) = pending.on_start.take() {
        if let Err(why) = hook().await {
            withdraw(&inner, q, &s);
            let err = Err(InvokeError::Withdrawn(why));
            return respond(&inner.metrics, &pending.func, pending.reply, err);
        }
    }
    let ready = Instant::now();
    // A cold invocation's output includes its sandbox's start.
    let logs_from = pending
        .logs
        .then(|| if s.cold { 0 } else { output.position() });
    let timeout = Duration::from_millis(spec.timeout_ms);
    let call = client.invoke(pending.input, inner.cfg.max_response_bytes);
    let result = tokio::time::timeout(timeout, call).await;
    let done = Instant::now();
    let exec = done.duration_since(ready);
    let logs = match logs_from {
        Some(from) => Some(invocation_logs(&output, from).await),
        None => None,
    };
    let reply = pending.reply;
    let outcome = match result {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(ProtocolError::Status { status, body })) => {
            Err(InvokeError::FunctionError { status, body })
        }
        Ok(Err(ProtocolError::TooLarge { limit })) => Err(InvokeError::ResponseTooLarge(limit)),
        Ok(Err(e)) => {
            let detail = match fail_sandbox(&inner, q, &s).await {
                Some(tail) => format!("{e}; stderr: {tail}"),
                None => format!("{e}; {GONE}"),
            };
            let err = Err(InvokeError::Crashed(detail));
            return respond_logged(&inner.metrics, &pending.func, reply, err, logs);
        }
        Err(_) => {
            fail_sandbox(&inner, q, &s).await;
            let err = Err(InvokeError::Timeout(spec.timeout_ms));
            return respond_logged(&inner.metrics, &pending.func, reply, err, logs);
        }
    };
    let timing = Timing {
        queue_ms: Timing::ms(queue_time),
        cold_start_ms: if s.cold {
            Timing::ms(ready.duration_since(dispatched))
        } else {
            0.0
        },
        exec_ms: Timing::ms(exec),
        total_ms: Timing::ms(done.duration_since(pending.arrived)),
    };
    let m = &inner.metrics;
    m.observe(&pending.func, "queue", queue_time.as_secs_f64());
    if s.cold {
        m.observe(
            &pending.func,
            "cold_start",
            ready.duration_since(dispatched).as_secs_f64(),
        );
    }
    m.observe(&pending.func, "execution", exec.as_secs_f64());
    m.observe(
        &pending.func,
        "end_to_end",
        done.duration_since(pending.arrived).as_secs_f64(),
    );
    let answer = outcome.map(|body| InvokeOk {
        body,
        timing,
        cold: s.cold,
    });
    respond_logged(m, &pending.func, reply, answer, logs);
    finish(&inner, q, &s, exec);
}

/// What the function wrote from offset `from` until now, once its pipes are read.
async fn invocation_logs(output: &Output, from: u64) -> InvocationLogs {
    output.settle().await;
    let e = output.excerpt(from, INVOCATION_TAIL);
    InvocationLogs {
        text: e.text,
        truncated: e.truncated,
    }
}

/// Why an invocation lost its sandbox without its own request failing first.
const GONE: &str = "its sandbox was stopped after another invocation in it crashed or timed out";

pub(super) fn respond(
    metrics: &Metrics,
    func: &str,
    reply: tokio::sync::oneshot::Sender<Invoked>,
    r: Result<InvokeOk, InvokeError>,
) {
    respond_logged(metrics, func, reply, r, None)
}

/// [`respond`] with the function's output while it ran.
fn respond_logged(
    metrics: &Metrics,
    func: &str,
    reply: tokio::sync::oneshot::Sender<Invoked>,
    result: Result<InvokeOk, InvokeError>,
    logs: Option<InvocationLogs>,
) {
    let outcome = result.as_ref().map_or_else(InvokeError::outcome, |_| "ok");
    metrics.count(func, outcome);
    let _ = reply.send(Invoked { result, logs });
}

/// The invocation finished and its sandbox is healthy: the scheduler frees its token (and,
/// after the sandbox's last running invocation, returns the sandbox to the warm pool).
fn finish(inner: &Arc<Inner>, q: QueueKind, s: &Start, exec: Duration) {
    let actions = {
        let mut st = inner.lock();
        let now = inner.now();
        let exec = sluice_core::Dur::from_micros(exec.as_micros() as u64);
        st.sched(q).finished(s.sandbox, s.inv.func, exec, now);
        inner.poll(&mut st, q, now)
    };
    inner.execute(actions);
}

/// The invocation's sandbox failed (it could not start, crashed, or this invocation timed out):
/// the scheduler forgets it and frees this invocation's token, then the process is killed.
/// Other invocations running in it fail as their requests break, and each reports itself here.
/// Returns the stderr tail if this call was the one that stopped the process.
async fn fail_sandbox(inner: &Arc<Inner>, q: QueueKind, s: &Start) -> Option<String> {
    let (sandbox, actions) = {
        let mut st = inner.lock();
        let now = inner.now();
        let sandbox = st.live.remove(&(q, s.sandbox));
        st.sched(q).sandbox_failed(s.sandbox, s.inv.func, now);
        (sandbox, inner.poll(&mut st, q, now))
    };
    inner.execute(actions);
    let mut sandbox = sandbox?;
    let tail = sandbox.stderr_tail();
    sandbox.kill().await;
    Some(tail)
}
