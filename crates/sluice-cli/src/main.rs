//! `sluice`: the one user-facing binary. Each subcommand lives in `cmd/` and only turns
//! command-line input into calls on the library crates.

mod cmd;

use clap::{Parser, Subcommand};

/// Sluice: a serverless runtime for GPU functions and GPU microservice pipelines.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker daemon (HTTP API, sandboxes, GPU scheduling).
    Worker(cmd::worker::WorkerArgs),
    /// Manage functions on a running worker.
    #[command(subcommand)]
    Fn(cmd::manage::FnCommand),
    /// Manage and invoke pipelines on a running worker.
    #[command(subcommand)]
    Pipeline(cmd::pipeline::PipelineCommand),
    /// Place a pipeline on GPUs with a Camelot policy or a baseline and explain the plan.
    Plan(cmd::plan::PlanArgs),
    /// Measure a pipeline's stages across batch sizes and shares; write the profile CSV.
    Profile(cmd::profile::ProfileArgs),
    /// Invoke a function on a running worker and print its result.
    Invoke(cmd::manage::InvokeArgs),
    /// Show a running worker's status.
    Status {
        #[command(flatten)]
        ep: cmd::client::Endpoint,
    },
    /// Replay a trace through the scheduling policies on a simulated device model.
    Sim(cmd::sim::SimArgs),
    /// Simulate pipeline placement plans: one plan at a load, or the whole planner evaluation.
    SimPipeline(cmd::sim_pipeline::SimPipelineArgs),
    /// Replay a trace (or a Poisson mix) against a running worker, open loop, and report.
    Load(cmd::load::LoadArgs),
}

fn main() -> std::process::ExitCode {
    // `sluice __sandbox-init`: the init of unshare sandboxes (never returns in that mode).
    sluice_sandbox::helper_main();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
        Command::SimPipeline(args) => cmd::sim_pipeline::run(args),
        Command::Worker(args) => block_on(cmd::worker::run(args)),
        Command::Fn(c) => block_on(cmd::manage::fns(c)),
        Command::Pipeline(c) => block_on(cmd::pipeline::run(c)),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Profile(args) => block_on(cmd::profile::run(args)),
        Command::Invoke(args) => block_on(cmd::manage::invoke(args)),
        Command::Status { ep } => block_on(cmd::manage::status(ep)),
        Command::Load(args) => block_on(cmd::load::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs an async command on a multi-threaded runtime.
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// The error and its causes, skipping causes whose text the message already holds.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
