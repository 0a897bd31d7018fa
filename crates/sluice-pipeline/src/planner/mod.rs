//! Allocation policies: the two Camelot planners (`max-load`, `min-resources`) and four baselines
//! (`even-split`, `time-sharing`, `laius`, `gpulet`), all behind one deterministic entry point,
//! [`plan`]. This module owns the policy names, the goals, the outer searches every policy shares
//! (highest feasible load within the GPUs; least resources at a load) and the checks a returned
//! plan passes (`Plan::check` plus the per-GPU bandwidth cap).
//!
//! Every policy provides a *builder*: given a target load it returns a plan it believes meets the
//! SLO there (or nothing). The shared searches then judge each plan with the same
//! [`PerfModel`]: `MaxLoad` keeps the plan with the highest predicted capacity over a scan and
//! bisection of target loads, `MinResources` tries the target load with growing headroom (×1 …
//! ×3) until the predicted p99 at the real load is within the SLO. Shares are planned in 2% units
//! from 2% up by Camelot (Laius: 10% units; Gpu-let: its partition sizes).

mod camelot;
mod even_split;
mod gpulet;
mod laius;
mod max_load;
mod min_resources;
mod options;
mod pack;
mod time_sharing;

use std::fmt;
use std::str::FromStr;

use crate::model::PerfModel;
use crate::plan::{Instance, Plan, Prediction};
use crate::spec::PipelineSpec;

/// Camelot plans shares in multiples of this many percent.
pub const SHARE_UNIT: u32 = 2;
/// Smallest share Camelot plans, percent (about 1.4 of a 68-SM GPU's SMs; MPS takes any whole
/// percentage and gives at least one SM).
pub const MIN_SHARE: u32 = 2;

/// An allocation policy.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// Camelot `max-load`: the highest load the GPUs serve within the SLO, then top-ups of the
    /// leftover share where they raise capacity most.
    MaxLoad,
    /// Camelot `min-resources`: the least total SM share meeting the SLO at a load.
    MinResources,
    /// Baseline `even-split`: one instance per stage per GPU, SMs divided equally, one batch size.
    EvenSplit,
    /// Baseline `time-sharing`: the `even-split` layout with whole-GPU shares taking turns.
    TimeSharing,
    /// Baseline `laius`: each stage sized alone in 10% quotas for a fixed slice of the SLO, then
    /// knapsack-packed onto GPUs.
    Laius,
    /// Baseline `gpulet`: GPUs split into at most two gpu-lets from a fixed size menu, models
    /// placed heaviest first under the linear interference model.
    Gpulet,
}

impl Policy {
    /// Every policy, Camelot's two first.
    pub const ALL: [Policy; 6] = [
        Policy::MaxLoad,
        Policy::MinResources,
        Policy::EvenSplit,
        Policy::TimeSharing,
        Policy::Laius,
        Policy::Gpulet,
    ];

    /// Whether this is one of the comparison baselines (not a Camelot policy).
    pub fn is_baseline(self) -> bool {
        !matches!(self, Policy::MaxLoad | Policy::MinResources)
    }

    /// The kebab-case name (also `Plan::policy`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::MaxLoad => "max-load",
            Policy::MinResources => "min-resources",
            Policy::EvenSplit => "even-split",
            Policy::TimeSharing => "time-sharing",
            Policy::Laius => "laius",
            Policy::Gpulet => "gpulet",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| PlanError::UnknownPolicy(s.to_string()))
    }
}

/// What a plan is for.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Goal {
    /// The highest load the cluster's GPUs can serve within the SLO.
    MaxLoad,
    /// The least total SM share that meets the SLO at this load.
    MinResources {
        /// The load to meet, requests/s (finite, > 0).
        load_rps: f64,
    },
}

