//! Per-stage configuration options: for a stage at a load, every (instances, share, batch) worth
//! considering, with its total SM share (cost) and the p99 its instances add, reduced to the
//! Pareto frontier (more share only if it buys a lower p99). Camelot's and Laius's planners choose
//! from these lists; this module owns their generation.

use crate::model::{identical_from, server};
use crate::planner::{batch_candidates, Ctx};

/// Solo latency of one stage at each planned share and batch 1..=largest candidate.
pub(crate) struct StageTable {
    pub stage: usize,
    pub shares: Vec<u32>,
    pub batches: Vec<u32>,
    max_wait_ms: f64,
    /// `latency[i][b-1]`: ms at `shares[i]`, batch `b`.
    latency: Vec<Vec<f64>>,
}

impl StageTable {
    pub fn new(ctx: &Ctx<'_>, stage: usize, shares: &[u32]) -> StageTable {
        let spec = &ctx.spec.stages[stage];
        let batches = batch_candidates(spec.max_batch);
        let largest = batches.last().copied().unwrap_or(1);
        let latency = shares
            .iter()
            .map(|&s| {
                (1..=largest)
                    .map(|b| {
                        ctx.model
                            .solo(ctx.spec, stage, b, s)
                            .map_or(f64::INFINITY, |e| e.latency_ms)
                    })
                    .collect()
            })
            .collect();
        StageTable {
            stage,
            shares: shares.to_vec(),
            batches,
            max_wait_ms: spec.max_wait_ms,
            latency,
        }
    }

    /// Solo latency at `shares[si]`, batch `b`, ms.
    pub fn latency(&self, si: usize, b: u32) -> f64 {
        self.latency[si][b as usize - 1]
    }
}

/// One way to serve a stage.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct Opt {
    /// Total SM share, percent.
    pub cost: u32,
    /// p99 an item spends in the stage, ms.
    pub delay_ms: f64,
    pub count: u32,
    pub share: u32,
    pub batch: u32,
}

/// Options for `t`'s stage at `load_rps` with service times stretched by `kappa` (expected
/// contention), at most `max_cost` percent in all; up to `spare` extra instances beyond the
/// fewest that keep up are tried (they cut queueing), stopping once one more cuts the p99 by
/// under 1%. Sorted by cost, Pareto-optimal.
pub(crate) fn options(
    t: &StageTable,
    kappa: f64,
    load_rps: f64,
    max_cost: u32,
    spare: u32,
) -> Vec<Opt> {
    let lambda = load_rps / 1000.0;
    let mut all = Vec::new();
    // Pareto frontier so far (cost ascending, delay descending): a (share, batch) whose cheapest
    // count costs at least as much as a found option that is no slower than its bare batch-1
    // service time cannot add to the frontier and is skipped unevaluated.
    let mut front: Vec<(u32, f64)> = Vec::new();
    for (si, &share) in t.shares.iter().enumerate() {
        // (k_min, mean batch at k_min) of the previous batch cap at this share.
        let mut prev: Option<(u32, u32, f64)> = None;
        for &b in &t.batches {
            let full = t.latency(si, b) * kappa;
            if !full.is_finite() {
                continue;
            }
            let k_min = (lambda * full / b as f64).floor() as u32 + 1;
            // A larger cap that needs as many instances as a smaller one that was not even half
            // filled forms the same batches with a longer fill: it cannot do better.
            if prev.is_some_and(|(pb, pk, mean)| k_min >= pk && mean < 0.5 * pb as f64) {
                continue;
            }
            // No item of this stage takes less than a batch of one.
            let floor_ms = t.latency(si, 1) * kappa;
            let at = front.partition_point(|(c, _)| *c <= k_min * share);
            if at > 0 && front[at - 1].1 <= floor_ms {
                continue;
            }
            let svc = |x: u32| t.latency(si, x) * kappa;
            let mut last = f64::INFINITY;
            for k in k_min..=k_min + spare {
                let cost = k * share;
                if cost > max_cost {
                    break;
                }
                let one = server(svc, b, t.max_wait_ms, lambda / k as f64, k);
                if k == k_min {
                    prev = Some((b, k_min, one.batch));
                }
                let delay_ms = identical_from(&one, lambda, k).p99();
                if !delay_ms.is_finite() {
                    continue;
                }
                all.push(Opt {
                    cost,
                    delay_ms,
                    count: k,
                    share,
                    batch: b,
                });
                let at = front.partition_point(|(c, _)| *c <= cost);
                if at == 0 || front[at - 1].1 > delay_ms {
                    // Delays fall with cost along the frontier: drop what this one dominates.
                    let end = at
                        + front[at..]
                            .iter()
                            .take_while(|(_, d)| *d >= delay_ms)
                            .count();
                    front.splice(at..end, [(cost, delay_ms)]);
                }
                // More instances stop paying once the queueing they remove is under 1%.
                if last - delay_ms < 0.01 * delay_ms {
                    break;
                }
                last = delay_ms;
            }
        }
    }
    all.sort_by(|a, b| {
        a.cost
            .cmp(&b.cost)
            .then(a.delay_ms.total_cmp(&b.delay_ms))
            .then((a.count, a.share, a.batch).cmp(&(b.count, b.share, b.batch)))
    });
    let mut out: Vec<Opt> = Vec::new();
    for o in all {
        if out.last().is_none_or(|l| o.delay_ms < l.delay_ms - 1e-9) {
            out.push(o);
        }
    }
    out
}
