//! `sluice pipeline create|update|rm|list|status|invoke`: thin clients of `/v1/pipelines`. A spec
//! file (YAML or JSON) is read and validated here; its directory becomes the stages' working
//! directory, and a `profile.csv` beside it (or `--profile`) is sent along for the planner.

use super::client::{Api, Endpoint};
use super::manage::pretty;
use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use sluice_pipeline::PipelineSpec;
use sluice_worker::pipeline::DeployRequest;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Deploy a pipeline from a spec file.
    Create(DeployArgs),
    /// Replace a deployed pipeline (new spec, profile or policy).
    Update(DeployArgs),
    /// Stop and delete a pipeline.
    Rm {
        name: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// List deployed pipelines.
    List {
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Show a pipeline: plan in force, per-stage queue, batch and latency.
    Status {
        name: String,
        #[command(flatten)]
        ep: Endpoint,
    },
    /// Send one request (a file's bytes, or stdin with `-`) and print the result.
    Invoke {
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
    /// The pipeline spec (YAML or JSON).
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
    };
    req.validate().map_err(anyhow::Error::msg)?;
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
            println!("{}", pretty(&a.body));
        }
        PipelineCommand::Update(args) => {
            let req = deploy_request(&args)?;
            let body = Bytes::from(serde_json::to_vec(&req)?);
            let path = format!("/v1/pipelines/{}", req.spec.name);
            let a = Api::new(&args.ep)
                .call(Method::PUT, &path, Some(body))
                .await?
                .ok()?;
            println!("{}", pretty(&a.body));
        }
        PipelineCommand::Rm { name, ep } => {
            Api::new(&ep)
                .call(Method::DELETE, &format!("/v1/pipelines/{name}"), None)
                .await?
                .ok()?;
            println!("deleted {name}");
        }
        PipelineCommand::List { ep } => {
            let a = Api::new(&ep)
                .call(Method::GET, "/v1/pipelines", None)
                .await?
                .ok()?;
            println!("{}", pretty(&a.body));
        }
        PipelineCommand::Status { name, ep } => {
            let a = Api::new(&ep)
                .call(Method::GET, &format!("/v1/pipelines/{name}"), None)
                .await?
                .ok()?;
            println!("{}", pretty(&a.body));
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
