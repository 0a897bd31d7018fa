//! Carrying out the scheduler's actions: start an invocation (creating its sandbox on a cold
//! start), move memory, destroy idle sandboxes; plus the timer task, prewarming and the gauges
//! read at scrape time. Everything that waits runs in its own task, never under the state lock.

use super::{Inner, InvokeError, InvokeOk, Metrics, QueueKind, State, Timing};
use crate::devices::BackendKind;
use crate::function::FunctionSpec;
use crate::protocol::ProtocolError;
use crate::sandbox::{Sandbox, SandboxRequest};
use sluice_core::{FunctionId, GpuId, SandboxId};
use sluice_policy::memory::Location;
use sluice_policy::queue::FlowState;
use sluice_policy::scheduler::{Action, Start};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl Inner {
    /// Runs actions outside the state lock.
    pub(super) fn execute(self: &Arc<Self>, actions: Vec<(QueueKind, Action)>) {
        for (q, action) in actions {
            match action {
                Action::Start(s) => {
                    tokio::spawn(run_start(self.clone(), q, s));
                }
                Action::Move(m) => self.count_move(m.bytes, m.to),
                Action::Destroy(sb) => {
                    if let Some(mut sandbox) = self.lock().idle.remove(&(q, sb)) {
                        tokio::spawn(async move { sandbox.kill().await });
                    }
                }
            }
        }
    }

    /// Memory moves. On simulated GPUs they are bookkeeping only; on real GPUs the memory shim
    /// of the sandbox carries them out (its control channel is part of the GPU-path work).
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

    fn spec(&self, st: &State, func: FunctionId) -> Option<Arc<FunctionSpec>> {
        st.specs.get(func.index()).cloned()
    }

    /// Environment that places a GPU sandbox on its device.
    fn device_env(&self, q: QueueKind, gpu: GpuId, spec: &FunctionSpec) -> Vec<(String, String)> {
        if q == QueueKind::Cpu {
            return vec![("CUDA_VISIBLE_DEVICES".into(), String::new())];
        }
        let mut env = vec![("SLUICE_GPU_INDEX".into(), gpu.0.to_string())];
        if self.devices.kind() == BackendKind::Simulated {
            env.push(("CUDA_VISIBLE_DEVICES".into(), String::new()));
            env.push(("SLUICE_SIMULATED_GPU".into(), "1".into()));
            return env;
        }
        env.push(("CUDA_VISIBLE_DEVICES".into(), gpu.0.to_string()));
        if self.cfg.gpu.mps {
            let d = self.cfg.scheduler.slots.tokens_per_gpu.max(1);
            env.push((
                "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE".into(),
                (100 / d).to_string(),
            ));
            if spec.resources.gpu_memory_mb > 0 {
                env.push((
                    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT".into(),
                    format!("0={}M", spec.resources.gpu_memory_mb),
                ));
            }
        }
        env
    }

    /// Creates and starts a sandbox; waits until it is ready.
    async fn create_sandbox(
        &self,
        q: QueueKind,
        sb: SandboxId,
        gpu: GpuId,
        spec: &FunctionSpec,
    ) -> Result<Sandbox, String> {
        let _ = sb;
        // Sandbox ids are per scheduler and restart at zero with the worker; processes, cgroups
        // and directories get a serial unique across queues, workers and restarts.
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.sandbox_root.join(format!("{}-{serial}", queue_tag(q)));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let req = SandboxRequest {
            id: serial,
            spec,
            dir,
            extra_env: self.device_env(q, gpu, spec),
        };
        let mut sandbox = self.launcher.spawn(req).await.map_err(|e| e.to_string())?;
        let timeout = Duration::from_millis(self.cfg.start_timeout_ms);
        if let Err(e) = sandbox.wait_ready(timeout).await {
            let msg = format!("{e}; stderr: {}", sandbox.stderr_tail());
            sandbox.kill().await;
            return Err(msg);
        }
        Ok(sandbox)
    }
}

fn queue_tag(q: QueueKind) -> &'static str {
    match q {
        QueueKind::Gpu => "gpu",
        QueueKind::Cpu => "cpu",
    }
}

