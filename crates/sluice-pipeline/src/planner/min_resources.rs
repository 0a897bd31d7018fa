//! Camelot's `min-resources` policy: the least total SM share that meets the SLO at a given load.
//! This module owns the trim that follows the builder (see `camelot`): repeatedly drop the
//! instance or the 5% of share whose removal saves the most SM while the predicted p99 at the
//! load stays within the target and every limit holds.

use crate::plan::Plan;
use crate::planner::camelot::Camelot;
use crate::planner::{Ctx, SHARE_UNIT};

pub(crate) fn plan(ctx: &Ctx<'_>, camelot: &Camelot<'_>, load_rps: f64) -> Option<Plan> {
    let found = ctx.search_min_resources(&|l| camelot.build(l), load_rps)?;
    let mut plan = trim(ctx, found, load_rps);
    plan.explain.insert(
        0,
        format!(
            "min-resources: least SM share meeting {} ms p99 at {load_rps:.1} req/s",
            ctx.spec.slo_ms
        ),
    );
    Some(ctx.finish(plan, Some(load_rps)))
}

fn trim(ctx: &Ctx<'_>, mut plan: Plan, load_rps: f64) -> Plan {
    let ok = |p: &Plan| ctx.valid(p) && ctx.model.p99_ms(ctx.spec, p, load_rps) <= ctx.spec.slo_ms;
    loop {
        let mut best: Option<(u32, Plan, String)> = None;
        for k in 0..plan.instances.len() {
            let x = &plan.instances[k];
            let name = &ctx.spec.stages[x.stage].name;
            let mut moves = Vec::new();
            if plan.of_stage(x.stage).count() > 1 {
                let mut p = plan.clone();
                p.instances.remove(k);
                moves.push((
                    x.sm_share,
                    p,
                    format!("trim: removed a {name} instance on GPU {}", x.gpu),
                ));
            }
            if x.sm_share >= ctx.min_share(x.stage) + SHARE_UNIT {
                let mut p = plan.clone();
                p.instances[k].sm_share -= SHARE_UNIT;
                moves.push((
                    SHARE_UNIT,
                    p,
                    format!(
                        "trim: {name} on GPU {} from {}% to {}% SM",
                        x.gpu,
                        x.sm_share,
                        x.sm_share - SHARE_UNIT
                    ),
                ));
            }
            for (saved, p, what) in moves {
                if best.as_ref().is_none_or(|(b, _, _)| saved > *b) && ok(&p) {
                    best = Some((saved, p, what));
                }
            }
        }
        let Some((_, p, what)) = best else { break };
        plan = p;
        plan.explain.push(what);
    }
    plan
}
