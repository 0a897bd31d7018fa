//! `sluice profile`: measure stages of a pipeline across batch sizes and shares, and write the
//! profile table the planner reads (`model,batch,share,latency_ms,sm_util,l2_util,dram_util,
//! mem_mb`). Each (stage, share) gets a fresh sandbox: on a GPU with MPS the share is the MPS
//! thread percentage; without a GPU a CPU quota of that share of the host's cores stands in (the
//! worker deploys stages the same way). Inputs of a stage that is not a source are made by
//! running its predecessors once on the sample inputs at full share. Latency is the mean of
//! `repeats` rotations over the samples (batch k starts at sample k, so every batch size sees the
//! same mix) after one warm-up batch; memory is the sandbox cgroup's peak. Without a GPU the
//! `sm_util` column is the share of the host's cores the stage kept busy (cgroup CPU time over
//! wall time): what a single-threaded stage cannot use, a smaller share does not take away. On a
//! GPU, SM, L2 and DRAM utilisation need a profiler (Nsight Compute) and are left 0.

use super::deploy::{device_env, host_cores, stage_function};
use super::error::{ProfileError, StageError, StageErrorKind as Kind};
use super::instance::launch_stage;
use crate::devices::{BackendKind, GpuInfo};
use crate::engine::StageHost;
use crate::sandbox::{Launcher, Sandbox};
use bytes::Bytes;
use sluice_handoff::frame::{
    decode, encode, BatchRequest, BatchResponse, DataRef, DataRegion, InputRef, OutputMode,
    RequestItem, PIPELINE_INPUT,
};
use sluice_pipeline::PipelineSpec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Stages to profile (names); empty = all.
    pub stages: Vec<String>,
    /// Batch sizes to measure each stage at (non-empty); one row per size and share.
    pub batches: Vec<u32>,
    /// Shares, percent.
    pub shares: Vec<u32>,
    /// Least rotations over the sample inputs per measured point (positive); more are run until
    /// a point's timed window reaches one second (at most 50 times as many).
    pub repeats: usize,
    /// Sample pipeline inputs.
    pub inputs: Vec<Vec<u8>>,
    /// How long each stage sandbox has to start and report ready.
    pub start_timeout: Duration,
}

/// The devices stages are profiled on (the first GPU).
#[derive(Clone, Debug)]
pub struct ProfileDevices {
    /// Real GPUs (shares are MPS thread percentages) or simulated ones (shares are CPU quotas
    /// of the host's cores).
    pub backend: BackendKind,
    /// The devices found; stages run on the first.
    pub gpus: Vec<GpuInfo>,
    /// The running MPS daemon's pipe directory, to measure MPS shares.
    pub mps_pipe: Option<PathBuf>,
}

/// One measured point.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    /// The stage's profile key: its `model`, else its name.
    pub model: String,
    /// Items per batch.
    pub batch: u32,
    /// The stage's share of the device, percent (1..=100).
    pub share: u32,
    /// Mean time of one batch of `batch` items, ms, after a warm-up batch.
    pub latency_ms: f64,
    /// Share of the device the stage kept busy, percent: without a GPU, the sandbox's CPU time
    /// over the wall time, as a share of the host's cores (written as `sm_util`, which the
    /// planner uses to stretch latencies below the smallest measured share). 0 = not measured.
    pub device_util: f64,
    /// Peak memory of the stage sandbox's cgroup so far, MiB; 0 when cgroups are off. One
    /// sandbox serves every batch size of a share, so a row's figure covers the batch
    /// sizes measured before it in that sandbox too.
    pub mem_mb: u64,
}

/// Shortest timed window per point, ms: CPU time is read in clock ticks (10 ms here).
const MIN_WINDOW_MS: f64 = 1000.0;
/// Most rotations a point takes to reach that window, as a multiple of the requested ones.
const MAX_ROUNDS_FACTOR: usize = 50;

/// CSV header of a profile table.
pub const CSV_HEADER: &str = "model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb";

/// The rows as the planner's CSV.
pub fn to_csv(rows: &[ProfileRow]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{:.3},{:.1},0,0,{}\n",
            r.model, r.batch, r.share, r.latency_ms, r.device_util, r.mem_mb
        ));
    }
    out
}

struct Profiler<'a> {
    spec: &'a PipelineSpec,
    base_dir: &'a Path,
    host: StageHost,
    opts: &'a ProfileOptions,
    serial: u64,
}

