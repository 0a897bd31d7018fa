//! Baseline `gpulet` (Gpu-let, ATC'22, as we read its published scheduler): GPUs are split into
//! at most two "gpu-lets" from a fixed menu of sizes (20, 40, 50, 60, 80, 100%). Models are
//! taken heaviest first (load × batch-1 latency); for each, while rate remains, the largest batch
//! whose execution fits half its latency target is chosen per size (Gpu-let's SLO/2 rule, which
//! leaves the other half for queueing), then the smallest gpu-let that carries the remaining rate,
//! or else the size with the best throughput per SM percent. A gpu-let goes to the first GPU with
//! room whose co-runner, under the linear interference model, would still meet its SLO/2, and
//! which stays within memory and bandwidth. Per-model targets are the fixed SLO slices of
//! `Ctx::stage_slos`; the pipeline (adjacency, hand-offs, balance) is not considered.

use crate::plan::{Instance, Plan, FULL_SHARE};
use crate::planner::pack::{Bin, Item};
use crate::planner::{batch_candidates, Ctx};

/// Gpu-let partition sizes, percent.
const SIZES: [u32; 6] = [20, 40, 50, 60, 80, 100];

pub(crate) fn build(ctx: &Ctx<'_>, slos: &[f64], load_rps: f64) -> Option<Plan> {
    let (spec, model) = (ctx.spec, ctx.model);
    let n = spec.stages.len();
    let work = |s: usize| {
        model
            .solo(spec, s, 1, FULL_SHARE)
            .map_or(0.0, |e| e.latency_ms)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| work(b).total_cmp(&work(a)).then(a.cmp(&b)));

    let mut bins = vec![Bin::default(); model.cluster.count as usize];
    let mut instances: Vec<Instance> = Vec::new();
    let mut explain = Vec::new();
    for s in order {
        let half = slos[s] / 2.0;
        // (size, batch, rps) per size, largest batch within SLO/2.
        let menu: Vec<(u32, u32, f64)> = SIZES
            .iter()
            .filter_map(|&p| {
                batch_candidates(spec.stages[s].max_batch)
                    .into_iter()
                    .filter_map(|b| {
                        let t = model.solo(spec, s, b, p)?.latency_ms;
                        (t <= half).then_some((p, b, b as f64 / t * 1000.0))
                    })
                    .next_back()
            })
            .collect();
        if menu.is_empty() {
            return None;
        }
        let mut rate = load_rps;
        while rate > 1e-9 {
            let (p, b, rps) = menu.iter().copied().find(|m| m.2 >= rate).or_else(|| {
                menu.iter().copied().max_by(|x, y| {
                    (x.2 / x.0 as f64)
                        .total_cmp(&(y.2 / y.0 as f64))
                        .then(y.0.cmp(&x.0))
                })
            })?;
            let item = Item {
                stage: s,
                share: p,
                batch: b,
                memory_mb: model.memory_mb(spec, s),
            };
            let g = (0..bins.len()).find(|&g| {
                bins[g].members.len() < 2
                    && bins[g].fits(ctx, &item)
                    && interference_ok(ctx, slos, &bins[g], &item)
            })?;
            bins[g].add(&item);
            instances.push(Instance {
                stage: s,
                gpu: g as u32,
                sm_share: p,
                batch: b,
                memory_mb: item.memory_mb,
            });
            explain.push(format!(
                "gpulet: {} gets a {p}% gpu-let on GPU {g}, batch {b} ({rps:.1} req/s within {half:.1} ms)",
                spec.stages[s].name
            ));
            rate -= rps;
        }
    }
    Some(ctx.plan(instances, explain))
}

/// Whether every member of `bin` plus `item` still runs its batch within half its target.
fn interference_ok(ctx: &Ctx<'_>, slos: &[f64], bin: &Bin, item: &Item) -> bool {
    let mut bin = bin.clone();
    bin.add(item);
    let slowed = ctx.model.colocated(ctx.spec, &bin.members);
    bin.members.iter().zip(slowed).all(|(m, (_, slow))| {
        ctx.model
            .solo(ctx.spec, m.stage, m.batch, m.share)
            .is_some_and(|e| e.latency_ms * slow <= slos[m.stage] / 2.0)
    })
}
