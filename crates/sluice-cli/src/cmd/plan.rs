//! `sluice plan`: place a pipeline with one of the planner's policies and print the plan, its
//! predicted capacity and p99, and (with `--explain`) why. The spec is a Sluice pipeline spec
//! (YAML/JSON) with a profile CSV, or a Gpu-let application (`traffic.json`, `game.json`), whose
//! directory's `UTIL.CSV`, `mem-config.json` and `INT_MODEL_CONSTANT.CSV` give the profiles and
//! the contention model.

use anyhow::{Context, Result};
use clap::Args;
use sluice_pipeline::contention::Contention;
use sluice_pipeline::model::PerfModel;
use sluice_pipeline::planner::{self, Goal, Policy};
use sluice_pipeline::profile::Profiles;
use sluice_pipeline::{Cluster, GpuModel, PipelineSpec};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Pipeline spec (YAML/JSON) or a Gpu-let application JSON.
    spec: PathBuf,
    /// Plan for the highest load on this many GPUs.
    #[arg(long, required_unless_present = "load", conflicts_with = "load")]
    gpus: Option<u32>,
    /// Plan the least resources that meet the target at this load (requests/s).
    #[arg(long)]
    load: Option<f64>,
    /// GPUs available to a --load plan.
    #[arg(long, default_value_t = 4)]
    max_gpus: u32,
    /// Policy: max-load, min-resources, even-split, time-sharing, laius, gpulet
    /// (default: max-load with --gpus, min-resources with --load).
    #[arg(long)]
    policy: Option<String>,
    /// Stage profiles (CSV from `sluice profile`); default: profile.csv beside the spec.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Print the planner's reasons.
    #[arg(long)]
    explain: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

fn is_gpulet_app(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("Models").is_some())
}

/// The spec and the model to plan it with.
fn load(args: &PlanArgs, gpus: u32) -> Result<(PipelineSpec, PerfModel)> {
    if is_gpulet_app(&args.spec) {
        let spec = sluice_pipeline::gpulet::load_app(&args.spec)?;
        let dir = args.spec.parent().unwrap_or(Path::new("."));
        let model = PerfModel::gpulet(dir, gpus)
            .with_context(|| format!("loading Gpu-let profiles from {}", dir.display()))?;
        return Ok((spec, model));
    }
    let spec = super::pipeline::read_spec(&args.spec)?;
    let profile = args.profile.clone().unwrap_or_else(|| {
        args.spec
            .parent()
            .unwrap_or(Path::new("."))
            .join("profile.csv")
    });
    let text = std::fs::read_to_string(&profile).with_context(|| {
        format!(
            "cannot read the profile {} (make one with `sluice profile`)",
            profile.display()
        )
    })?;
    let profiles =
        Profiles::from_csv(&text).with_context(|| format!("in {}", profile.display()))?;
    let model = PerfModel {
        profiles,
        contention: Contention::none(),
        cluster: Cluster::new(GpuModel::rtx_2080_ti(), gpus),
    };
    Ok((spec, model))
}

pub fn run(args: PlanArgs) -> Result<()> {
    let (gpus, goal, default) = match (args.gpus, args.load) {
        (Some(n), _) => (n, Goal::MaxLoad, Policy::MaxLoad),
        (None, Some(l)) => (
            args.max_gpus,
            Goal::MinResources { load_rps: l },
            Policy::MinResources,
        ),
        (None, None) => anyhow::bail!("give --gpus N or --load R"),
    };
    if gpus == 0 {
        anyhow::bail!("--gpus must be at least 1");
    }
    let policy = match &args.policy {
        Some(p) => p.parse::<Policy>()?,
        None => default,
    };
    let (spec, model) = load(&args, gpus)?;
    let plan = planner::plan(&spec, &model, policy, goal)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    print!(
        "{}",
        sluice_pipeline::render_with_model(&plan, &spec, &model)
    );
    if args.explain {
        println!("why:");
        for line in &plan.explain {
            println!("  - {line}");
        }
    }
    Ok(())
}