/// Profiles the stages of `spec` (whose relative paths resolve against `base_dir`).
pub async fn profile(
    spec: &PipelineSpec,
    base_dir: &Path,
    launcher: Launcher,
    devices: ProfileDevices,
    opts: &ProfileOptions,
    mut progress: impl FnMut(&ProfileRow),
) -> Result<Vec<ProfileRow>, ProfileError> {
    let options = |m: &str| Err(ProfileError::Options(m.to_string()));
    if opts.inputs.is_empty() {
        return options("at least one sample input is needed");
    }
    if opts.batches.is_empty() || opts.shares.is_empty() || opts.repeats == 0 {
        return options("batches, shares and repeats must not be empty or zero");
    }
    if let Some(bad) = opts.shares.iter().find(|&&s| s == 0 || s > 100) {
        return options(&format!("share {bad} is outside 1..=100"));
    }
    for name in &opts.stages {
        if spec.stage_index(name).is_none() {
            return Err(ProfileError::UnknownStage {
                stage: name.clone(),
                pipeline: spec.name.clone(),
            });
        }
    }
    let mut p = Profiler {
        spec,
        base_dir,
        host: StageHost {
            launcher,
            backend: devices.backend,
            gpus: 1,
            gpu_info: devices.gpus,
            mps_pipe: devices.mps_pipe,
            mps_user: None,
            start_timeout: opts.start_timeout,
            max_response_bytes: 1 << 30,
            // Profiling runs without a worker: stages from images are refused at start.
            images: None,
        },
        opts,
        serial: std::process::id() as u64 * 1000,
    };
    let order = spec.topo_order()?;
    // outputs[s][i]: stage s's output for sample input i.
    let mut outputs: Vec<Option<Vec<Bytes>>> = vec![None; spec.stages.len()];
    let mut rows = Vec::new();
    for &s in &order {
        let inputs = p.stage_inputs(s, &outputs)?;
        let wanted = opts.stages.is_empty() || opts.stages.contains(&spec.stages[s].name);
        let needed_later = !spec.successors(s).is_empty();
        if wanted {
            for &share in &opts.shares {
                for r in p.measure(s, share, &inputs).await? {
                    progress(&r);
                    rows.push(r);
                }
            }
        }
        if needed_later {
            outputs[s] = Some(p.run_once(s, &inputs).await?);
        }
    }
    Ok(rows)
}

