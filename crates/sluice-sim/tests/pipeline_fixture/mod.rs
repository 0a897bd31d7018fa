//! Test fixture for the pipeline simulator tests: a hand-written linear service model and
//! builders for small specs, plans and clusters.

#![allow(dead_code)] // each test file uses a different part of the fixture

use sluice_pipeline::{
    Cluster, GpuModel, Handoff, Instance, PipelineSpec, Plan, Prediction, ServiceModel, StageSpec,
};

/// `batch_ms = fixed_ms + per_item_ms × batch` per stage, stretched by `100 / sm_share`.
pub struct Linear {
    pub stages: Vec<(f64, f64)>,
}

impl ServiceModel for Linear {
    fn batch_ms(&self, _spec: &PipelineSpec, plan: &Plan, instance: usize, batch: u32) -> f64 {
        let x = &plan.instances[instance];
        let (fixed, per_item) = self.stages[x.stage];
        (fixed + per_item * batch as f64) * 100.0 / x.sm_share as f64
    }
}

/// A stage with the given predecessors, batch limits and output size, accepting shm and copy.
pub fn stage(name: &str, after: &[&str], max_batch: u32, max_wait_ms: f64) -> StageSpec {
    StageSpec {
        name: name.into(),
        command: Vec::new(),
        image: None,
        env: Default::default(),
        model: None,
        after: after.iter().map(|s| s.to_string()).collect(),
        max_batch,
        max_wait_ms,
        memory_mb: 100,
        output_kb: 512.0,
        handoff: vec![Handoff::Shm, Handoff::Copy],
    }
}

pub fn spec(name: &str, slo_ms: f64, stages: Vec<StageSpec>) -> PipelineSpec {
    PipelineSpec {
        name: name.into(),
        slo_ms,
        load_rps: 0.0,
        stages,
    }
}

/// `(stage, gpu, sm_share, batch)` per instance.
pub fn plan(policy: &str, gpus: u32, instances: &[(usize, u32, u32, u32)]) -> Plan {
    Plan {
        pipeline: "test".into(),
        policy: policy.into(),
        gpus,
        instances: instances
            .iter()
            .map(|&(stage, gpu, sm_share, batch)| Instance {
                stage,
                gpu,
                sm_share,
                batch,
                memory_mb: 100,
            })
            .collect(),
        predicted: Prediction::default(),
        explain: Vec::new(),
    }
}

pub fn cluster(count: u32) -> Cluster {
    Cluster::new(GpuModel::rtx_2080_ti(), count)
}
