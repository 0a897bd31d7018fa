//! The ideal bound printed beside every run: the same arrivals on the same devices with every
//! invocation warm and its memory resident (no cold start, nothing to move), dispatched first
//! come, first served onto the same D tokens per device and the same concurrency model
//! (work-conserving: a token never idles while an invocation waits), placed by the same policy
//! except that a warm device past its load bound is not preferred (every device is warm).
//!
//! It is the latency the policies would reach if locality cost nothing. It is a reference, not a
//! lower bound for every order: shortest-first orders can beat its mean on a mixed workload, and
//! a policy's ratio to it (`mean/ideal`, `p99/ideal`) says how much cold starts, memory movement
//! and queueing order cost together.

use crate::device::DeviceModel;
use crate::engine;
use crate::record::RunResult;
use crate::workload::Workload;
use sluice_policy::scheduler::{ConfigError, SchedulerConfig};

/// The name the ideal run reports as its policy.
pub const NAME: &str = "ideal";

/// Replays `workload` on `gpus` devices of `model` with every invocation warm and resident,
/// FCFS, with `cfg`'s tokens per device.
pub fn run(
    workload: &Workload,
    cfg: &SchedulerConfig,
    model: &DeviceModel,
    gpus: usize,
) -> Result<RunResult, ConfigError> {
    let mut warm = workload.clone();
    for f in &mut warm.functions {
        f.cold_start = sluice_core::Dur::ZERO;
        f.gpu_mem_bytes = 0;
    }
    let mut cfg = SchedulerConfig {
        policy: "fcfs".into(),
        slots: cfg.slots.clone(),
        ..SchedulerConfig::default()
    };
    // Its sandboxes start in no time: the invocation that creates one keeps its token, so each
    // runs in the order it was dispatched.
    cfg.slots.cold_start_holds_token = true;
    // A warm sandbox is worth nothing where every start is warm: no invocation joins a busy
    // device past its load bound for it (the hint slack), it goes to a device with room.
    cfg.placement.hint_slack = 0.0;
    // Nor from measured samples.
    let model = DeviceModel {
        cold_start_samples_ms: Vec::new(),
        ..model.clone()
    };
    let mut r = engine::run(&warm, &cfg, &model, gpus, &mut |_| {})?;
    r.policy = NAME.to_string();
    // Its sandboxes start in no time: none of them is a cold start.
    r.cold_starts = 0;
    r.cold_causes = None;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Arrival, FunctionProfile};
    use sluice_core::{Dur, FunctionId, Time};

    #[test]
    fn the_ideal_pays_no_cold_start_and_moves_nothing() {
        let f = FunctionProfile {
            name: "f".into(),
            class: "c".into(),
            gpu_warm: Dur::from_millis(10),
            cpu_warm: Dur::from_millis(10),
            cold_start: Dur::from_secs(3),
            gpu_mem_bytes: 1 << 30,
        };
        let w = Workload {
            name: "w".into(),
            functions: vec![f],
            arrivals: (0..4)
                .map(|i| Arrival {
                    at: Time::from_micros(i * 1_000),
                    func: FunctionId(0),
                })
                .collect(),
        };
        let r = run(&w, &SchedulerConfig::default(), &DeviceModel::default(), 1).unwrap();
        assert_eq!(r.policy, "ideal");
        assert_eq!(
            (r.bytes_to_device, r.bytes_to_host, r.cold_starts),
            (0, 0, 0)
        );
        assert!(r.records.iter().all(|x| x.latency() < Dur::from_millis(40)));
        let real = engine::run(
            &w,
            &SchedulerConfig::default(),
            &DeviceModel::default(),
            1,
            &mut |_| {},
        )
        .unwrap();
        assert!(real.records.iter().map(|x| x.latency()).max() > Some(Dur::from_secs(3)));
    }
}
