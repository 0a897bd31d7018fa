//! `sluice worker`: run the worker daemon with the embedded defaults, a config file, or both
//! with flags on top. The API token may also come from `SLUICE_AUTH_TOKEN`; `--listen
//! 127.0.0.1:0` binds a free port, reported in the start line and in `<data_dir>/listen.addr`.

use anyhow::{Context, Result};
use clap::Args;
use sluice_cluster::worker::{Agent, AgentConfig};
use sluice_worker::config::WorkerConfig;
use sluice_worker::server::{shutdown_signal, Worker};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Configuration file (TOML); embedded defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config); port 0 picks a free one, written to
    /// <data_dir>/listen.addr once the worker serves.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Register the example functions (examples/functions/*/function.json under this directory).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "examples/functions")]
    examples: Option<PathBuf>,
    /// Use simulated GPUs even if real ones are found.
    #[arg(long)]
    simulate_gpus: bool,
    /// Join a cluster through these etcd endpoints (comma-separated; overrides [cluster] etcd).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// The host:port routers reach this worker at (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// The worker's member id in the cluster (default: derived from the advertised address).
    #[arg(long)]
    id: Option<String>,
}

pub async fn run(args: WorkerArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(p) => WorkerConfig::load(p)?,
        None => WorkerConfig::embedded(),
    };
    if let Some(p) = &args.config {
        // The configuration (it may hold auth_token) is never bound into a sandbox.
        cfg.sandbox.hide.push(p.clone());
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if args.simulate_gpus {
        cfg.gpu.force_simulated = true;
    }
    if !args.etcd.is_empty() {
        cfg.cluster.etcd = args.etcd;
    }
    if args.advertise.is_some() {
        cfg.cluster.advertise = args.advertise;
    }
    if args.id.is_some() {
        cfg.cluster.id = args.id;
    }
    if let Some(dir) = &args.examples {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read examples directory {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("function.json")))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        cfg.functions.extend(files);
    }
    let env_token = std::env::var("SLUICE_AUTH_TOKEN").ok();
    cfg.resolve_token(env_token)
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let cluster = cfg.cluster.clone();
    let worker = Worker::start(cfg).await?;
    let status = worker.state.engine.status();
    eprintln!(
        "sluice worker on http://{addr}: {} function(s), devices: {:?} ({} GPU), sandboxes: {}, policy: {}",
        status.functions,
        status.devices,
        status.gpus.len(),
        status.isolation,
        status.policy
    );
    if let Some(note) = status.note {
        eprintln!("note: {note}");
    }
    if !cluster.enabled() {
        return worker.serve(listener, shutdown_signal()).await;
    }
    let agent_cfg = AgentConfig::from_settings(&cluster, addr)?;
    eprintln!(
        "joining the cluster as {} (advertised at {}) through etcd {}",
        agent_cfg.id,
        agent_cfg.advertise,
        cluster.etcd.join(",")
    );
    let agent = Agent::start(worker.state.clone(), agent_cfg).await?;
    worker
        .serve(listener, async move {
            shutdown_signal().await;
            agent.leave().await;
        })
        .await
}
