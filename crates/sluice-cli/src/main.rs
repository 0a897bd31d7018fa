//! `sluice`: the one user-facing binary. Each subcommand lives in `cmd/` and only turns
//! command-line input into calls on the library crates.

mod cmd;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: every request through a router, a worker or the
/// load generator makes a few dozen small allocations (hyper, axum, tokio), and glibc's malloc
/// and free were 8% of their CPU under load (docs/cluster.md, "Measured figures").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[command(after_help = "Examples:\n  \
        sluice worker --examples                 # embedded defaults, example functions registered\n  \
        sluice worker --config worker.toml --listen 127.0.0.1:9000")]
    Worker(cmd::worker::WorkerArgs),
    /// Run a stateless cluster router in front of workers (etcd registry, NATS JetStream queue).
    #[command(after_help = "Examples:\n  \
        sluice router --etcd http://127.0.0.1:2379 --nats nats://127.0.0.1:4222\n  \
        sluice router --config router.toml --listen 127.0.0.1:8090")]
    Router(cmd::router::RouterArgs),
    /// Manage functions on a running worker.
    #[command(subcommand)]
    Fn(cmd::manage::FnCommand),
    /// Manage a running worker's container images.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Manage and invoke pipelines on a running worker.
    #[command(subcommand)]
    Pipeline(cmd::pipeline::PipelineCommand),
    /// Place a pipeline on GPUs with a Camelot policy or a baseline and explain the plan.
    #[command(after_help = "Examples:\n  \
        sluice plan data/gpulet-2080ti/traffic.json --gpus 2 --explain\n  \
        sluice plan examples/pipelines/ocr/pipeline.yaml --load 2 --policy laius")]
    Plan(cmd::plan::PlanArgs),
    /// Measure a pipeline's stages across batch sizes and shares; write the profile CSV.
    #[command(after_help = "Example:\n  \
        sluice profile examples/pipelines/ocr/pipeline.yaml \\\n    \
        --inputs examples/pipelines/ocr/samples/*.png   # writes profile.csv beside the spec")]
    Profile(cmd::profile::ProfileArgs),
    /// Invoke a function on a running worker and print its result.
    #[command(after_help = "Examples:\n  \
        sluice invoke hello '{\"name\":\"sluice\"}' -v\n  \
        sluice invoke hello '{\"name\":\"later\"}' --async   # exits 1 if the invocation failed")]
    Invoke(cmd::manage::InvokeArgs),
    /// Find accepted (asynchronous) invocations and show one with its result and logs.
    #[command(subcommand)]
    Invocations(cmd::invocations::InvocationsCommand),
    /// Print a function's recent output (its sandboxes' stdout and stderr).
    #[command(after_help = "Examples:
  sluice logs hello
  sluice logs hello --follow")]
    Logs(cmd::logs::LogsArgs),
    /// Show a running worker's status: devices, sandboxes, queues, asynchronous invocations.
    #[command(after_help = "Examples:\n  sluice status\n  sluice status --json")]
    Status {
        /// Print the API's JSON answer instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ep: cmd::client::Endpoint,
    },
    /// Replay a trace through the scheduling policies on a simulated device model.
    #[command(after_help = "Examples:\n  \
        sluice sim --trace iluvatar:data/iluvatar-paper-trace --policies fcfs,mqfq-sticky\n  \
        sluice sim --trace 'poisson:squeezenet=5,rnn=2;duration=600' --gpus 2 --json\n  \
        sluice sim --trace 'synthetic:functions=1000;invocations=1500000;median_ms=5000' --workers 100 --gpus 4 --routers ch-bl,random --churn 'leave:10@21600'")]
    Sim(cmd::sim::SimArgs),
    /// Simulate pipeline placement plans: one plan at a load, or the whole planner evaluation.
    #[command(after_help = "Example:\n  \
        sluice sim-pipeline eval --gpulet data/gpulet-2080ti --out out/pipelines")]
    SimPipeline(cmd::sim_pipeline::SimPipelineArgs),
    /// Replay a trace (or a Poisson mix) against a running worker, open loop, and report.
    #[command(after_help = "Examples:\n  \
        sluice load --trace 'poisson:squeezenet=5;duration=30'\n  \
        sluice load --closed 16 --functions noop --duration 10\n  \
        sluice load --pipeline ocr --rates 1,2,4 --duration 30 --inputs examples/pipelines/ocr/samples/*.png")]
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
        Command::Router(args) => block_on(cmd::router::run(args)),
        Command::Fn(c) => block_on(cmd::manage::fns(c)),
        Command::Image(c) => block_on(cmd::image::run(c)),
        Command::Pipeline(c) => block_on(cmd::pipeline::run(c)),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Profile(args) => block_on(cmd::profile::run(args)),
        Command::Invoke(args) => block_on(cmd::manage::invoke(args)),
        Command::Status { json, ep } => block_on(cmd::manage::status(ep, json)),
        Command::Invocations(c) => block_on(cmd::invocations::run(c)),
        Command::Logs(args) => block_on(cmd::logs::run(args)),
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
