//! `sluice sim-pipeline`: simulate pipeline placement plans. `run` plans one pipeline with one
//! policy (or reads a plan) and simulates it at a load, optionally searching its peak load;
//! `eval` runs the whole simulated evaluation of the planners (docs/pipelines.md, "Simulated evaluation") and
//! writes `pipelines.json` and `pipelines.md`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sluice_pipeline::contention::Contention;
use sluice_pipeline::gpulet::load_app;
use sluice_pipeline::model::PerfModel;
use sluice_pipeline::planner::{self, Goal, Policy};
use sluice_pipeline::profile::Profiles;
use sluice_pipeline::{Cluster, GpuModel, PipelineSpec, Plan};
use sluice_sim::pipeline::evaluate::{self, EvalConfig};
use sluice_sim::pipeline::{peak_load, simulate, PeakConfig, RunConfig};
use std::path::{Path, PathBuf};

/// Default location of the Gpu-let data (`data/` in the repository; run from its root).
const GPULET_DIR: &str = "data/gpulet-2080ti";
/// Default OCR profile and spec, used by `eval` when both exist.
const OCR_PROFILE: &str = "examples/pipelines/ocr/profile.csv";
const OCR_SPEC: &str = "examples/pipelines/ocr/pipeline.yaml";

#[derive(Args, Debug)]
pub struct SimPipelineArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Plan (or read a plan for) one pipeline and simulate it at a load.
    Run(RunArgs),
    /// The simulated evaluation: every policy on traffic, game and OCR, on 1, 2 and 4 GPUs.
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A Gpu-let application (traffic, game) from --gpulet, or a pipeline spec file (YAML/JSON).
    #[arg(long)]
    pipeline: String,
    /// Stage profiles (CSV from `sluice profile`); needed with a spec file.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Directory of the Gpu-let data.
    #[arg(long, default_value = GPULET_DIR)]
    gpulet: PathBuf,
    /// Planner policy: max-load, min-resources, even-split, time-sharing, laius, gpulet.
    #[arg(long, default_value = "max-load")]
    policy: Policy,
    /// Plan for the lowest resources at --load instead of the highest load.
    #[arg(long)]
    min_resources: bool,
    /// Simulate this plan (JSON, as the planner writes it) instead of planning.
    #[arg(long, conflicts_with_all = ["policy", "min_resources"])]
    plan: Option<PathBuf>,
    /// Number of GPUs.
    #[arg(long, default_value_t = 1)]
    gpus: u32,
    /// Offered load, requests/s (default: the spec's load_rps, else half the plan's predicted
    /// capacity).
    #[arg(long)]
    load: Option<f64>,
    /// Measured seconds of arrivals (after a warm-up of a tenth of it).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Coefficient of variation of service times.
    #[arg(long, default_value_t = 0.05)]
    noise_cv: f64,
    /// Also search the plan's peak load at the spec's p99 target.
    #[arg(long)]
    peak: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Directory of the Gpu-let data.
    #[arg(long, default_value = GPULET_DIR)]
    gpulet: PathBuf,
    /// OCR stage profile (CSV); default examples/pipelines/ocr/profile.csv when it exists.
    #[arg(long, requires = "ocr_spec")]
    ocr_profile: Option<PathBuf>,
    /// OCR pipeline spec; default examples/pipelines/ocr/pipeline.yaml when it exists.
    #[arg(long, requires = "ocr_profile")]
    ocr_spec: Option<PathBuf>,
    /// Leave OCR out even if its default files exist.
    #[arg(long, conflicts_with_all = ["ocr_profile", "ocr_spec"])]
    no_ocr: bool,
    /// GPU counts, comma-separated.
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    gpus: Vec<u32>,
    /// Measured requests per peak-search probe.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Low load as a fraction of the best baseline's simulated peak on the fewest GPUs.
    #[arg(long, default_value_t = 0.2)]
    low_load_frac: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Apps evaluated in parallel.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Directory for pipelines.json and pipelines.md.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON on stdout instead of markdown.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: SimPipelineArgs) -> Result<()> {
    match args.mode {
        Mode::Run(a) => run_one(a),
        Mode::Eval(a) => eval(a),
    }
}

