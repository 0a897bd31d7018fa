//! Baseline `even-split`: SM shares split evenly, no profile-driven sizing. On `g` GPUs every
//! stage gets one instance per GPU (when all stages' memory fits one GPU; otherwise stages are
//! dealt round-robin over the GPUs), each GPU's SMs are divided equally among the instances on
//! it, and one batch size is used for every stage. The builder takes the fewest GPUs, and on
//! those the batch size, that meet the SLO at the target load. This module owns that layout,
//! which `time-sharing` reuses with whole-GPU shares.

use crate::plan::{Instance, Plan, FULL_SHARE};
use crate::planner::Ctx;

/// Batch sizes the layout baselines try (each capped at the stage's maximum).
pub(crate) const BATCHES: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// One instance per stage per GPU (or stages round-robin if they do not all fit one GPU's
/// memory); shares equal per GPU, or 100% each when `whole`.
pub(crate) fn layout(ctx: &Ctx<'_>, gpus: u32, batch: u32, whole: bool) -> Option<Vec<Instance>> {
    let spec = ctx.spec;
    let n = spec.stages.len();
    let mem: Vec<u64> = (0..n).map(|s| ctx.model.memory_mb(spec, s)).collect();
    let all_fit = mem.iter().sum::<u64>() <= ctx.model.cluster.gpu.memory_mb;
    let placed: Vec<(usize, u32)> = if all_fit {
        (0..gpus)
            .flat_map(|g| (0..n).map(move |s| (s, g)))
            .collect()
    } else {
        (0..n).map(|s| (s, s as u32 % gpus)).collect()
    };
    let on = |g: u32| placed.iter().filter(|(_, x)| *x == g).count() as u32;
    let instances: Vec<Instance> = placed
        .iter()
        .map(|&(s, g)| Instance {
            stage: s,
            gpu: g,
            sm_share: if whole {
                FULL_SHARE
            } else {
                FULL_SHARE / on(g)
            },
            batch: batch.min(spec.stages[s].max_batch),
            memory_mb: mem[s],
        })
        .collect();
    instances
        .iter()
        .all(|x| x.sm_share > 0)
        .then_some(instances)
}

/// The fewest GPUs (then the batch with the lowest p99) whose layout meets the SLO at `load_rps`.
pub(crate) fn build_layout(ctx: &Ctx<'_>, load_rps: f64, whole: bool) -> Option<Plan> {
    for g in 1..=ctx.model.cluster.count {
        let mut best: Option<(f64, Plan)> = None;
        for b in BATCHES {
            let Some(instances) = layout(ctx, g, b, whole) else {
                continue;
            };
            let plan = ctx.plan(
                instances,
                vec![format!(
                    "{}: every stage on each of {g} GPU(s), {}, batch {b}",
                    ctx.policy,
                    if whole {
                        "whole GPU each, taking turns"
                    } else {
                        "SMs split evenly"
                    }
                )],
            );
            if !ctx.valid(&plan) {
                continue;
            }
            let p99 = ctx.model.p99_ms(ctx.spec, &plan, load_rps);
            if p99 <= ctx.spec.slo_ms && best.as_ref().is_none_or(|(b, _)| p99 < *b) {
                best = Some((p99, plan));
            }
        }
        if let Some((_, plan)) = best {
            return Some(plan);
        }
    }
    None
}

pub(crate) fn build(ctx: &Ctx<'_>, load_rps: f64) -> Option<Plan> {
    build_layout(ctx, load_rps, false)
}
