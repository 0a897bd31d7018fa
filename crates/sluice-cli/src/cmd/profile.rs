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
    /// Write the CSV here (`-`: standard output). Default: `profile.csv` beside the spec, where
    /// `sluice pipeline create` and `sluice plan` look for it.
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
    let csv = to_csv(&rows?);
    let out = args.out.unwrap_or_else(|| base_dir.join("profile.csv"));
    if out.as_os_str() == "-" {
        print!("{csv}");
        return Ok(());
    }
    write_atomically(&out, csv.as_bytes())?;
    eprintln!("profile written to {}", out.display());
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so a failed
/// write never leaves a truncated profile.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile.csv".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}
