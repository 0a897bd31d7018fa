//! `sluice router`: run a stateless cluster router (docs/cluster.md) with the embedded
//! defaults, a config file, or both with flags on top.

use anyhow::{Context, Result};
use clap::Args;
use sluice_cluster::config::RouterConfig;
use sluice_cluster::router::Router;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RouterArgs {
    /// Configuration file (TOML); embedded defaults otherwise (config/router.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config); port 0 picks a free one.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// etcd endpoints, comma-separated (overrides the config).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// NATS server with JetStream for asynchronous invocations (overrides the config).
    #[arg(long)]
    nats: Option<String>,
    /// This router's id (default: host name and process id).
    #[arg(long)]
    id: Option<String>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

pub async fn run(args: RouterArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(p) => RouterConfig::load(p)?,
        None => RouterConfig::embedded()?,
    };
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if !args.etcd.is_empty() {
        cfg.etcd = args.etcd;
    }
    if args.nats.is_some() {
        cfg.nats = args.nats;
    }
    if args.id.is_some() {
        cfg.id = args.id;
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let router = Router::start(cfg).await?;
    if let Some(f) = &args.addr_file {
        std::fs::write(f, addr.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    let s = &router.state;
    eprintln!(
        "sluice router {} on http://{addr}: {} worker(s), {} function(s), async {}",
        s.id,
        s.members.len(),
        s.functions.len(),
        if s.queue.is_some() {
            "on"
        } else {
            "off (no --nats)"
        }
    );
    router
        .serve(listener, sluice_worker::server::shutdown_signal())
        .await?;
    Ok(())
}
