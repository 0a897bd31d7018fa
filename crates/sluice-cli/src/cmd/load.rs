//! `sluice load`: an open-loop load generator against a running worker. It replays a trace (the
//! simulator's loaders and load scaling) or a Poisson rate onto registered functions, records
//! every invocation's timing (from the worker's timing headers), and reports with the
//! simulator's summary code, so a live run and `sluice sim` of the same trace print the same
//! table and JSON shape.

use super::client::{Api, Endpoint};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::{Dur, FunctionId, GpuId, Time};
use sluice_sim::record::{InvocationRecord, RunResult};
use sluice_sim::report;
use sluice_sim::trace::{self, Catalog, LoadOptions, Spread, TraceSpec};
use sluice_sim::workload::Workload;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Trace to replay (same specs as `sluice sim`), e.g. iluvatar:<dir> or
    /// 'poisson:squeezenet=20;duration=30'.
    #[arg(long, required_unless_present_any = ["closed", "pipeline"])]
    trace: Option<String>,
    /// Load a deployed pipeline instead of functions: Poisson arrivals at each of --rates.
    #[arg(long, conflicts_with_all = ["trace", "closed"], requires_all = ["rates", "inputs"])]
    pipeline: Option<String>,
    /// Pipeline load: requests per second, one run per rate (each --duration seconds).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Pipeline load: input files, cycled.
    #[arg(long, num_args = 1..)]
    inputs: Vec<std::path::PathBuf>,
    /// Closed loop instead of a trace: this many clients invoke back to back for --duration
    /// seconds (throughput and control-plane overhead).
    #[arg(long, conflicts_with = "trace")]
    closed: Option<usize>,
    /// Seconds of the closed-loop run (and of each pipeline rate).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Registered functions the trace's functions are mapped onto, round-robin by trace function.
    #[arg(long, value_delimiter = ',', required_unless_present = "pipeline")]
    functions: Vec<String>,
    /// Scale inter-arrival times so the offered GPU utilisation on --gpus devices is this.
    #[arg(long)]
    target_util: Option<f64>,
    /// Devices the offered utilisation refers to.
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// Replay only the first N invocations.
    #[arg(long)]
    limit: Option<usize>,
    /// Send each invocation `{"ms": <its GPU time in the trace>}` (for the `spin` function) instead of --input.
    #[arg(long)]
    input_from_trace: bool,
    /// JSON argument of every invocation.
    #[arg(long, default_value = "{}")]
    input: String,
    /// GPU function catalogue the trace is mapped onto (same as `sluice sim --catalog`).
    #[arg(long)]
    catalog: Option<std::path::PathBuf>,
    /// Seed of arrival spreading.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object (the `sluice sim --json` shape).
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    ep: Endpoint,
}

struct Outcome {
    index: usize,
    func: FunctionId,
    sent: Time,
    latency: Dur,
    queue: Dur,
    cold_start: Dur,
    exec: Dur,
    cold: bool,
    ok: bool,
}

fn header_ms(h: &hyper::HeaderMap, name: &str) -> Dur {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(Dur::ZERO, Dur::from_millis_f64)
}

fn workload(args: &LoadArgs) -> Result<Workload> {
    let spec: TraceSpec = args.trace.as_deref().unwrap_or_default().parse()?;
    let catalog = match &args.catalog {
        Some(p) => Catalog::load(p)?,
        None => Catalog::builtin(),
    };
    let opts = LoadOptions {
        seed: args.seed,
        spread: Spread::Poisson,
        catalog,
    };
    let mut w = trace::load(&spec, &opts)?.workload;
    if let Some(n) = args.limit {
        w.arrivals.truncate(n);
    }
    if let Some(u) = args.target_util {
        if !(u.is_finite() && u > 0.0 && u <= 10.0) {
            bail!("--target-util must be in (0, 10], got {u}");
        }
        trace::scale_to_util(&mut w, u, args.gpus)?;
    }
    if w.arrivals.is_empty() {
        bail!("the trace has no invocations");
    }
    Ok(w)
}

