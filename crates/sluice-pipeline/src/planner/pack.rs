//! Placing instances on GPUs under the per-GPU limits (SM share ≤ 100%, memory ≤ capacity, DRAM
//! demand ≤ bandwidth). This module owns Camelot's pipeline- and contention-aware packer, in two
//! flavours (compact: adjacent stages together so hand-offs stay in place; spread: least added
//! contention first), and the per-GPU bin the baselines' packers reuse.

use crate::model::{Member, BANDWIDTH_CAP};
use crate::plan::{Instance, FULL_SHARE};
use crate::planner::Ctx;

/// An instance waiting for a GPU.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct Item {
    pub stage: usize,
    pub share: u32,
    pub batch: u32,
    pub memory_mb: u64,
}

/// One GPU being filled.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bin {
    pub members: Vec<Member>,
    pub share: u32,
    pub memory_mb: u64,
}

impl Bin {
    /// Whether `item` fits beside the current members.
    pub fn fits(&self, ctx: &Ctx<'_>, item: &Item) -> bool {
        if self.share + item.share > FULL_SHARE
            || self.memory_mb + item.memory_mb > ctx.model.cluster.gpu.memory_mb
        {
            return false;
        }
        let mut m = self.members.clone();
        m.push(member(item));
        ctx.model.dram_demand(ctx.spec, &m) <= BANDWIDTH_CAP
    }

    pub fn add(&mut self, item: &Item) {
        self.members.push(member(item));
        self.share += item.share;
        self.memory_mb += item.memory_mb;
    }

    /// Sum over members of (slowdown − 1).
    pub fn contention(&self, ctx: &Ctx<'_>, extra: Option<&Item>) -> f64 {
        let mut m = self.members.clone();
        m.extend(extra.map(member));
        ctx.model
            .colocated(ctx.spec, &m)
            .iter()
            .map(|(_, s)| s - 1.0)
            .sum()
    }
}

fn member(item: &Item) -> Member {
    Member {
        stage: item.stage,
        batch: item.batch,
        share: item.share,
    }
}

/// Places `items` in order on at most `gpus` GPUs; `None` if one does not fit anywhere.
/// Compact (`spread == false`): among GPUs in use that fit, adjacent stages first, then least
/// added contention, then tightest fit; an empty GPU only when none fits. Spread: any GPU that
/// fits, least added contention first (an empty GPU adds none), then adjacency, then tightest.
pub(crate) fn pack(
    ctx: &Ctx<'_>,
    items: &[Item],
    gpus: u32,
    spread: bool,
) -> Option<Vec<Instance>> {
    let mut bins = vec![Bin::default(); gpus as usize];
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let fitting: Vec<usize> = (0..bins.len())
            .filter(|&g| bins[g].fits(ctx, item))
            .collect();
        let open: Vec<usize> = if spread {
            fitting.clone()
        } else {
            fitting
                .iter()
                .copied()
                .filter(|&g| !bins[g].members.is_empty())
                .collect()
        };
        let g = if open.is_empty() {
            *fitting.first()?
        } else {
            let preds = ctx.spec.predecessors(item.stage);
            let succs = ctx.spec.successors(item.stage);
            let key = |g: usize| {
                let b = &bins[g];
                let adjacent = b
                    .members
                    .iter()
                    .filter(|m| preds.contains(&m.stage) || succs.contains(&m.stage))
                    .count() as i64;
                let added = b.contention(ctx, Some(item)) - b.contention(ctx, None);
                let added = (added * 1000.0).round() as i64;
                let room = FULL_SHARE - b.share;
                if spread {
                    (added, -adjacent, room, g)
                } else {
                    (-adjacent, added, room, g)
                }
            };
            open.into_iter().min_by_key(|&g| key(g))?
        };
        bins[g].add(item);
        out.push(Instance {
            stage: item.stage,
            gpu: g as u32,
            sm_share: item.share,
            batch: item.batch,
            memory_mb: item.memory_mb,
        });
    }
    Some(out)
}
