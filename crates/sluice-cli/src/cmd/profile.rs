//! `sluice profile`: measure a pipeline's stages across batch sizes and SM shares (CPU quota
//! standing in for the share without a GPU) and write the profile CSV that `sluice plan` and
//! `sluice pipeline create` read.

use anyhow::{Context, Result};
use clap::Args;
use sluice_worker::devices::{self, BackendKind, SimulatedConfig};
use sluice_worker::pipeline::profile::{profile, to_csv, ProfileDevices, ProfileOptions};
use sluice_worker::sandbox::{Launcher, LauncherConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// The pipeline spec (YAML or JSON).
    spec: PathBuf,
    /// Sample inputs (files), cycled to fill batches.
    #[arg(long, num_args = 1.., required = true)]
    inputs: Vec<PathBuf>,
    /// Stages to measure (default: all).
    #[arg(long, value_delimiter = ',')]
    stages: Vec<String>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    batches: Vec<u32>,
    /// SM shares, percent (CPU quota as that share of the host's cores without a GPU).
    #[arg(long, value_delimiter = ',', default_value = "50,100")]
    shares: Vec<u32>,
    /// Rotations over the samples per point (the mean batch time is kept).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Write the CSV here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use MPS shares on a GPU (the MPS daemon must be running; its pipe directory is
    /// $CUDA_MPS_PIPE_DIRECTORY, default /tmp/nvidia-mps).
    #[arg(long)]
    mps: bool,
}

pub async fn run(args: ProfileArgs) -> Result<()> {
    let spec = super::pipeline::read_spec(&args.spec)?;
    let abs = std::fs::canonicalize(&args.spec)?;
    let base_dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let inputs = args
        .inputs
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read input {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let scratch = std::env::temp_dir().join(format!("sluice-profile-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let detected = devices::detect(&SimulatedConfig::default(), false);
    let backend = detected.kind();
    if backend == BackendKind::Simulated {
        eprintln!(
            "no GPU: a CPU quota of each share of this host's cores stands in for the SM share"
        );
    }
    let opts = ProfileOptions {
        stages: args.stages.clone(),
        batches: args.batches.clone(),
        shares: args.shares.clone(),
        repeats: args.repeats,
        inputs,
        start_timeout: Duration::from_secs(60),
    };
    let mps_pipe = (args.mps && backend == BackendKind::Nvml).then(|| {
        std::env::var_os("CUDA_MPS_PIPE_DIRECTORY")
            .map_or_else(|| PathBuf::from("/tmp/nvidia-mps"), PathBuf::from)
    });
    let devices = ProfileDevices {
        backend,
        gpus: detected.gpus().to_vec(),
        mps_pipe,
    };
    let launcher = Launcher::new(LauncherConfig::new(scratch.join("sandboxes")))?;
    let rows = profile(&spec, &base_dir, launcher, devices, &opts, |r| {
        eprintln!(
            "{:>10} batch {:>3} share {:>3}%: {:9.2} ms  {:>5} MB",
            r.model, r.batch, r.share, r.latency_ms, r.mem_mb
        )
    })
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let csv = to_csv(&rows.map_err(anyhow::Error::msg)?);
    match &args.out {
        Some(p) => {
            std::fs::write(p, csv).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{csv}"),
    }
    Ok(())
}