impl Profiler<'_> {
    /// Per sample: the stage's inputs (one per predecessor, or the sample itself).
    fn stage_inputs(
        &self,
        s: usize,
        outputs: &[Option<Vec<Bytes>>],
    ) -> Result<Vec<Vec<Bytes>>, StageError> {
        let preds = self.spec.predecessors(s);
        (0..self.opts.inputs.len())
            .map(|i| {
                if preds.is_empty() {
                    return Ok(vec![Bytes::from(self.opts.inputs[i].clone())]);
                }
                preds
                    .iter()
                    .map(|&p| {
                        outputs[p].as_ref().map(|o| o[i].clone()).ok_or_else(|| {
                            StageError::new(&self.spec.stages[p].name, Kind::NoOutputs)
                        })
                    })
                    .collect()
            })
            .collect()
    }

    async fn start(&mut self, s: usize, share: u32) -> Result<Sandbox, StageError> {
        let st = &self.spec.stages[s];
        let fspec = stage_function(self.spec, s, share, self.base_dir, &self.host);
        self.serial += 1;
        let max_batch = self.opts.batches.iter().max().copied().unwrap_or(1);
        let env = device_env(&self.host, 0, share, st.memory_mb);
        let serial = self.serial;
        launch_stage(&self.host, &fspec, &st.name, max_batch, env, serial, None).await
    }

    /// One batch of the given items; returns each item's output.
    async fn batch(
        &self,
        sb: &Sandbox,
        s: usize,
        items: &[&Vec<Bytes>],
    ) -> Result<Vec<Bytes>, ProfileError> {
        let st = &self.spec.stages[s];
        let preds: Vec<String> = self
            .spec
            .predecessors(s)
            .into_iter()
            .map(|p| self.spec.stages[p].name.clone())
            .collect();
        let mut data = DataRegion::new();
        let items: Vec<RequestItem> = items
            .iter()
            .enumerate()
            .map(|(k, ins)| RequestItem {
                id: k.to_string(),
                out: None,
                inputs: ins
                    .iter()
                    .enumerate()
                    .map(|(j, b)| InputRef {
                        from: preds
                            .get(j)
                            .cloned()
                            .unwrap_or_else(|| PIPELINE_INPUT.into()),
                        data: data.push(b),
                    })
                    .collect(),
            })
            .collect();
        let manifest = BatchRequest {
            stage: st.name.clone(),
            output: OutputMode::Inline,
            items,
        };
        let frame =
            encode(&manifest, data.as_bytes()).map_err(|e| ProfileError::Encode(e.to_string()))?;
        let error = |kind| StageError::new(&st.name, kind);
        let answer = sb
            .client()
            .batch(Bytes::from(frame), self.host.max_response_bytes)
            .await
            .map_err(|e| error(Kind::Call(format!("{e}; stderr: {}", sb.stderr_tail()))))?;
        let (resp, region): (BatchResponse, &[u8]) =
            decode(&answer).map_err(|e| error(Kind::BadFrame(e.to_string())))?;
        let base = answer.len() - region.len();
        let outputs: Result<Vec<Bytes>, StageError> = resp
            .items
            .into_iter()
            .map(|it| match it.result {
                Ok(DataRef::Inline { offset, len }) => {
                    let o = base + offset as usize;
                    Ok(answer.slice(o..o + len as usize))
                }
                Ok(other) => Err(error(Kind::NotInline(other.kind()))),
                Err(e) => Err(error(Kind::Refused(e.to_string()))),
            })
            .collect();
        Ok(outputs?)
    }

    async fn run_once(
        &mut self,
        s: usize,
        inputs: &[Vec<Bytes>],
    ) -> Result<Vec<Bytes>, ProfileError> {
        let mut sb = self.start(s, 100).await?;
        let mut out = Vec::with_capacity(inputs.len());
        let mut result = Ok(());
        for ins in inputs {
            match self.batch(&sb, s, &[ins]).await {
                Ok(mut o) => out.push(o.remove(0)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        sb.kill().await;
        result.map(|_| out)
    }

    async fn measure(
        &mut self,
        s: usize,
        share: u32,
        inputs: &[Vec<Bytes>],
    ) -> Result<Vec<ProfileRow>, ProfileError> {
        let mut sb = self.start(s, share).await?;
        let result = self.measure_in(&sb, s, share, inputs).await;
        sb.kill().await;
        result
    }

    async fn measure_in(
        &self,
        sb: &Sandbox,
        s: usize,
        share: u32,
        inputs: &[Vec<Bytes>],
    ) -> Result<Vec<ProfileRow>, ProfileError> {
        let mut rows = Vec::new();
        let n = inputs.len();
        for &b in &self.opts.batches {
            // Batch k starts at sample k, so over a rotation every sample appears equally often
            // at every batch size, and sizes are compared on the same mix.
            let batch_at = |k: usize| -> Vec<&Vec<Bytes>> {
                (0..b as usize).map(|i| &inputs[(k + i) % n]).collect()
            };
            self.batch(sb, s, &batch_at(0)).await?;
            let mut total = 0.0;
            // At least `repeats` rotations, and whole rotations until the window is long enough
            // for the CPU-time reading (clock ticks) to mean something.
            let mut rounds = 0;
            let cpu_before = cpu_seconds(sb);
            while rounds < self.opts.repeats * n
                || (total < MIN_WINDOW_MS && rounds < MAX_ROUNDS_FACTOR * self.opts.repeats * n)
            {
                for k in rounds..rounds + n {
                    let batch = batch_at(k);
                    let t = Instant::now();
                    self.batch(sb, s, &batch).await?;
                    total += t.elapsed().as_secs_f64() * 1e3;
                }
                rounds += n;
            }
            let busy = match (cpu_before, cpu_seconds(sb)) {
                (Some(a), Some(b)) if total > 0.0 => (b - a) / (total / 1e3),
                _ => 0.0,
            };
            rows.push(ProfileRow {
                model: self.spec.stages[s].model().to_string(),
                batch: b,
                share,
                latency_ms: total / rounds as f64,
                device_util: match self.host.backend {
                    BackendKind::Simulated => (busy / host_cores() * 100.0).clamp(0.0, 100.0),
                    BackendKind::Nvml => 0.0,
                },
                mem_mb: peak_memory_mb(sb),
            });
        }
        Ok(rows)
    }
}

/// CPU time the sandbox's processes have used, seconds: the cgroup's `cpuacct.usage` (v1, when
/// cpuacct is co-mounted) or `cpu.stat` (v2), else the sum of `/proc/<pid>/stat` user + system
/// time over the processes in the cgroup (clock-tick resolution; windows here are seconds long).
fn cpu_seconds(sb: &Sandbox) -> Option<f64> {
    let dirs = sb.cgroup_dirs();
    let direct = dirs.iter().find_map(|d| {
        if let Ok(ns) = std::fs::read_to_string(d.join("cpuacct.usage")) {
            return ns.trim().parse::<f64>().ok().map(|v| v / 1e9);
        }
        let stat = std::fs::read_to_string(d.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v / 1e6)
    });
    if direct.is_some() {
        return direct;
    }
    let procs = dirs
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())?;
    // SAFETY: sysconf(3) takes only an integer name and reads or writes no memory of ours; it
    // cannot cause UB for any name (an unsupported one returns -1, clamped to 1 here).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = procs
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok())
        .filter_map(|stat| {
            // Fields after the command (which may hold spaces) start after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Some(ticks as f64 / hz)
}

/// The sandbox cgroup's peak memory, MB (0 when cgroups are off).
fn peak_memory_mb(sb: &Sandbox) -> u64 {
    sb.cgroup_dirs()
        .iter()
        .flat_map(|d| [d.join("memory.max_usage_in_bytes"), d.join("memory.peak")])
        .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
        .map_or(0, |b| b / (1 << 20))
}
