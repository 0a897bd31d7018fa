//! Baseline `laius` (Laius, ICS'19, as we read it from its published description): each service
//! is sized on its own — the least SM quota, in 10% units, that meets its own latency target at
//! its load — and GPUs are then filled one at a time by a 0/1 knapsack over those quotas
//! (maximise the SM share packed, ≤ 100%), under the GPU's memory and DRAM-bandwidth caps. It
//! does not know the stages form a pipeline: each stage's target is a fixed slice of the SLO
//! (`Ctx::stage_slos`), stages are sized independently, placement ignores adjacency, and
//! contention between co-runners is not predicted (only the bandwidth cap is respected).

use crate::plan::{Plan, FULL_SHARE};
use crate::planner::options::{options, StageTable};
use crate::planner::pack::{Bin, Item};
use crate::planner::Ctx;

/// Laius's SM quota unit, percent.
const UNIT: u32 = 10;

pub(crate) fn build(ctx: &Ctx<'_>, slos: &[f64], load_rps: f64) -> Option<Plan> {
    let spec = ctx.spec;
    let shares: Vec<u32> = (UNIT..=FULL_SHARE).step_by(UNIT as usize).collect();
    let max_cost = ctx.model.cluster.count * FULL_SHARE;
    let mut items = Vec::new();
    let mut explain = Vec::new();
    for (s, &slo) in slos.iter().enumerate() {
        let t = StageTable::new(ctx, s, &shares);
        let o = options(&t, 1.0, load_rps, max_cost, 24)
            .into_iter()
            .find(|o| o.delay_ms <= slo)?;
        explain.push(format!(
            "laius: stage {} sized alone for {slo:.1} ms: {}× {}% SM, batch {}",
            spec.stages[s].name, o.count, o.share, o.batch
        ));
        items.extend((0..o.count).map(|_| Item {
            stage: s,
            share: o.share,
            batch: o.batch,
            memory_mb: ctx.model.memory_mb(spec, s),
        }));
    }
    let mut instances = Vec::new();
    for g in 0..ctx.model.cluster.count {
        if items.is_empty() {
            break;
        }
        let mut chosen = knapsack(&items);
        // Respect memory and bandwidth: drop the heaviest chosen item until the GPU holds.
        loop {
            let mut bin = Bin::default();
            let mut fits = true;
            for &i in &chosen {
                if !bin.fits(ctx, &items[i]) {
                    fits = false;
                    break;
                }
                bin.add(&items[i]);
            }
            if fits {
                break;
            }
            let heaviest = chosen
                .iter()
                .copied()
                .max_by_key(|&i| (items[i].memory_mb, items[i].share, std::cmp::Reverse(i)))?;
            chosen.retain(|&i| i != heaviest);
        }
        if chosen.is_empty() {
            return None;
        }
        for &i in &chosen {
            let it = items[i];
            instances.push(crate::plan::Instance {
                stage: it.stage,
                gpu: g,
                sm_share: it.share,
                batch: it.batch,
                memory_mb: it.memory_mb,
            });
        }
        let mut k = 0;
        items.retain(|_| {
            k += 1;
            !chosen.contains(&(k - 1))
        });
    }
    if !items.is_empty() {
        return None;
    }
    Some(ctx.plan(instances, explain))
}

/// Indices of the items that fill 100% best (0/1 knapsack over 10% units; ties keep earlier items).
fn knapsack(items: &[Item]) -> Vec<usize> {
    let cap = (FULL_SHARE / UNIT) as usize;
    let w: Vec<usize> = items.iter().map(|i| (i.share / UNIT) as usize).collect();
    // best[i][c]: most units packable from items i.. within c units.
    let mut best = vec![vec![0usize; cap + 1]; items.len() + 1];
    for i in (0..items.len()).rev() {
        for c in 0..=cap {
            let skip = best[i + 1][c];
            let take = if w[i] <= c {
                w[i] + best[i + 1][c - w[i]]
            } else {
                0
            };
            best[i][c] = skip.max(take);
        }
    }
    let mut out = Vec::new();
    let mut c = cap;
    for i in 0..items.len() {
        if w[i] <= c && w[i] + best[i + 1][c - w[i]] == best[i][c] {
            out.push(i);
            c -= w[i];
        }
    }
    out
}
