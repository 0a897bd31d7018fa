//! Camelot's builder: for a target load, the least-share plan it can find that meets the SLO.
//! This module owns the choice of (instances, share, batch) per stage and its placement:
//! 1. per stage, the Pareto list of options at the load (see `options`), service times stretched
//!    by the stage's expected contention `κ` (1 at first);
//! 2. start every stage at its cheapest option; while the worst source→sink path (stage p99s +
//!    hand-offs) exceeds the budget, upgrade the stage on that path whose next option buys the
//!    most milliseconds per percent of SM — so the SLO is split where it is cheapest, and stage
//!    throughputs come out balanced because each stage is sized for the same load;
//! 3. pack four ways — instances stage by stage or largest share first, each compact (adjacent
//!    stages together so hand-offs stay in place, then least added contention) or spread (least
//!    added contention first) — and keep the feasible packing with the highest capacity;
//! 4. predict with the full model; if the p99 misses, raise each stage's `κ` to the slowdown its
//!    instances actually got (or, if contention was already right, tighten the budget by the
//!    miss) and repeat, at most six rounds.
//!
//! Besides that general plan on all GPUs, it tries "slices": the one-GPU plan for `load / g`
//! replicated on `g` GPUs, where every hand-off is in place. The cheapest feasible one wins.

use crate::model::in_place_kinds;
use crate::plan::{Instance, Plan};
use crate::planner::options::{options, Opt, StageTable};
use crate::planner::pack::{pack, Item};
use crate::planner::{Ctx, MIN_SHARE, SHARE_UNIT};

/// Most extra instances per option beyond the fewest that keep up.
const SPARE: u32 = 24;
/// Rounds of contention/budget correction.
const ROUNDS: usize = 6;

pub(crate) struct Camelot<'a> {
    ctx: &'a Ctx<'a>,
    tables: Vec<StageTable>,
    order: Vec<usize>,
}

