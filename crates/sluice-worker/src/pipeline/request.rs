//! What a client sends to deploy a pipeline, and how it becomes a plan. With a profile (the CSV
//! `sluice profile` writes) the Camelot planner places the stages: `min-resources` at the
//! spec's expected load by default, `max-load` on request, or any baseline by name. Without one
//! there is nothing to predict from, so every stage gets one instance on GPU 0 with an equal SM
//! share and its largest batch (policy `unprofiled`), which keeps neighbours co-located.
//!
//! It also reads the device hand-off switch of a stage (`SLUICE_DEVICE_HANDOFF` in the stage's
//! `env`: `auto`, `cuda-ipc` or `off`), a test and expert setting described in `docs/handoff.md`.

use super::error::{RequestError, StageError, StageErrorKind};
use serde::{Deserialize, Serialize};
use sluice_pipeline::plan::{Instance, Prediction, FULL_SHARE};
use sluice_pipeline::spec::StageSpec;
use sluice_pipeline::{ControllerConfig, PipelineSpec, Plan};
use std::path::PathBuf;
use std::str::FromStr;

/// The key, in a stage's `env`, of its [`DeviceHandoff`] switch.
pub const DEVICE_HANDOFF_ENV: &str = "SLUICE_DEVICE_HANDOFF";

/// Whether a stage's instances hand their outputs over as CUDA IPC handles (when the stage
/// accepts `cuda-ipc` and a consumer accepting it runs on the same GPU).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceHandoff {
    /// On real GPUs (the NVML backend) only.
    #[default]
    Auto,
    /// On simulated GPUs as well: for tests, and for stages that fake device memory.
    CudaIpc,
    /// Never: shared memory or inline.
    Off,
}

/// A [`DEVICE_HANDOFF_ENV`] value that is none of the three.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{DEVICE_HANDOFF_ENV} must be \"auto\", \"cuda-ipc\" or \"off\", not {0:?}")]
pub struct BadSwitch(pub String);

impl FromStr for DeviceHandoff {
    type Err = BadSwitch;

    fn from_str(s: &str) -> Result<Self, BadSwitch> {
        match s {
            "auto" => Ok(DeviceHandoff::Auto),
            "cuda-ipc" => Ok(DeviceHandoff::CudaIpc),
            "off" => Ok(DeviceHandoff::Off),
            other => Err(BadSwitch(other.to_string())),
        }
    }
}

impl DeviceHandoff {
    /// The switch of `stage` (default `auto`).
    pub fn of(stage: &StageSpec) -> Result<DeviceHandoff, StageError> {
        stage
            .env
            .get(DEVICE_HANDOFF_ENV)
            .map_or(Ok(DeviceHandoff::Auto), |v| v.parse())
            .map_err(|e| StageError::new(&stage.name, StageErrorKind::BadSwitch(e.to_string())))
    }
}

/// A deploy (or update) request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The pipeline: its name, latency target, load and stages.
    pub spec: PipelineSpec,
    /// Directory the stages' relative paths resolve against (their working directory).
    pub base_dir: PathBuf,
    /// Stage profiles, CSV (`model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb`).
    #[serde(default)]
    pub profile_csv: Option<String>,
    /// Planner policy; default `min-resources` when the spec has a load, else `max-load`.
    #[serde(default)]
    pub policy: Option<String>,
    /// GPUs the plan may use (default: all of the worker's).
    #[serde(default)]
    pub gpus: Option<u32>,
    /// Load to plan for (default: the spec's `load_rps`).
    #[serde(default)]
    pub load_rps: Option<f64>,
    /// Re-planning thresholds (default: `ControllerConfig::default()`).
    #[serde(default)]
    pub controller: Option<ControllerConfig>,
    /// Whether and how far the worker re-plans from measured load.
    #[serde(default)]
    pub autoscale: Autoscale,
}

/// A pipeline's autoscaling setting. On by default: sustained high load or a missed target
/// re-plans for the most load the GPUs carry (`max-load`); sustained low load re-plans for fewer
/// resources (`min-resources`), but never for less than the floor, which defaults to the load the
/// pipeline was deployed for, so a pipeline created for 2 req/s stays ready for 2 req/s when idle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Autoscale {
    /// Re-plan from measured load and latency (needs a profile).
    pub enabled: bool,
    /// Least load a re-plan is made for, requests/s (default: the deployed load).
    pub min_load_rps: Option<f64>,
}

impl Default for Autoscale {
    fn default() -> Self {
        Autoscale {
            enabled: true,
            min_load_rps: None,
        }
    }
}

impl DeployRequest {
    /// Checks what can be checked without planning.
    pub fn validate(&self) -> Result<(), RequestError> {
        self.spec.validate()?;
        if !self.base_dir.is_absolute() {
            return Err(RequestError::RelativeBaseDir(self.base_dir.clone()));
        }
        for s in &self.spec.stages {
            if s.command.is_empty() && s.image.is_none() {
                return Err(StageError::new(&s.name, StageErrorKind::NoCommand).into());
            }
            if let Some(image) = &s.image {
                crate::images::ImageRef::from(image.clone())
                    .wanted()
                    .map_err(|(field, why)| {
                        StageError::new(
                            &s.name,
                            StageErrorKind::BadImage(format!("{field}: {why}")),
                        )
                    })?;
            }
            DeviceHandoff::of(s)?;
        }
        if let Some(c) = &self.controller {
            c.validate()?;
        }
        if self.gpus == Some(0) {
            return Err(RequestError::Range("gpus must be at least 1".into()));
        }
        for (field, value) in [
            ("load_rps", self.load_rps),
            ("autoscale.min_load_rps", self.autoscale.min_load_rps),
        ] {
            if let Some(l) = value.filter(|l| !(l.is_finite() && *l >= 0.0)) {
                return Err(RequestError::Range(format!(
                    "{field} must be >= 0, got {l}"
                )));
            }
        }
        Ok(())
    }

    /// The least load autoscaling plans for: the configured floor, else the deployed load.
    pub fn load_floor(&self) -> f64 {
        self.autoscale.min_load_rps.unwrap_or_else(|| self.load())
    }

    /// The load the plan is made for.
    pub fn load(&self) -> f64 {
        self.load_rps.unwrap_or(self.spec.load_rps)
    }

    /// Plans the deployment on at most `available` GPUs.
    pub fn plan(&self, available: u32) -> Result<Plan, RequestError> {
        self.validate()?;
        let gpus = self.gpus.unwrap_or(available);
        if gpus > available {
            return Err(RequestError::TooManyGpus {
                asked: gpus,
                available,
            });
        }
        match &self.profile_csv {
            None => Ok(unprofiled(&self.spec, gpus)),
            Some(csv) => super::control::plan_with_profile(self, csv, gpus, None),
        }
    }
}

/// One instance per stage on GPU 0, equal shares, largest batches.
pub fn unprofiled(spec: &PipelineSpec, gpus: u32) -> Plan {
    let n = spec.stages.len() as u32;
    let share = (FULL_SHARE / n).max(1);
    let instances = spec
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| Instance {
            stage: i,
            gpu: 0,
            sm_share: share,
            batch: s.max_batch,
            memory_mb: s.memory_mb,
        })
        .collect();
    Plan {
        pipeline: spec.name.clone(),
        policy: "unprofiled".into(),
        gpus,
        instances,
        predicted: Prediction::default(),
        explain: vec![
            "no profile given: one instance per stage on GPU 0, equal SM shares, largest batches"
                .into(),
        ],
    }
}
