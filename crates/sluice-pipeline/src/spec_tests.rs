use super::*;

const OCR: &str = r#"
name: ocr
slo_ms: 2000
load_rps: 2
stages:
  - name: det
    command: ["python3", "det_stage.py"]
    max_batch: 4
  - name: cls
    after: [det]
  - name: rec
    after: [cls]
    handoff: [shm, copy]
"#;

fn parse_err(text: &str) -> SpecError {
    PipelineSpec::parse(text).expect_err("spec should be refused")
}

#[test]
fn parses_a_chain_with_defaults() {
    let s = PipelineSpec::parse(OCR).unwrap();
    assert_eq!(s.stages.len(), 3);
    assert_eq!(s.stages[1].max_batch, 8);
    assert_eq!(s.stages[1].model(), "cls");
    assert_eq!(s.topo_order().unwrap(), vec![0, 1, 2]);
    assert_eq!(s.sources(), vec![0]);
    assert_eq!(s.sinks(), vec![2]);
    assert_eq!(s.edges(), vec![(0, 1), (1, 2)]);
}

#[test]
fn json_is_accepted() {
    let json = r#"{"name":"p","slo_ms":10,"stages":[{"name":"a"},{"name":"b","after":["a"]}]}"#;
    let s = PipelineSpec::parse(json).unwrap();
    assert_eq!(s.successors(0), vec![1]);
}

#[test]
fn fan_out_and_fan_in_order_topologically() {
    let text = r#"
name: dag
slo_ms: 100
stages:
  - {name: join, after: [left, right]}
  - {name: right, after: [split]}
  - {name: left, after: [split]}
  - {name: split}
"#;
    let s = PipelineSpec::parse(text).unwrap();
    let names: Vec<_> = s
        .topo_order()
        .unwrap()
        .into_iter()
        .map(|i| s.stages[i].name.as_str())
        .collect();
    assert_eq!(names, ["split", "right", "left", "join"]);
    assert_eq!(s.predecessors(0), vec![2, 1]);
    assert_eq!(s.sinks(), vec![0]);
}

#[test]
fn refuses_cycles_unknown_and_duplicate_stages() {
    let cycle = "name: p\nslo_ms: 1\nstages:\n - {name: a, after: [b]}\n - {name: b, after: [a]}\n";
    assert_eq!(parse_err(cycle), SpecError::Cycle("a".into()));
    let unknown = "name: p\nslo_ms: 1\nstages:\n - {name: a, after: [zz]}\n";
    assert!(
        matches!(parse_err(unknown), SpecError::UnknownPredecessor { missing, .. } if missing == "zz")
    );
    let dup = "name: p\nslo_ms: 1\nstages:\n - {name: a}\n - {name: a}\n";
    assert_eq!(parse_err(dup), SpecError::Duplicate("a".into()));
    let selfloop = "name: p\nslo_ms: 1\nstages:\n - {name: a, after: [a]}\n";
    assert_eq!(parse_err(selfloop), SpecError::Cycle("a".into()));
    let twice = "name: p\nslo_ms: 1\nstages:\n - {name: a}\n - {name: b, after: [a, a]}\n";
    assert_eq!(parse_err(twice), SpecError::RepeatedPredecessor("b".into()));
}

#[test]
fn refuses_bad_fields_with_the_stage_named() {
    let batch = "name: p\nslo_ms: 1\nstages:\n - {name: a, max_batch: 0}\n";
    let msg = parse_err(batch).to_string();
    assert!(msg.contains("\"a\"") && msg.contains("max_batch"), "{msg}");
    let wait = "name: p\nslo_ms: 1\nstages:\n - {name: a, max_wait_ms: -1}\n";
    assert!(parse_err(wait).to_string().contains("max_wait_ms"));
    let handoff = "name: p\nslo_ms: 1\nstages:\n - {name: a, handoff: []}\n";
    assert!(parse_err(handoff).to_string().contains("handoff"));
    let kind = "name: p\nslo_ms: 1\nstages:\n - {name: a, handoff: [carrier-pigeon]}\n";
    assert!(matches!(parse_err(kind), SpecError::Parse(_)));
    let unknown_field = "name: p\nslo_ms: 1\nstages:\n - {name: a, batch: 3}\n";
    assert!(parse_err(unknown_field).to_string().contains("batch"));
}

#[test]
fn refuses_bad_pipeline_fields() {
    assert_eq!(
        parse_err("name: p\nslo_ms: 0\nstages: [{name: a}]\n"),
        SpecError::Slo(0.0)
    );
    assert!(matches!(
        parse_err("name: p\nslo_ms: 5\nload_rps: -1\nstages: [{name: a}]\n"),
        SpecError::Load(_)
    ));
    assert_eq!(
        parse_err("name: p\nslo_ms: 5\nstages: []\n"),
        SpecError::Empty
    );
    assert!(matches!(
        parse_err("name: 'a b'\nslo_ms: 5\nstages: [{name: a}]\n"),
        SpecError::Name(_)
    ));
    assert!(matches!(
        parse_err("name: p\nslo_ms: 5\nstages: [{name: input}]\n"),
        SpecError::StageName(_)
    ));
    assert!(matches!(
        parse_err("name: p\nslo_ms: 5\nstages: [{name: ../x}]\n"),
        SpecError::StageName(_)
    ));
    assert!(matches!(parse_err("{{{"), SpecError::Parse(_)));
    assert!(matches!(parse_err("name: p\n"), SpecError::Parse(_)));
}
