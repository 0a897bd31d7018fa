//! Property tests over random pipelines, profiles and cluster sizes: every plan any policy
//! returns passes `Plan::check` and the bandwidth cap, meets the SLO where it says it does, and
//! is the same when planned twice.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use sluice_pipeline::{plan, Goal, Handoff, PerfModel, PipelineSpec, Policy, StageSpec};

const MODELS: [&str; 5] = [
    "lenet",
    "mobilenet_v2",
    "googlenet",
    "resnet50",
    "ssd-mobilenetv1",
];

fn model(gpus: u32) -> PerfModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gpulet-2080ti");
    PerfModel::gpulet(&dir, gpus).expect("gpulet data beside the repository")
}

/// A random DAG of 1..=3 stages: stage i may follow any earlier stage.
fn spec() -> impl Strategy<Value = PipelineSpec> {
    (
        proptest::collection::vec(
            (
                0..MODELS.len(),
                1u32..=16,
                0.0f64..10.0,
                proptest::bool::ANY,
                0u32..4,
            ),
            1..=3,
        ),
        60.0f64..400.0,
    )
        .prop_map(|(stages, slo_ms)| PipelineSpec {
            name: "random".into(),
            slo_ms,
            load_rps: 0.0,
            stages: stages
                .iter()
                .enumerate()
                .map(|(i, &(m, max_batch, max_wait_ms, shm, link))| StageSpec {
                    name: format!("s{i}"),
                    command: Vec::new(),
                    image: None,
                    env: BTreeMap::new(),
                    model: Some(MODELS[m].into()),
                    after: if i == 0 {
                        Vec::new()
                    } else {
                        vec![format!("s{}", link as usize % i)]
                    },
                    max_batch,
                    max_wait_ms,
                    memory_mb: 0,
                    output_kb: 600.0,
                    handoff: if shm {
                        vec![Handoff::Shm, Handoff::Copy]
                    } else {
                        vec![Handoff::Copy]
                    },
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_plan_respects_the_constraints(spec in spec(), gpus in 1u32..=3, load in 1.0f64..60.0) {
        let m = model(gpus);
        for policy in Policy::ALL {
            for goal in [Goal::MaxLoad, Goal::MinResources { load_rps: load }] {
                let Ok(p) = plan(&spec, &m, policy, goal) else { continue };
                prop_assert_eq!(p.check(&spec, &m.cluster), Ok(()), "{} {:?}", policy, goal);
                prop_assert!(m.bandwidth_violation(&spec, &p).is_none(), "{} {:?}", policy, goal);
                prop_assert!(p.predicted.p99_ms <= spec.slo_ms, "{} {:?}: {}", policy, goal, p.predicted.p99_ms);
                if let Goal::MinResources { load_rps } = goal {
                    prop_assert!(m.p99_ms(&spec, &p, load_rps) <= spec.slo_ms);
                }
                let again = plan(&spec, &m, policy, goal).unwrap();
                prop_assert_eq!(&again, &p);
            }
        }
    }
}