fn run_one(a: RunArgs) -> Result<()> {
    if a.gpus == 0 {
        bail!("--gpus must be at least 1");
    }
    let (spec, model) = load_pipeline(&a.pipeline, a.profile.as_deref(), &a.gpulet, a.gpus)?;
    let plan = match &a.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read plan {}", path.display()))?;
            serde_json::from_str::<Plan>(&text)
                .with_context(|| format!("invalid plan {}", path.display()))?
        }
        None => {
            let goal = if a.min_resources {
                let Some(load_rps) = a.load.or((spec.load_rps > 0.0).then_some(spec.load_rps))
                else {
                    bail!("--min-resources needs --load (or a load_rps in the spec)");
                };
                Goal::MinResources { load_rps }
            } else {
                Goal::MaxLoad
            };
            planner::plan(&spec, &model, a.policy, goal)
                .with_context(|| format!("{} cannot plan {}", a.policy, spec.name))?
        }
    };
    let load = a
        .load
        .or((spec.load_rps > 0.0).then_some(spec.load_rps))
        .unwrap_or(plan.predicted.capacity_rps / 2.0);
    if !(load.is_finite() && load > 0.0) {
        bail!("no positive load to simulate: pass --load");
    }
    let cfg = RunConfig {
        seed: a.seed,
        noise_cv: a.noise_cv,
        ..RunConfig::new(load, a.duration)
    };
    let run = simulate(&spec, &plan, &model, &model.cluster, &cfg)?;
    let predicted = model.predict(&spec, &plan, load);
    let peak = if a.peak {
        let pc = PeakConfig {
            seed: a.seed,
            noise_cv: a.noise_cv,
            ..PeakConfig::default()
        };
        Some(peak_load(
            &spec,
            &plan,
            &model,
            &model.cluster,
            spec.slo_ms,
            &pc,
        )?)
    } else {
        None
    };
    if a.json {
        let v = serde_json::json!({
            "plan": plan,
            "predicted": predicted,
            "run": run.to_json(),
            "peak_rps": peak,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "plan: {} instances, {:.2} GPUs used; predicted capacity {:.1} rps, p99 at {load:.1} rps {:.2} ms (target {:.1} ms)",
        plan.instances.len(),
        plan.gpus_used(),
        predicted.capacity_rps,
        predicted.p99_ms,
        spec.slo_ms
    );
    print!("{}", run.render_text());
    if let Some(p) = peak {
        println!(
            "simulated peak load at the p99 target: {p:.1} rps (bisection to 1%, seed {})",
            a.seed
        );
    }
    Ok(())
}

/// A Gpu-let app by name, or a spec file with its profile.
fn load_pipeline(
    name: &str,
    profile: Option<&Path>,
    gpulet: &Path,
    gpus: u32,
) -> Result<(PipelineSpec, PerfModel)> {
    let cluster = Cluster::new(GpuModel::rtx_2080_ti(), gpus);
    if matches!(name, "traffic" | "game") {
        let spec = load_app(&gpulet.join(format!("{name}.json")))?;
        let model = PerfModel {
            profiles: Profiles::load_gpulet(gpulet)?,
            contention: Contention::load_gpulet(gpulet)?,
            cluster,
        };
        return Ok((spec, model));
    }
    let text = std::fs::read_to_string(name).with_context(|| format!("cannot read spec {name}"))?;
    let spec = PipelineSpec::parse(&text).with_context(|| format!("invalid spec {name}"))?;
    let Some(profile) = profile else {
        bail!("a spec file needs --profile (the CSV from `sluice profile`)");
    };
    let csv = std::fs::read_to_string(profile)
        .with_context(|| format!("cannot read profile {}", profile.display()))?;
    let model = PerfModel {
        profiles: Profiles::from_csv(&csv)?,
        contention: Contention::none(),
        cluster,
    };
    Ok((spec, model))
}

fn eval(a: EvalArgs) -> Result<()> {
    let ocr = match (a.ocr_profile, a.ocr_spec) {
        (Some(p), Some(s)) => Some((p, s)),
        _ if a.no_ocr => None,
        _ => {
            let (p, s) = (PathBuf::from(OCR_PROFILE), PathBuf::from(OCR_SPEC));
            if p.is_file() && s.is_file() {
                Some((p, s))
            } else {
                eprintln!(
                    "note: no OCR profile at {OCR_PROFILE} (or spec at {OCR_SPEC}); OCR skipped"
                );
                None
            }
        }
    };
    let cfg = EvalConfig {
        gpu_counts: a.gpus,
        low_load_frac: a.low_load_frac,
        peak: PeakConfig {
            requests: a.requests,
            seed: a.seed,
            ..PeakConfig::default()
        },
        threads: a.threads,
        ..EvalConfig::new(a.gpulet, ocr)
    };
    let apps = evaluate::load_apps(&cfg)?;
    let quiet = a.quiet;
    let started = std::time::Instant::now();
    let progress = move |line: &str| {
        if !quiet {
            eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
        }
    };
    let result = evaluate::run(&cfg, &apps, &progress)?;
    let md = evaluate::render_markdown(&result);
    let json = serde_json::to_string_pretty(&result)?;
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, text) in [("pipelines.json", &json), ("pipelines.md", &md)] {
            let path = dir.join(file);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if a.json {
        println!("{json}");
    } else {
        print!("{md}");
    }
    Ok(())
}