impl<'a> Camelot<'a> {
    pub fn new(ctx: &'a Ctx<'a>) -> Camelot<'a> {
        let shares: Vec<u32> = (MIN_SHARE..=100).step_by(SHARE_UNIT as usize).collect();
        Camelot {
            ctx,
            tables: (0..ctx.spec.stages.len())
                .map(|s| {
                    let floor = ctx.min_share(s);
                    let mine: Vec<u32> = shares.iter().copied().filter(|&x| x >= floor).collect();
                    StageTable::new(ctx, s, &mine)
                })
                .collect(),
            order: ctx.spec.topo_order().unwrap_or_default(),
        }
    }

    /// The least-share feasible plan at `load_rps` among the general plan and the slices.
    pub fn build(&self, load_rps: f64) -> Option<Plan> {
        let count = self.ctx.model.cluster.count;
        let mut found: Vec<Plan> = self.general(load_rps, count).into_iter().collect();
        for g in 1..=count {
            if g == 1 && count == 1 {
                continue;
            }
            found.extend(self.sliced(load_rps, g));
        }
        found.into_iter().min_by(|a, b| {
            a.gpus_used()
                .total_cmp(&b.gpus_used())
                .then(super::gpus_touched(a).cmp(&super::gpus_touched(b)))
        })
    }

    /// One GPU's plan for `load_rps / g`, replicated on GPUs `0..g`.
    fn sliced(&self, load_rps: f64, g: u32) -> Option<Plan> {
        let one = self.general(load_rps / g as f64, 1)?;
        let instances: Vec<Instance> = (0..g)
            .flat_map(|gpu| {
                one.instances
                    .iter()
                    .map(move |x| Instance { gpu, ..x.clone() })
            })
            .collect();
        let mut explain = one.explain;
        explain.push(format!(
            "sliced: the one-GPU plan for {:.1} req/s replicated on {g} GPU(s); every hand-off in place",
            load_rps / g as f64
        ));
        let plan = self.ctx.plan(instances, explain);
        (self.ctx.valid(&plan)
            && self.ctx.model.p99_ms(self.ctx.spec, &plan, load_rps) <= self.ctx.spec.slo_ms)
            .then_some(plan)
    }

    /// The general plan on at most `gpus` GPUs.
    fn general(&self, load_rps: f64, gpus: u32) -> Option<Plan> {
        let (spec, model) = (self.ctx.spec, self.ctx.model);
        let n = spec.stages.len();
        let mut kappa = vec![1.0_f64; n];
        let mut budget = spec.slo_ms;
        for _ in 0..ROUNDS {
            let picks = self.choose(load_rps, &kappa, budget, gpus * 100)?;
            let explain: Vec<String> = picks
                .iter()
                .enumerate()
                .map(|(s, o)| {
                    format!(
                        "stage {}: {}× {}% SM, batch {} → p99 {:.1} ms in stage, {}% SM in all (contention ×{:.2})",
                        spec.stages[s].name, o.count, o.share, o.batch, o.delay_ms, o.cost, kappa[s]
                    )
                })
                .collect();
            // Two packing orders (stage by stage: adjacent stages meet early; largest share
            // first: less fragmentation) × compact or spread; the feasible packing with the
            // highest capacity wins.
            let interleaved = self.interleave(&picks);
            let mut largest = interleaved.clone();
            largest.sort_by(|a, b| b.share.cmp(&a.share).then(a.stage.cmp(&b.stage)));
            let mut tried: Vec<(f64, f64, Plan)> = Vec::new();
            let ways = [
                (&interleaved, "stage by stage", false),
                (&largest, "largest share first", false),
                (&interleaved, "stage by stage", true),
                (&largest, "largest share first", true),
            ];
            for (items, order, spread) in ways {
                let Some(instances) = pack(self.ctx, items, gpus, spread) else {
                    continue;
                };
                let mut lines = explain.clone();
                lines.push(if spread {
                    format!("packed {order}, least added contention first (spread over GPUs)")
                } else {
                    format!("packed {order}, adjacent stages together (hand-offs in place), then least added contention")
                });
                let plan = self.ctx.plan(instances, lines);
                let ev = model.evaluate(spec, &plan);
                tried.push((ev.p99_ms(load_rps), ev.capacity_rps(), plan));
            }
            let ok = |t: &(f64, f64, Plan)| t.0 <= spec.slo_ms && self.ctx.valid(&t.2);
            if let Some(best) = tried
                .iter()
                .filter(|t| ok(t))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)))
            {
                return Some(best.2.clone());
            }
            let (p99, _, plan) = tried.into_iter().next()?;
            let mut changed = false;
            for k in 0..plan.instances.len() {
                let s = plan.instances[k].stage;
                let slow = model.slowdown(spec, &plan, k);
                if slow > kappa[s] + 1e-6 {
                    kappa[s] = slow;
                    changed = true;
                }
            }
            if !changed {
                let miss = if p99.is_finite() {
                    p99 - spec.slo_ms
                } else {
                    0.0
                };
                budget -= miss.max(0.0) + 0.02 * spec.slo_ms;
                if budget <= 0.0 {
                    return None;
                }
            }
        }
        None
    }

    /// Instances of each stage, interleaved stage by stage in topological order.
    fn interleave(&self, picks: &[Opt]) -> Vec<Item> {
        let rounds = picks.iter().map(|o| o.count).max().unwrap_or(0);
        let mut items = Vec::new();
        for r in 0..rounds {
            for &s in &self.order {
                let o = &picks[s];
                if r < o.count {
                    items.push(Item {
                        stage: s,
                        share: o.share,
                        batch: o.batch,
                        memory_mb: self.ctx.model.memory_mb(self.ctx.spec, s),
                    });
                }
            }
        }
        items
    }

    /// Per stage, the option the budget greedy settles on (see the module doc).
    fn choose(
        &self,
        load_rps: f64,
        kappa: &[f64],
        budget_ms: f64,
        max_cost: u32,
    ) -> Option<Vec<Opt>> {
        let spec = self.ctx.spec;
        let opts: Vec<Vec<Opt>> = self
            .tables
            .iter()
            .map(|t| options(t, kappa[t.stage], load_rps, max_cost, SPARE))
            .collect();
        if opts.iter().any(Vec::is_empty) {
            return None;
        }
        let link = &self.ctx.model.cluster.link;
        let edge =
            |p: usize, c: usize| link.cost_ms(spec.stages[p].output_kb, in_place_kinds(spec, p, c));
        let mut pick = vec![0usize; opts.len()];
        loop {
            let path = self.critical_path(&opts, &pick, &edge);
            let worst: f64 = path.iter().map(|&s| opts[s][pick[s]].delay_ms).sum::<f64>()
                + path.windows(2).map(|w| edge(w[0], w[1])).sum::<f64>();
            if worst <= budget_ms {
                break;
            }
            let mut best: Option<(f64, usize, usize)> = None;
            for &s in &path {
                let cur = opts[s][pick[s]];
                for (j, o) in opts[s].iter().enumerate().skip(pick[s] + 1) {
                    let ratio = (cur.delay_ms - o.delay_ms) / (o.cost - cur.cost).max(1) as f64;
                    if best.is_none_or(|(r, _, _)| ratio > r + 1e-12) {
                        best = Some((ratio, s, j));
                    }
                }
            }
            let (_, s, j) = best?;
            pick[s] = j;
        }
        let total: u32 = (0..opts.len()).map(|s| opts[s][pick[s]].cost).sum();
        (total <= max_cost).then(|| (0..opts.len()).map(|s| opts[s][pick[s]]).collect())
    }

    /// Stages of the slowest source→sink path, source first.
    fn critical_path(
        &self,
        opts: &[Vec<Opt>],
        pick: &[usize],
        edge: &dyn Fn(usize, usize) -> f64,
    ) -> Vec<usize> {
        let spec = self.ctx.spec;
        let n = opts.len();
        let mut done = vec![0.0_f64; n];
        let mut from: Vec<Option<usize>> = vec![None; n];
        for &s in &self.order {
            let mut before = 0.0;
            for p in spec.predecessors(s) {
                let v = done[p] + edge(p, s);
                if from[s].is_none() || v > before {
                    before = v;
                    from[s] = Some(p);
                }
            }
            done[s] = before + opts[s][pick[s]].delay_ms;
        }
        let mut end = (0..n)
            .max_by(|&a, &b| done[a].total_cmp(&done[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        let mut path = vec![end];
        while let Some(p) = from[end] {
            path.push(p);
            end = p;
        }
        path.reverse();
        path
    }
}
