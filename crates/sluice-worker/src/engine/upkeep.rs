//! Work beside the invocations: the timer task that polls the schedulers when a timer is due,
//! prewarming sandboxes ahead of demand, and the gauges refreshed at scrape time.

use super::{Inner, InvokeError, Metrics, QueueKind};
use crate::function::FunctionSpec;
use sluice_core::{GpuId, SandboxId};
use sluice_policy::queue::FlowState;
use std::sync::{Arc, Weak};
use std::time::Duration;

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

/// Feeds each real GPU's utilisation to the scheduler's utilisation gate once a second (and
/// polls, since a lower reading may let a waiting invocation start). Simulated GPUs have no
/// readings, so the loop does not run for them.
pub(super) async fn sample_loop(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let sampler = strong.clone();
        let Ok(samples) = tokio::task::spawn_blocking(move || sampler.devices.sample()).await
        else {
            continue;
        };
        let actions = {
            let mut st = strong.lock();
            for (i, s) in samples.iter().enumerate() {
                st.gpu.set_util(GpuId(i as u16), s.util);
            }
            let now = strong.now();
            strong.poll(&mut st, QueueKind::Gpu, now)
        };
        strong.execute(actions);
    }
}

/// Starts up to `count` sandboxes of `name` ahead of demand, after the memory moves that make
/// room for them.
pub(super) fn prewarm(inner: &Arc<Inner>, name: &str, count: u32) -> Result<u32, InvokeError> {
    let mut st = inner.lock();
    let Some(f) = st.functions.get(name) else {
        return Err(InvokeError::UnknownFunction(name.to_string()));
    };
    let (id, q) = (f.id, f.queue);
    let spec = inner
        .spec(&st, id)
        .ok_or_else(|| InvokeError::Internal("spec missing".into()))?;
    let (mut room, mut created) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let now = inner.now();
        let Some(sb) = st.sched(q).prewarm(id, now, &mut room) else {
            break;
        };
        created.push(sb);
    }
    drop(st);
    inner.execute(room.into_iter().map(|a| (q, a)).collect());
    for &(sb, gpu) in &created {
        create_ahead(inner, q, sb, gpu, spec.clone());
    }
    Ok(created.len() as u32)
}

/// Creates sandbox `sb` of `spec` on `gpu`, which the scheduler counted as starting with no
/// invocation waiting for it (a prewarm, or a sandbox it bought ahead), and reports it ready, or
/// gone if it could not be created.
pub(super) fn create_ahead(
    inner: &Arc<Inner>,
    q: QueueKind,
    sb: SandboxId,
    gpu: GpuId,
    spec: Arc<FunctionSpec>,
) {
    let inner = inner.clone();
    tokio::spawn(async move {
        let created = inner.create_sandbox(q, sb, gpu, &spec).await;
        let actions = {
            let mut st = inner.lock();
            let now = inner.now();
            match created {
                Ok(sandbox) => {
                    st.live.insert((q, sb), sandbox);
                    st.sched(q).prewarm_done(sb, now);
                }
                // `create_sandbox` logged why.
                Err(_) => st.sched(q).forget_sandbox(sb, now),
            }
            // A creation slot is free again and perhaps a warm sandbox is there: what
            // waited for either may start now.
            inner.poll(&mut st, q, now)
        };
        inner.execute(actions);
    });
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
    let mut causes = st.gpu.cold_causes();
    causes.add(&st.cpu.cold_causes());
    m.mirror_cold_causes(&causes);
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
        m.gpu_processes
            .get_or_create(&label)
            .set(i64::from(s.processes));
    }
}
