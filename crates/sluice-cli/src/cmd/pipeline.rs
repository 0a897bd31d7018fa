//! `sluice pipeline create|update|rm|list|status|invoke`: thin clients of `/v1/pipelines`. A spec
//! file (YAML or JSON) is read and validated here; its directory becomes the stages' working
//! directory, and a `profile.csv` beside it (or `--profile`) is sent along for the planner.

use super::client::{Api, Endpoint};
use super::manage::pretty;
use super::view;
use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use sluice_pipeline::PipelineSpec;
use sluice_worker::pipeline::{Autoscale, DeployRequest};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Deploy a pipeline from a spec file.
    #[command(after_help = "Examples:\n  \
        sluice pipeline create examples/pipelines/ocr/pipeline.yaml --load 2\n  \
        sluice pipeline create examples/pipelines/ocr/pipeline.yaml --policy max-load --no-autoscale")]
    Create(DeployArgs),
    /// Replace a deployed pipeline (new spec, profile, policy or autoscaling).
    #[command(after_help = "Example:\n  \
        sluice pipeline update examples/pipelines/ocr/pipeline.yaml --load 4")]
    Update(DeployArgs),
    /// Stop and delete a pipeline.
    #[command(after_help = "Example:\n  sluice pipeline rm ocr")]
    Rm {
        /// The pipeline's name (the `name` in its spec).
        name: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// List deployed pipelines.
    #[command(after_help = "Examples:\n  sluice pipeline list\n  sluice pipeline list --json")]
    List {
        /// Print the API's JSON answer instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Show a pipeline: plan in force, per-stage queue, batch and latency, autoscaling, plan
    /// changes.
    #[command(
        after_help = "Examples:\n  sluice pipeline status ocr\n  sluice pipeline status ocr --json"
    )]
    Status {
        /// The pipeline's name.
        name: String,
        /// Print the API's JSON answer instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Send one request (a file's bytes, or stdin with `-`) and print the result.
    #[command(after_help = "Example:\n  \
        sluice pipeline invoke ocr examples/pipelines/ocr/samples/receipt.png -v")]
    Invoke {
        /// The pipeline's name.
        name: String,
        /// Input file; `-` reads stdin.
        input: PathBuf,
        /// Print the per-stage timing to stderr.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        ep: Endpoint,
    },
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The pipeline spec (YAML or JSON); its directory is the stages' working directory.
    spec: PathBuf,
    /// Stage profiles (CSV from `sluice profile`); default: profile.csv beside the spec, if any.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Deploy without a profile even if one is beside the spec.
    #[arg(long, conflicts_with = "profile")]
    no_profile: bool,
    /// Planner policy (max-load, min-resources, or a baseline).
    #[arg(long)]
    policy: Option<String>,
    /// GPUs the plan may use.
    #[arg(long)]
    gpus: Option<u32>,
    /// Load to plan for, requests/s (default: the spec's load_rps).
    #[arg(long)]
    load: Option<f64>,
    /// Keep the plan as deployed: no re-planning from measured load.
    #[arg(long)]
    no_autoscale: bool,
    /// Least load autoscaling plans for when load is low, requests/s (default: the deployed load).
    #[arg(long, conflicts_with = "no_autoscale")]
    min_load: Option<f64>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    ep: Endpoint,
}

/// Reads and validates a spec file.
pub fn read_spec(path: &Path) -> Result<PipelineSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pipeline spec {}", path.display()))?;
    PipelineSpec::parse(&text).with_context(|| format!("in {}", path.display()))
}

/// The deploy request a spec file and flags make.
pub fn deploy_request(args: &DeployArgs) -> Result<DeployRequest> {
    let spec = read_spec(&args.spec)?;
    let abs = std::fs::canonicalize(&args.spec)
        .with_context(|| format!("cannot resolve {}", args.spec.display()))?;
    let base_dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = base_dir.join("profile.csv");
    let profile = match (&args.profile, args.no_profile) {
        (_, true) => None,
        (Some(p), _) => Some(p.clone()),
        (None, _) => beside.is_file().then_some(beside),
    };
    let profile_csv = profile
        .map(|p| {
            std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read profile {}", p.display()))
        })
        .transpose()?;
    let req = DeployRequest {
        spec,
        base_dir,
        profile_csv,
        policy: args.policy.clone(),
        gpus: args.gpus,
        load_rps: args.load,
        controller: None,
        autoscale: Autoscale {
            enabled: !args.no_autoscale,
            min_load_rps: args.min_load,
        },
    };
    req.validate()?;
    Ok(req)
}

pub async fn run(cmd: PipelineCommand) -> Result<()> {
    match cmd {
        PipelineCommand::Create(args) => {
            let req = deploy_request(&args)?;
            let body = Bytes::from(serde_json::to_vec(&req)?);
            let a = Api::new(&args.ep)
                .call(Method::POST, "/v1/pipelines", Some(body))
                .await?
                .ok()?;
            show_pipeline(&a.body, args.json)?;
        }
        PipelineCommand::Update(args) => {
            let req = deploy_request(&args)?;
            let body = Bytes::from(serde_json::to_vec(&req)?);
            let path = format!("/v1/pipelines/{}", req.spec.name);
            let a = Api::new(&args.ep)
                .call(Method::PUT, &path, Some(body))
                .await?
                .ok()?;
            show_pipeline(&a.body, args.json)?;
        }
        PipelineCommand::Rm { name, ep } => {
            Api::new(&ep)
                .call(Method::DELETE, &format!("/v1/pipelines/{name}"), None)
                .await?
                .ok()?;
            println!("deleted {name}");
        }
        PipelineCommand::List { json, ep } => {
            let a = Api::new(&ep)
                .call(Method::GET, "/v1/pipelines", None)
                .await?
                .ok()?;
            if json {
                println!("{}", pretty(&a.body));
            } else {
                let all: Vec<serde_json::Value> = serde_json::from_slice(&a.body)
                    .with_context(|| format!("unexpected answer: {}", a.text()))?;
                if all.is_empty() {
                    println!("no pipelines");
                }
                for v in all {
                    print!("{}", view::pipeline_summary(&v, unix_ms()));
                }
            }
        }
        PipelineCommand::Status { name, json, ep } => {
            let a = Api::new(&ep)
                .call(Method::GET, &format!("/v1/pipelines/{name}"), None)
                .await?
                .ok()?;
            show_pipeline(&a.body, json)?;
        }
        PipelineCommand::Invoke {
            name,
            input,
            verbose,
            ep,
        } => {
            let bytes = if input.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&input)
                    .with_context(|| format!("cannot read input {}", input.display()))?
            };
            let path = format!("/v1/pipelines/{name}/invoke");
            let a = Api::new(&ep)
                .call(Method::POST, &path, Some(Bytes::from(bytes)))
                .await?
                .ok()?;
            if verbose {
                for h in ["x-sluice-total-ms", "x-sluice-stages"] {
                    if let Some(v) = a.headers.get(h).and_then(|v| v.to_str().ok()) {
                        eprintln!("{h}: {v}");
                    }
                }
            }
            println!("{}", pretty(&a.body));
        }
    }
    Ok(())
}

/// Prints a pipeline view: its summary, or the JSON with `json`.
fn show_pipeline(body: &Bytes, json: bool) -> Result<()> {
    if json {
        println!("{}", pretty(body));
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .with_context(|| format!("unexpected answer: {}", String::from_utf8_lossy(body)))?;
    print!("{}", view::pipeline_summary(&v, unix_ms()));
    Ok(())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
