//! Baseline `time-sharing`: no spatial partitioning. Every instance gets the whole GPU and the
//! instances on a GPU take turns (the plan's policy name tells `Plan::check` and the model so).
//! Same layout and search as `even-split`; this module only selects it with whole-GPU shares.

use crate::plan::Plan;
use crate::planner::even_split::build_layout;
use crate::planner::Ctx;

pub(crate) fn build(ctx: &Ctx<'_>, load_rps: f64) -> Option<Plan> {
    build_layout(ctx, load_rps, true)
}
