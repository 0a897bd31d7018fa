//! Tests of the controller's pure parts: replica placement and the scaling decision.
use super::*;
use sluice_worker::devices::GpuInfo;

fn member(id: &str, gpus: u32) -> (String, Member) {
    let gpu = |i| GpuInfo {
        index: i,
        name: "sim".into(),
        uuid: format!("GPU-{id}-{i}"),
        memory_bytes: 1 << 34,
        mig: None,
    };
    let m = Member {
        id: id.into(),
        addr: format!("{id}:1"),
        gpus: (0..gpus).map(gpu).collect(),
        devices: "simulated".into(),
        tokens_per_gpu: 2,
        cpu_slots: 2,
        isolation: "plain".into(),
        labels: Default::default(),
        joined_ms: 0,
    };
    (id.into(), m)
}

fn pipeline(name: &str) -> (String, (PipelineRecord, i64)) {
    let request: sluice_worker::pipeline::DeployRequest =
        serde_json::from_value(serde_json::json!({
        "spec": {"name": name, "slo_ms": 100, "stages": [{"name": "a", "command": ["true"]}]},
        "base_dir": "/tmp"}))
        .expect("request");
    let rec = PipelineRecord {
        request,
        min_replicas: 1,
        max_replicas: 4,
    };
    (name.into(), (rec, 7))
}

#[test]
fn scaling_follows_measured_load_within_the_bounds() {
    let (_, (rec, _)) = pipeline("p");
    let cfg = crate::config::ControllerConfig::default();
    // 2 replicas planned for 100 rps in all.
    assert_eq!(
        scaled(2, 2, 90.0, 100.0, &rec, &cfg),
        3,
        "above 80%: one more"
    );
    assert_eq!(
        scaled(2, 2, 60.0, 100.0, &rec, &cfg),
        2,
        "in between: unchanged"
    );
    assert_eq!(
        scaled(2, 2, 20.0, 100.0, &rec, &cfg),
        1,
        "one fewer stays below 50%"
    );
    assert_eq!(
        scaled(1, 1, 1.0, 50.0, &rec, &cfg),
        1,
        "never below min_replicas"
    );
    assert_eq!(
        scaled(4, 4, 400.0, 100.0, &rec, &cfg),
        4,
        "never above max_replicas"
    );
    assert_eq!(
        scaled(2, 2, f64::NAN, 100.0, &rec, &cfg),
        2,
        "no decision without a reading"
    );
}

#[test]
fn replicas_go_to_free_gpus_keep_their_place_and_never_double_up() {
    let members: BTreeMap<_, _> = [member("a", 1), member("b", 2), member("c", 1)]
        .into_iter()
        .collect();
    let pipes: BTreeMap<_, _> = [pipeline("p"), pipeline("q")].into_iter().collect();
    let want: BTreeMap<String, usize> = [("p".into(), 2), ("q".into(), 2)].into_iter().collect();
    let current: BTreeMap<String, Vec<(String, i64)>> =
        [("p".into(), vec![("c".into(), 7)])].into_iter().collect();
    let plan = plan_replicas(&members, &pipes, &current, &want);
    assert_eq!(
        plan["p"],
        vec!["c".to_string(), "b".to_string()],
        "existing kept, then most free GPUs"
    );
    assert_eq!(plan["q"], vec!["a".to_string(), "b".to_string()]);
    assert_eq!(
        plan,
        plan_replicas(&members, &pipes, &current, &want),
        "deterministic"
    );
    let many: BTreeMap<String, usize> = [("p".into(), 9)].into_iter().collect();
    let plan = plan_replicas(&members, &pipes, &BTreeMap::new(), &many);
    assert_eq!(
        plan["p"].len(),
        3,
        "at most one replica of a pipeline per worker"
    );
}