/// Runs one dispatched invocation to completion and reports it to the scheduler.
async fn run_start(inner: Arc<Inner>, q: QueueKind, s: Start) {
    let dispatched = Instant::now();
    let (pending, spec, warm) = {
        let mut st = inner.lock();
        let pending = st.pending.remove(&s.inv.id.0);
        if let Some(p) = &pending {
            if let Some(n) = st.queued.get_mut(&p.func) {
                *n = n.saturating_sub(1);
            }
            st.queued_total = st.queued_total.saturating_sub(1);
        }
        let warm = if s.cold {
            None
        } else {
            st.idle.remove(&(q, s.sandbox))
        };
        (pending, inner.spec(&st, s.inv.func), warm)
    };
    for m in &s.moves {
        inner.count_move(m.bytes, m.to);
    }
    let (Some(pending), Some(spec)) = (pending, spec) else {
        return finish(&inner, q, &s, None, Duration::ZERO);
    };
    let queue_time = dispatched.duration_since(pending.arrived);
    let sandbox = match warm {
        Some(sb) => Ok(sb),
        None if !s.cold => Err(InvokeError::Internal("warm sandbox missing".into())),
        None => inner
            .create_sandbox(q, s.sandbox, s.gpu, &spec)
            .await
            .map_err(InvokeError::ColdStartFailed),
    };
    let mut sandbox = match sandbox {
        Ok(sb) => sb,
        Err(e) => {
            respond(&inner.metrics, &pending.func, pending.reply, Err(e));
            return fail(&inner, q, &s);
        }
    };
    let ready = Instant::now();
    if s.cold {
        inner.lock().sched(q).sandbox_ready(s.sandbox);
    }
    let timeout = Duration::from_millis(spec.timeout_ms);
    let call = sandbox
        .client()
        .invoke(pending.input, inner.cfg.max_response_bytes);
    let result = tokio::time::timeout(timeout, call).await;
    let done = Instant::now();
    let exec = done.duration_since(ready);
    let outcome = match result {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(ProtocolError::Status { status, body })) => {
            Err(InvokeError::FunctionError { status, body })
        }
        Ok(Err(ProtocolError::TooLarge { limit })) => Err(InvokeError::ResponseTooLarge(limit)),
        Ok(Err(e)) => {
            let detail = format!("{e}; stderr: {}", sandbox.stderr_tail());
            sandbox.kill().await;
            respond(
                &inner.metrics,
                &pending.func,
                pending.reply,
                Err(InvokeError::Crashed(detail)),
            );
            return fail(&inner, q, &s);
        }
        Err(_) => {
            sandbox.kill().await;
            respond(
                &inner.metrics,
                &pending.func,
                pending.reply,
                Err(InvokeError::Timeout(spec.timeout_ms)),
            );
            return fail(&inner, q, &s);
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
    let reply = outcome.map(|body| InvokeOk {
        body,
        timing,
        cold: s.cold,
    });
    respond(m, &pending.func, pending.reply, reply);
    finish(&inner, q, &s, Some(sandbox), exec);
}

fn respond(
    metrics: &Metrics,
    func: &str,
    reply: tokio::sync::oneshot::Sender<Result<InvokeOk, InvokeError>>,
    r: Result<InvokeOk, InvokeError>,
) {
    metrics.count(func, r.as_ref().map_or_else(InvokeError::outcome, |_| "ok"));
    let _ = reply.send(r);
}

/// The invocation finished and its sandbox is healthy: it goes back to the pool.
fn finish(inner: &Arc<Inner>, q: QueueKind, s: &Start, sandbox: Option<Sandbox>, exec: Duration) {
    let actions = {
        let mut st = inner.lock();
        let now = inner.now();
        match sandbox {
            Some(sb) => {
                st.idle.insert((q, s.sandbox), sb);
                let exec = sluice_core::Dur::from_micros(exec.as_micros() as u64);
                st.sched(q).finished(s.sandbox, s.inv.func, exec, now);
            }
            None => st.sched(q).sandbox_failed(s.sandbox, s.inv.func, now),
        }
        inner.poll(&mut st, q, now)
    };
    inner.execute(actions);
}

/// The sandbox is gone (failed start, crash, timeout).
fn fail(inner: &Arc<Inner>, q: QueueKind, s: &Start) {
    finish(inner, q, s, None, Duration::ZERO)
}

/// Wakes at the schedulers' next timer (TTL expiry, keep-alive) or when poked, and polls.
pub(super) async fn timer_loop(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let next = {
            let st = strong.lock();
            [st.gpu.next_timer(), st.cpu.next_timer()]
                .into_iter()
                .flatten()
                .min()
        };
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            Duration::from_micros(t.as_micros().saturating_sub(strong.now().as_micros()))
        });
        let timer = strong.timer.clone();
        drop(strong);
        let notified = timer.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notified => continue,
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let actions = {
            let mut st = strong.lock();
            let now = strong.now();
            let mut a = strong.poll(&mut st, QueueKind::Gpu, now);
            a.extend(strong.poll(&mut st, QueueKind::Cpu, now));
            a
        };
        strong.execute(actions);
    }
}