/// Why no plan came out.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// The name matches no [`Policy::name`].
    #[error("unknown policy {0:?}: use max-load, min-resources, even-split, time-sharing, laius or gpulet")]
    UnknownPolicy(String),
    /// A stage's model has no profile.
    #[error("stage {stage:?}: no profile for model {model:?}")]
    NoProfile {
        /// The stage's name.
        stage: String,
        /// Its profile key ([`StageSpec::model`](crate::spec::StageSpec::model)).
        model: String,
    },
    /// The cluster's GPU count is zero.
    #[error("the cluster has no GPUs")]
    NoGpus,
    /// The `min-resources` load is not a finite positive number of requests/s (the value given).
    #[error("load must be a finite number > 0 requests/s, got {0}")]
    BadLoad(f64),
    /// The spec fails validation (the [`SpecError`](crate::spec::SpecError) message).
    #[error("the spec is invalid: {0}")]
    Spec(String),
    /// The policy found no plan meeting the SLO within the cluster.
    #[error("{policy}: {reason}")]
    Infeasible {
        /// The policy that was asked.
        policy: Policy,
        /// What could not be met: the p99 target, the load and the GPU count.
        reason: String,
    },
}

/// Plans `spec` on `model.cluster` with `policy` for `goal`. Deterministic: the same inputs give
/// the same plan. `MaxLoad` returns the plan with the highest predicted capacity within the
/// cluster; `MinResources` the least total SM share meeting the SLO at the load (an error if
/// none does).
pub fn plan(
    spec: &PipelineSpec,
    model: &PerfModel,
    policy: Policy,
    goal: Goal,
) -> Result<Plan, PlanError> {
    spec.validate()
        .map_err(|e| PlanError::Spec(e.to_string()))?;
    if model.cluster.count == 0 {
        return Err(PlanError::NoGpus);
    }
    for s in &spec.stages {
        if !model.profiles.contains(s.model()) {
            return Err(PlanError::NoProfile {
                stage: s.name.clone(),
                model: s.model().to_string(),
            });
        }
    }
    if let Goal::MinResources { load_rps } = goal {
        if !(load_rps.is_finite() && load_rps > 0.0) {
            return Err(PlanError::BadLoad(load_rps));
        }
    }
    let ctx = Ctx {
        spec,
        model,
        policy,
    };
    let found = match policy {
        Policy::MaxLoad | Policy::MinResources => {
            let c = camelot::Camelot::new(&ctx);
            match goal {
                Goal::MaxLoad => max_load::plan(&ctx, &c),
                Goal::MinResources { load_rps } => min_resources::plan(&ctx, &c, load_rps),
            }
        }
        Policy::EvenSplit => ctx.run(goal, &|l| even_split::build(&ctx, l)),
        Policy::TimeSharing => ctx.run(goal, &|l| time_sharing::build(&ctx, l)),
        Policy::Laius => ctx.run(goal, &|l| {
            ctx.tuned(l, &|slos, l| laius::build(&ctx, slos, l))
        }),
        Policy::Gpulet => ctx.run(goal, &|l| {
            ctx.tuned(l, &|slos, l| gpulet::build(&ctx, slos, l))
        }),
    };
    let mut plan = found.ok_or_else(|| PlanError::Infeasible {
        policy,
        reason: match goal {
            Goal::MaxLoad => format!(
                "no plan meets the {} ms p99 target at any load on {} GPU(s)",
                spec.slo_ms, model.cluster.count
            ),
            Goal::MinResources { load_rps } => format!(
                "no plan meets the {} ms p99 target at {load_rps} requests/s on {} GPU(s)",
                spec.slo_ms, model.cluster.count
            ),
        },
    })?;
    plan.explain.push(format!(
        "predicted: capacity {:.1} req/s; p99 {:.1} ms at {:.1} req/s (target {} ms); {:.2} GPUs of SM share on {} GPU(s)",
        plan.predicted.capacity_rps,
        plan.predicted.p99_ms,
        plan.predicted.load_rps,
        spec.slo_ms,
        plan.predicted.gpus_used,
        gpus_touched(&plan)
    ));
    Ok(plan)
}

/// Number of distinct GPUs a plan places instances on.
pub fn gpus_touched(plan: &Plan) -> u32 {
    let mut used: Vec<u32> = plan.instances.iter().map(|x| x.gpu).collect();
    used.sort_unstable();
    used.dedup();
    used.len() as u32
}

