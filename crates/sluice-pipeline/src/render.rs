//! Human-readable tables of a plan for `sluice plan`: one row per instance (stage, GPU, share,
//! batch, memory), then the prediction; with a model, each stage's predicted throughput and the
//! hand-off cost of each edge too. This module owns only the formatting.

use std::fmt::Write;

use crate::model::PerfModel;
use crate::plan::Plan;
use crate::spec::PipelineSpec;

/// The plan as a table, with the stored prediction.
pub fn render(plan: &Plan, spec: &PipelineSpec) -> String {
    render_inner(plan, spec, None)
}

/// [`render`] plus per-stage throughput and per-edge hand-off cost from `model`.
pub fn render_with_model(plan: &Plan, spec: &PipelineSpec, model: &PerfModel) -> String {
    render_inner(plan, spec, Some(model))
}

fn render_inner(plan: &Plan, spec: &PipelineSpec, model: Option<&PerfModel>) -> String {
    let name = |s: usize| spec.stages.get(s).map_or("?", |x| x.name.as_str());
    let width = spec
        .stages
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let ev = model.map(|m| m.evaluate(spec, plan));
    let rps = ev.as_ref().map(|e| e.stage_rps());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan for {} by {} on {} GPU(s)",
        plan.pipeline, plan.policy, plan.gpus
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>3}  {:>6}  {:>5}  {:>7}  {:>10}",
        "stage", "instances", "gpu", "share", "batch", "mem_mb", "stage_rps"
    );
    for (s, _) in spec.stages.iter().enumerate() {
        let mut rows: Vec<_> = plan.of_stage(s).collect();
        rows.sort_by_key(|x| (x.gpu, x.sm_share, x.batch));
        let total = rows.len();
        for (i, x) in rows.iter().enumerate() {
            let stage_rps = match (&rps, i) {
                (Some(r), 0) => format!("{:.1}", r[s]),
                _ => String::new(),
            };
            let (label, count) = if i == 0 {
                (name(s), total.to_string())
            } else {
                ("", String::new())
            };
            let _ = writeln!(
                out,
                "{label:<width$}  {count:>9}  {:>3}  {:>5}%  {:>5}  {:>7}  {stage_rps:>10}",
                x.gpu, x.sm_share, x.batch, x.memory_mb
            );
        }
    }
    if let Some(ev) = &ev {
        for ((p, c), ms) in ev.edge_ms() {
            let _ = writeln!(out, "hand-off {} → {}: {:.2} ms", name(*p), name(*c), ms);
        }
    }
    let p = &plan.predicted;
    let _ = writeln!(
        out,
        "predicted: capacity {:.1} req/s; p99 {:.1} ms at {:.1} req/s (target {} ms); SM share used {:.2} GPUs",
        p.capacity_rps, p.p99_ms, p.load_rps, spec.slo_ms, p.gpus_used
    );
    out
}