/// Starts up to `count` sandboxes of `name` ahead of demand.
pub(super) fn prewarm(inner: &Arc<Inner>, name: &str, count: u32) -> Result<u32, InvokeError> {
    let mut started = 0;
    let mut st = inner.lock();
    let Some(f) = st.functions.get(name) else {
        return Err(InvokeError::UnknownFunction(name.to_string()));
    };
    let (id, q) = (f.id, f.queue);
    let spec = inner
        .spec(&st, id)
        .ok_or_else(|| InvokeError::Internal("spec missing".into()))?;
    for _ in 0..count {
        let now = inner.now();
        let Some((sb, gpu)) = st.sched(q).prewarm(id, now) else {
            break;
        };
        started += 1;
        let (inner, spec) = (inner.clone(), spec.clone());
        tokio::spawn(async move {
            let created = inner.create_sandbox(q, sb, gpu, &spec).await;
            let mut st = inner.lock();
            match created {
                Ok(sandbox) => {
                    st.idle.insert((q, sb), sandbox);
                    let now = inner.now();
                    st.sched(q).prewarm_done(sb, now);
                }
                Err(e) => {
                    tracing::warn!("prewarm of {} failed: {e}", spec.name);
                    st.sched(q).forget_sandbox(sb);
                }
            }
        });
    }
    Ok(started)
}

/// Refreshes the gauges that mirror engine state.
pub(super) fn refresh_gauges(inner: &Inner) {
    let m = &inner.metrics;
    let samples = inner.devices.sample();
    let st = inner.lock();
    Metrics::set(&m.queue_length, "gpu", st.gpu.queued() as i64);
    Metrics::set(&m.queue_length, "cpu", st.cpu.queued() as i64);
    let (mut starting, mut idle, mut busy) = (0, 0, 0);
    for s in [&st.gpu, &st.cpu] {
        let (a, b, c) = s.pool().counts();
        (starting, idle, busy) = (starting + a, idle + b, busy + c);
    }
    Metrics::set(&m.sandboxes, "starting", starting as i64);
    Metrics::set(&m.sandboxes, "idle", idle as i64);
    Metrics::set(&m.sandboxes, "busy", busy as i64);
    let (mut active, mut throttled, mut inactive) = (0, 0, 0);
    for r in st.functions.values() {
        let sched = match r.queue {
            QueueKind::Gpu => &st.gpu,
            QueueKind::Cpu => &st.cpu,
        };
        match sched.flow_state(r.id) {
            Some(FlowState::Active) => active += 1,
            Some(FlowState::Throttled) => throttled += 1,
            Some(FlowState::Inactive) => inactive += 1,
            None => {}
        }
    }
    Metrics::set(&m.flows, "active", active);
    Metrics::set(&m.flows, "throttled", throttled);
    Metrics::set(&m.flows, "inactive", inactive);
    for (i, g) in inner.devices.gpus().iter().enumerate() {
        let label = super::metrics::Gpu {
            gpu: g.index.to_string(),
        };
        let s = samples.get(i).cloned().unwrap_or_default();
        m.gpu_util.get_or_create(&label).set(s.util);
        m.gpu_mem_used
            .get_or_create(&label)
            .set(s.memory_used_bytes as i64);
        m.gpu_mem_total
            .get_or_create(&label)
            .set(g.memory_bytes as i64);
        let resident = st.gpu.memory().resident(GpuId(i as u16));
        m.gpu_resident.get_or_create(&label).set(resident as i64);
    }
}