pub async fn run(args: LoadArgs) -> Result<()> {
    if let Some(pipeline) = args.pipeline.clone() {
        let load = super::load_pipeline::PipelineLoad {
            pipeline,
            rates: args.rates.clone(),
            duration_s: args.duration,
            inputs: args.inputs.clone(),
            seed: args.seed,
            json: args.json,
        };
        return super::load_pipeline::run(&args.ep, load).await;
    }
    serde_json::from_str::<serde_json::Value>(&args.input)
        .with_context(|| format!("--input is not JSON: {}", args.input))?;
    if let Some(clients) = args.closed {
        return super::closed::run(
            &args.ep,
            &args.functions,
            &args.input,
            clients,
            args.duration,
            args.json,
        )
        .await;
    }
    let w = workload(&args)?;
    let api = Api::new(&args.ep);
    let status = api.call(Method::GET, "/v1/status", None).await?.ok()?;
    let policy = serde_json::from_slice::<serde_json::Value>(&status.body)?["policy"]
        .as_str()
        .unwrap_or("worker")
        .to_string();
    for f in &args.functions {
        api.call(Method::GET, &format!("/v1/functions/{f}"), None)
            .await?
            .ok()
            .with_context(|| format!("function {f:?} is not registered"))?;
    }
    let bar = ProgressBar::with_draw_target(
        Some(w.arrivals.len() as u64),
        if args.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} sent")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix("load");
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(w.arrivals.len())));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(w.arrivals.len());
    for (index, a) in w.arrivals.iter().enumerate() {
        let at = start + Duration::from_micros(a.at.as_micros());
        tokio::time::sleep_until(at.into()).await;
        bar.inc(1);
        let name = &args.functions[a.func.index() % args.functions.len()];
        let body = if args.input_from_trace {
            let ms = w.functions[a.func.index()].gpu_warm.as_millis_f64();
            Bytes::from(serde_json::json!({ "ms": ms }).to_string())
        } else {
            Bytes::from(args.input.clone())
        };
        let (api, outcomes, path, func) = (
            api.clone(),
            outcomes.clone(),
            format!("/v1/functions/{name}/invoke"),
            a.func,
        );
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = api.call(Method::POST, &path, Some(body)).await;
            let latency = sent.elapsed();
            let (ok, h) = match r {
                Ok(a) => (a.status.is_success(), a.headers),
                Err(_) => (false, hyper::HeaderMap::new()),
            };
            let out = Outcome {
                index,
                func,
                sent: Time::from_micros(sent.duration_since(start).as_micros() as u64),
                latency: Dur::from_micros(latency.as_micros() as u64),
                queue: header_ms(&h, "x-sluice-queue-ms"),
                cold_start: header_ms(&h, "x-sluice-cold-start-ms"),
                exec: header_ms(&h, "x-sluice-exec-ms"),
                cold: h.get("x-sluice-cold").is_some_and(|v| v == "true"),
                ok,
            };
            outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(out);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    bar.finish_and_clear();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
    let cold_starts_ms = cold_start_samples(&outcomes);
    let result = to_run(&w, &args, policy, outcomes, start.elapsed());
    let failed = result.invocations - result.records.len() as u64;
    let summary = report::summarize(&result);
    if args.json {
        let mut v = report::to_json(&[summary]);
        if let Some(o) = v.as_object_mut() {
            o.insert("trace".into(), w.name.clone().into());
            o.insert("failed".into(), failed.into());
            o.insert("cold_start_samples_ms".into(), cold_starts_ms.into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "live run against {}: {}   failed: {failed}",
            args.ep.url, w.name
        );
        print!("{}", report::render_table(&[summary]));
    }
    Ok(())
}

/// The cold starts the worker reported (`x-sluice-cold-start-ms`) for the invocations that
/// succeeded cold, in ms, in the order they were sent: what `sluice sim` can draw from
/// (`device.cold_start_samples_ms`).
fn cold_start_samples(outs: &[Outcome]) -> Vec<f64> {
    let mut cold: Vec<&Outcome> = outs.iter().filter(|o| o.ok && o.cold).collect();
    cold.sort_by_key(|o| o.index);
    cold.iter()
        .map(|o| o.cold_start.as_micros() as f64 / 1e3)
        .collect()
}

/// Turns the outcomes into the simulator's record shape (failed invocations have no record).
fn to_run(
    w: &Workload,
    args: &LoadArgs,
    policy: String,
    mut outs: Vec<Outcome>,
    span: Duration,
) -> RunResult {
    outs.sort_by_key(|o| o.index);
    let records: Vec<InvocationRecord> = outs
        .iter()
        .filter(|o| o.ok)
        .map(|o| {
            let dispatched = o.sent + o.queue;
            InvocationRecord {
                id: o.index as u64,
                func: o.func,
                arrival: o.sent,
                dispatched,
                started: dispatched + o.cold_start,
                finished: o.sent + o.latency,
                gpu: GpuId(0),
                cold: o.cold,
                solo: w.functions[o.func.index()].gpu_warm,
                bytes_to_device: 0,
            }
        })
        .collect();
    let busy = outs
        .iter()
        .filter(|o| o.ok)
        .fold(Dur::ZERO, |acc, o| acc + o.exec);
    RunResult {
        policy,
        workload: w.name.clone(),
        functions: w.functions.iter().map(|f| f.name.clone()).collect(),
        invocations: outs.len() as u64,
        cold_starts: outs.iter().filter(|o| o.ok && o.cold).count() as u64,
        // A client sees that a call started cold, not why.
        cold_causes: None,
        records,
        gpus: args.gpus,
        makespan: Dur::from_micros(span.as_micros() as u64),
        gpu_busy: vec![busy],
        bytes_to_device: 0,
        bytes_to_host: 0,
        offered_util: w.offered_util(args.gpus),
        rejected: 0,
    }
}
