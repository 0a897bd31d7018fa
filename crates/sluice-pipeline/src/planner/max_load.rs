//! Camelot's `max-load` policy: the highest load the cluster's GPUs serve within the SLO. This
//! module owns the search over target loads (shared with the baselines, see `planner`) and the
//! top-up that follows it: while SM share is left on some GPU, give it where it raises the
//! predicted capacity most — another instance of a stage (with the share of an existing instance
//! or all of a GPU's leftover, at an existing batch) on a GPU with room, or 5% or all the leftover
//! share more for one instance — be the stage throughput-bound or latency-bound.

use crate::plan::{Instance, Plan, FULL_SHARE};
use crate::planner::camelot::Camelot;
use crate::planner::{Ctx, SHARE_UNIT};

/// Most top-up steps.
const STEPS: usize = 48;

pub(crate) fn plan(ctx: &Ctx<'_>, camelot: &Camelot<'_>) -> Option<Plan> {
    let found = ctx.search_max_load(&|l| camelot.build(l))?;
    let mut plan = top_up(ctx, found);
    plan.explain.insert(
        0,
        format!(
            "max-load: highest target load with a feasible least-share plan, then leftover SM to the bottleneck stage, on {} GPU(s)",
            ctx.model.cluster.count
        ),
    );
    Some(ctx.finish(plan, None))
}

fn capacity(ctx: &Ctx<'_>, plan: &Plan) -> f64 {
    ctx.model.capacity_rps(ctx.spec, plan)
}

fn top_up(ctx: &Ctx<'_>, mut plan: Plan) -> Plan {
    let spec = ctx.spec;
    let mut cap = capacity(ctx, &plan);
    for _ in 0..STEPS {
        let stages: Vec<usize> = (0..spec.stages.len()).collect();
        let mut best: Option<(f64, Plan, String)> = None;
        let mut consider = |p: Plan, what: String| {
            if !ctx.valid(&p) {
                return;
            }
            // A move that misses the SLO just above the current capacity cannot raise it (one
            // prediction instead of a capacity search).
            let ev = ctx.model.evaluate(spec, &p);
            if ev.p99_ms(cap * (1.0 + 1e-4)) > spec.slo_ms {
                return;
            }
            let c = ev.capacity_rps();
            if c > cap * (1.0 + 1e-4) && best.as_ref().is_none_or(|(b, _, _)| c > *b) {
                best = Some((c, p, what));
            }
        };
        for &s in &stages {
            let mut configs: Vec<(u32, u32)> =
                plan.of_stage(s).map(|x| (x.sm_share, x.batch)).collect();
            for g in 0..ctx.model.cluster.count {
                let left = FULL_SHARE - plan.sm_on(g).min(FULL_SHARE);
                if left >= ctx.min_share(s) {
                    configs.extend(plan.of_stage(s).map(|x| (left, x.batch)));
                }
            }
            configs.sort_unstable();
            configs.dedup();
            for &(share, batch) in &configs {
                for g in 0..ctx.model.cluster.count {
                    if plan.sm_on(g) + share > FULL_SHARE {
                        continue;
                    }
                    let mut p = plan.clone();
                    p.instances.push(Instance {
                        stage: s,
                        gpu: g,
                        sm_share: share,
                        batch,
                        memory_mb: ctx.model.memory_mb(spec, s),
                    });
                    consider(
                        p,
                        format!(
                            "top-up: another {} ({share}% SM, batch {batch}) on GPU {g}",
                            spec.stages[s].name
                        ),
                    );
                }
            }
            for k in 0..plan.instances.len() {
                let x = &plan.instances[k];
                let left = FULL_SHARE - plan.sm_on(x.gpu).min(FULL_SHARE);
                if x.stage != s || left < SHARE_UNIT {
                    continue;
                }
                let mut grow = vec![SHARE_UNIT];
                if left > SHARE_UNIT {
                    grow.push(left);
                }
                for add in grow {
                    let mut p = plan.clone();
                    p.instances[k].sm_share += add;
                    consider(
                        p,
                        format!(
                            "top-up: {} on GPU {} from {}% to {}% SM",
                            spec.stages[s].name,
                            x.gpu,
                            x.sm_share,
                            x.sm_share + add
                        ),
                    );
                }
            }
        }
        let Some((c, p, what)) = best else { break };
        plan = p;
        plan.explain
            .push(format!("{what}: capacity {cap:.1} → {c:.1} req/s"));
        cap = c;
    }
    plan
}