/// What every builder needs.
pub(crate) struct Ctx<'a> {
    pub spec: &'a PipelineSpec,
    pub model: &'a PerfModel,
    pub policy: Policy,
}

/// A builder: a plan meant to meet the SLO at a target load, or nothing.
pub(crate) type Build<'b> = dyn Fn(f64) -> Option<Plan> + 'b;

impl Ctx<'_> {
    /// The smallest share Camelot plans for stage `s`: [`MIN_SHARE`], or the smallest measured
    /// share of a profile measured at several (see [`crate::Profiles::measured_floor`]).
    pub fn min_share(&self, s: usize) -> u32 {
        let model = self.spec.stages[s].model();
        self.model
            .profiles
            .measured_floor(model)
            .map_or(MIN_SHARE, |f| f.max(MIN_SHARE))
    }

    /// A plan of this policy over `instances`, prediction not yet filled in.
    pub fn plan(&self, instances: Vec<Instance>, explain: Vec<String>) -> Plan {
        Plan {
            pipeline: self.spec.name.clone(),
            policy: self.policy.name().to_string(),
            gpus: self.model.cluster.count,
            instances,
            predicted: Prediction::default(),
            explain,
        }
    }

    /// Hard constraints plus the bandwidth cap.
    pub fn valid(&self, plan: &Plan) -> bool {
        plan.check(self.spec, &self.model.cluster).is_ok()
            && self.model.bandwidth_violation(self.spec, plan).is_none()
    }

    /// Fills in the prediction at `load_rps` (`None`: at the plan's capacity).
    pub fn finish(&self, mut plan: Plan, load_rps: Option<f64>) -> Plan {
        let ev = self.model.evaluate(self.spec, &plan);
        let capacity = ev.capacity_rps();
        let load = load_rps.unwrap_or(capacity);
        plan.predicted = Prediction {
            capacity_rps: capacity,
            load_rps: load,
            p99_ms: ev.p99_ms(load),
            gpus_used: plan.gpus_used(),
        };
        plan
    }

    /// Runs a builder for `goal` through the shared search.
    pub fn run(&self, goal: Goal, build: &Build<'_>) -> Option<Plan> {
        match goal {
            Goal::MaxLoad => self.search_max_load(build),
            Goal::MinResources { load_rps } => self.search_min_resources(build, load_rps),
        }
    }

    /// A load no plan on the cluster can exceed: every GPU given to the slowest stage at its
    /// most efficient (share, batch).
    pub fn load_bound(&self) -> f64 {
        let n = self.model.cluster.count as f64;
        (0..self.spec.stages.len())
            .map(|s| {
                let mut best = 0.0_f64;
                for share in (MIN_SHARE..=100).step_by(SHARE_UNIT as usize) {
                    for b in batch_candidates(self.spec.stages[s].max_batch) {
                        if let Some(e) = self.model.solo(self.spec, s, b, share) {
                            let per_gpu = (100 / share) as f64 * b as f64 / e.latency_ms * 1000.0;
                            best = best.max(per_gpu);
                        }
                    }
                }
                best * n
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// A plan from `build(load)` that passes the checks and meets the SLO at `load`.
    fn feasible(&self, build: &Build<'_>, load: f64) -> Option<Plan> {
        let plan = build(load)?;
        (self.valid(&plan) && self.model.p99_ms(self.spec, &plan, load) <= self.spec.slo_ms)
            .then_some(plan)
    }

    /// Highest-capacity plan over a 12-point scan of target loads and a bisection above the
    /// highest feasible one.
    pub fn search_max_load(&self, build: &Build<'_>) -> Option<Plan> {
        let bound = self.load_bound();
        if !(bound.is_finite() && bound > 0.0) {
            return None;
        }
        let mut best: Option<Plan> = None;
        let mut keep = |p: Plan| {
            let p = self.finish(p, None);
            let better = best.as_ref().is_none_or(|b| {
                p.predicted.capacity_rps > b.predicted.capacity_rps * (1.0 + 1e-9)
                    || (p.predicted.capacity_rps >= b.predicted.capacity_rps * (1.0 - 1e-9)
                        && p.predicted.gpus_used < b.predicted.gpus_used)
            });
            if better {
                best = Some(p);
            }
        };
        const STEPS: u32 = 12;
        let mut lo = 0.0;
        for i in 1..=STEPS {
            let load = bound * i as f64 / STEPS as f64;
            if let Some(p) = self.feasible(build, load) {
                lo = load;
                keep(p);
            }
        }
        let mut hi = (lo + bound / STEPS as f64).min(bound);
        if lo == 0.0 {
            hi = bound / STEPS as f64;
        }
        for _ in 0..14 {
            let mid = 0.5 * (lo + hi);
            match self.feasible(build, mid) {
                Some(p) => {
                    lo = mid;
                    keep(p);
                }
                None => hi = mid,
            }
        }
        best
    }

    /// The target load with growing headroom until the plan meets the SLO at `load_rps`.
    pub fn search_min_resources(&self, build: &Build<'_>, load_rps: f64) -> Option<Plan> {
        [1.0, 1.1, 1.25, 1.5, 2.0, 3.0].into_iter().find_map(|h| {
            let p = build(load_rps * h)?;
            (self.valid(&p) && self.model.p99_ms(self.spec, &p, load_rps) <= self.spec.slo_ms)
                .then(|| self.finish(p, Some(load_rps)))
        })
    }

    /// Runs a per-stage-target baseline with its targets scaled by 1, 0.9, …, 0.5 and returns the
    /// first plan that meets the end-to-end SLO at `load_rps` under the shared model: the tuning
    /// an operator would do for contention and hand-offs the baseline does not model.
    pub fn tuned(
        &self,
        load_rps: f64,
        build: &dyn Fn(&[f64], f64) -> Option<Plan>,
    ) -> Option<Plan> {
        let slos = self.stage_slos();
        [1.0, 0.9, 0.8, 0.7, 0.6, 0.5].into_iter().find_map(|f| {
            let scaled: Vec<f64> = slos.iter().map(|s| s * f).collect();
            let mut p = self.feasible(&|l| build(&scaled, l), load_rps)?;
            p.explain.push(format!(
                "per-stage targets scaled by {f} to meet the end-to-end SLO"
            ));
            Some(p)
        })
    }

    /// Per-stage latency targets for the pipeline-unaware baselines: the end-to-end SLO split
    /// along each path in proportion to the stages' batch-1 whole-GPU latency, the tightest
    /// split over the paths through a stage.
    pub fn stage_slos(&self) -> Vec<f64> {
        let spec = self.spec;
        let n = spec.stages.len();
        let base: Vec<f64> = (0..n)
            .map(|s| {
                self.model
                    .solo(spec, s, 1, 100)
                    .map_or(1.0, |e| e.latency_ms)
            })
            .collect();
        let order = spec.topo_order().unwrap_or_default();
        // Heaviest path sum ending at / starting from each stage.
        let mut upto = vec![0.0_f64; n];
        for &s in &order {
            upto[s] = base[s]
                + spec
                    .predecessors(s)
                    .iter()
                    .map(|&p| upto[p])
                    .fold(0.0, f64::max);
        }
        let mut from = vec![0.0_f64; n];
        for &s in order.iter().rev() {
            from[s] = base[s]
                + spec
                    .successors(s)
                    .iter()
                    .map(|&c| from[c])
                    .fold(0.0, f64::max);
        }
        (0..n)
            .map(|s| spec.slo_ms * base[s] / (upto[s] + from[s] - base[s]))
            .collect()
    }
}

/// Batch sizes a planner considers for a stage: every size to 32, then powers of two and the
/// stage's maximum.
pub fn batch_candidates(max_batch: u32) -> Vec<u32> {
    let mut out: Vec<u32> = (1..=max_batch.min(32)).collect();
    let mut b = 64;
    while b < max_batch {
        out.push(b);
        b *= 2;
    }
    if max_batch > 32 {
        out.push(max_batch);
    }
    out
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
