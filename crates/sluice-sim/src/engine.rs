//! The discrete-event engine: a virtual clock replaying a [`Workload`] through the policy layer's
//! [`Scheduler`](sluice_policy::scheduler::Scheduler) (unchanged) on the [`DeviceModel`],
//! producing a [`RunResult`].
//!
//! Events are arrivals (read in order from the workload) and the worker's own events
//! ([`Node`]: execution starts, completions, scheduler timers). All events at one instant are
//! applied before the scheduler is polled once for that instant. With a `max_queue` bound
//! ([`RunOptions`]) an arrival whose predicted queueing delay exceeds it is rejected, by the
//! worker's own admission rule: the scheduler's
//! [`predict_wait`](sluice_policy::scheduler::Scheduler::predict_wait) against the bound
//! ([`sluice_policy::admission::decide`]). The cluster engine ([`crate::cluster`]) steps many
//! [`Node`]s under one clock the same way.

mod node;

pub use node::{LocalId, Node};

use crate::device::DeviceModel;
use crate::record::RunResult;
use crate::workload::Workload;
use sluice_core::{Dur, InvocationId, Time};
use sluice_policy::scheduler::SchedulerConfig;

/// Options of one run beyond the scheduler's configuration.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// Reject an arrival whose predicted queueing delay exceeds this (`None`: admit all).
    pub max_queue: Option<Dur>,
    /// Sandboxes per function created before the first arrival (see
    /// [`PrewarmOptions`](crate::config::PrewarmOptions)).
    pub prewarm: u32,
}

/// Replays `workload` under `cfg` (the policy named in `cfg.policy`) on `gpus` modelled devices.
/// `progress` is called with the number of arrivals replayed so far, now and then.
pub fn run(
    workload: &Workload,
    cfg: &SchedulerConfig,
    model: &DeviceModel,
    gpus: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<RunResult, sluice_policy::scheduler::ConfigError> {
    run_with(workload, cfg, model, gpus, RunOptions::default(), progress)
}

/// [`run`] with [`RunOptions`].
pub fn run_with(
    workload: &Workload,
    cfg: &SchedulerConfig,
    model: &DeviceModel,
    gpus: usize,
    opts: RunOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<RunResult, sluice_policy::scheduler::ConfigError> {
    let prewarm = opts.prewarm;
    let mut node = Node::new(&workload.functions, cfg, model, gpus, opts)?;
    node.register_all();
    node.prewarm_all(prewarm);
    let arrivals = &workload.arrivals;
    // One record per arrival: reserved once, not regrown (and copied) as the run goes.
    node.records_mut().reserve_exact(arrivals.len());
    let mut next = 0usize;
    loop {
        let t_arrival = arrivals.get(next).map(|a| a.at);
        let now = match (t_arrival, node.next_event()) {
            (Some(a), Some(e)) => a.min(e),
            (Some(a), None) => a,
            (None, Some(e)) => e,
            (None, None) => break,
        };
        while let Some(a) = arrivals.get(next).filter(|a| a.at == now) {
            node.arrive(InvocationId(next as u64), a.func, now);
            next += 1;
            if next.is_multiple_of(65_536) {
                progress(next as u64);
            }
        }
        node.step(now);
    }
    progress(next as u64);
    let records = std::mem::take(node.records_mut());
    let makespan = records
        .iter()
        .map(|r| r.finished)
        .max()
        .unwrap_or(Time::ZERO)
        .max(workload.arrivals.last().map_or(Time::ZERO, |a| a.at))
        .since(Time::ZERO);
    Ok(RunResult {
        policy: cfg.policy.clone(),
        workload: workload.name.clone(),
        functions: workload.functions.iter().map(|f| f.name.clone()).collect(),
        invocations: workload.arrivals.len() as u64,
        records,
        gpus,
        makespan,
        gpu_busy: node.gpu_busy(),
        cold_starts: node.cold_starts(),
        cold_causes: Some(node.cold_causes()),
        bytes_to_device: node.bytes_moved().0,
        bytes_to_host: node.bytes_moved().1,
        offered_util: workload.offered_util(gpus),
        rejected: node.rejected(),
    })
}

#[cfg(test)]
mod tests;
