//! Placement plans: for each stage, its instances with GPU, SM share, batch size and memory, plus
//! what the planner predicted. This module owns the plan's shape and the hard constraints every
//! plan must meet whatever policy made it (each stage served, per-GPU SM share ≤ 100%, memory ≤
//! capacity, batch ≤ the stage's max batch); bandwidth limits need the contention model and are
//! checked by the planner.

use crate::cluster::Cluster;
use crate::spec::PipelineSpec;
use serde::{Deserialize, Serialize};

/// SM share of a whole GPU, in percent.
pub const FULL_SHARE: u32 = 100;

/// One running copy of a stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Index of the stage in the spec.
    pub stage: usize,
    /// GPU index, `0..cluster.count`.
    pub gpu: u32,
    /// SM share in percent (1..=100); 100 under time-sharing.
    pub sm_share: u32,
    /// Batch size the instance runs at (≤ the stage's max batch).
    pub batch: u32,
    /// Memory held, MB.
    pub memory_mb: u64,
}

/// What the planner expects of a plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Highest load (requests/s) with predicted p99 within the target.
    pub capacity_rps: f64,
    /// The load the p99 below is predicted at.
    pub load_rps: f64,
    /// Predicted end-to-end p99 at `load_rps`, ms.
    pub p99_ms: f64,
    /// Sum of SM shares over all instances, in GPUs (1.0 = one whole GPU).
    pub gpus_used: f64,
}

/// A placement plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Name of the pipeline spec the plan places.
    pub pipeline: String,
    /// The policy that made it (`max-load`, `min-resources`, `even-split`, …).
    pub policy: String,
    /// GPUs the plan was made for (the cluster's `count`); instances use GPUs `0..gpus`.
    pub gpus: u32,
    /// Every running copy of every stage; each stage has at least one.
    pub instances: Vec<Instance>,
    /// The planner's prediction for this placement.
    pub predicted: Prediction,
    /// Why the planner chose this: one line per decision, for `--explain`.
    #[serde(default)]
    pub explain: Vec<String>,
}

/// A broken hard constraint.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Violation {
    /// The named stage has no instance.
    #[error("stage {0:?} has no instance")]
    Unserved(String),
    /// Instance (index into `instances`) names a stage index past the spec's stages.
    #[error("instance {0} names stage index {1}, which does not exist")]
    BadStage(usize, usize),
    /// Instance is on a GPU index ≥ the cluster's GPU count (instance, GPU, count).
    #[error("instance {0} is on GPU {1}, but there are only {2}")]
    BadGpu(usize, u32, u32),
    /// Instance has an SM share (percent) of 0 or over 100.
    #[error("instance {0} has SM share {1}%, outside 1..=100")]
    BadShare(usize, u32),
    /// Instance runs a batch of 0 or over the stage's `max_batch` (instance, batch, max).
    #[error("instance {0} runs batch {1}, outside 1..={2}")]
    BadBatch(usize, u32, u32),
    /// The SM shares on a GPU sum past 100% (GPU, percent); not checked under time-sharing.
    #[error("GPU {0} is given {1}% of its SMs")]
    SmOver(u32, u32),
    /// The instances on a GPU hold more memory than it has (GPU, held MB, capacity MB).
    #[error("GPU {0} holds {1} MB, more than its {2} MB")]
    MemoryOver(u32, u64, u64),
}

impl Plan {
    /// Checks the hard constraints; the first broken one is returned.
    pub fn check(&self, spec: &PipelineSpec, cluster: &Cluster) -> Result<(), Violation> {
        let n = cluster.count;
        for (k, inst) in self.instances.iter().enumerate() {
            let Some(stage) = spec.stages.get(inst.stage) else {
                return Err(Violation::BadStage(k, inst.stage));
            };
            if inst.gpu >= n {
                return Err(Violation::BadGpu(k, inst.gpu, n));
            }
            if inst.sm_share == 0 || inst.sm_share > FULL_SHARE {
                return Err(Violation::BadShare(k, inst.sm_share));
            }
            if inst.batch == 0 || inst.batch > stage.max_batch {
                return Err(Violation::BadBatch(k, inst.batch, stage.max_batch));
            }
        }
        for (i, s) in spec.stages.iter().enumerate() {
            if !self.instances.iter().any(|x| x.stage == i) {
                return Err(Violation::Unserved(s.name.clone()));
            }
        }
        if !self.time_shared() {
            for g in 0..n {
                let sm = self.sm_on(g);
                if sm > FULL_SHARE {
                    return Err(Violation::SmOver(g, sm));
                }
            }
        }
        for g in 0..n {
            let mem = self.memory_on(g);
            if mem > cluster.gpu.memory_mb {
                return Err(Violation::MemoryOver(g, mem, cluster.gpu.memory_mb));
            }
        }
        Ok(())
    }

    /// A time-sharing plan gives every instance the whole GPU and lets them take turns; its SM
    /// shares are not a partition and are not summed.
    pub fn time_shared(&self) -> bool {
        self.policy == "time-sharing"
    }

    /// Sum of SM shares on GPU `g`, percent.
    pub fn sm_on(&self, g: u32) -> u32 {
        self.on_gpu(g).map(|x| x.sm_share).sum()
    }

    /// Memory held on GPU `g`, MB.
    pub fn memory_on(&self, g: u32) -> u64 {
        self.on_gpu(g).map(|x| x.memory_mb).sum()
    }

    /// Instances placed on GPU `g`.
    pub fn on_gpu(&self, g: u32) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(move |x| x.gpu == g)
    }

    /// Instances of stage `s`.
    pub fn of_stage(&self, s: usize) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(move |x| x.stage == s)
    }

    /// Total SM share used, in GPUs.
    pub fn gpus_used(&self) -> f64 {
        if self.time_shared() {
            let used = (0..self.gpus).filter(|&g| self.on_gpu(g).next().is_some());
            return used.count() as f64;
        }
        self.instances
            .iter()
            .map(|x| x.sm_share as f64)
            .sum::<f64>()
            / FULL_SHARE as f64
    }
}

/// Predicted service time of a batch on an instance of a plan, given the instance's co-runners.
/// The planner's performance + contention model implements it; the simulator drives it.
pub trait ServiceModel {
    /// Milliseconds for instance `instance` of `plan` to run a batch of `batch` items, with every
    /// other instance on its GPU running (the contention the plan implies).
    fn batch_ms(&self, spec: &PipelineSpec, plan: &Plan, instance: usize, batch: u32) -> f64;
}
