//! `sluice sim`: replay a trace through one or more policies on the simulated device model and
//! report latency, fairness, utilisation and memory movement beside the ideal bound of the same
//! arrivals; with `--capacity`, the fewest GPUs on which each policy meets a latency target;
//! with `--workers`, a simulated cluster behind each router (`sim_cluster`).

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_sim::capacity::{self, Slo};
use sluice_sim::config::SimConfig;
use sluice_sim::experiment::{Experiment, LoadResult};
use sluice_sim::report::{self, Summary, SweepRow};
use sluice_sim::trace::{Catalog, Spread, TraceSpec};
use sluice_sim::workload::Workload;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// synthetic:functions=<n>;invocations=<total>[;duration=<s>][;seed=<k>] |
    /// azure2019:<dir>/<N>[;sample=<K>][;timing=trace|class] | iluvatar:<trace.csv>,<metadata.csv> |
    /// poisson:<class>=<rate>[,…][;duration=<s>]
    #[arg(long)]
    pub(crate) trace: String,
    /// Comma-separated queueing policies: fcfs, sjf, eedf, batch, paella, mqfq, mqfq-sticky.
    #[arg(long, default_value = "fcfs,mqfq-sticky", value_delimiter = ',')]
    pub(crate) policies: Vec<String>,
    /// Number of GPUs (overrides the config).
    #[arg(long)]
    gpus: Option<usize>,
    /// Offered GPU utilisation(s) to scale the trace to, comma-separated (e.g. 0.5,0.8,0.95).
    /// Without it the trace is replayed at its recorded rate.
    #[arg(long, value_delimiter = ',')]
    target_util: Vec<f64>,
    /// Seed for arrival spreading and synthetic mixes (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// Spread of arrivals within an Azure minute: poisson or uniform (overrides the config).
    #[arg(long)]
    spread: Option<Spread>,
    /// Salt of the device placement's keys: another layout of which device is each function's
    /// home (0, the default: the pinned layout; overrides the config's
    /// `scheduler.placement.key_salt`). Replicas that differ only in it tell a policy's effect
    /// from where the hash put a few functions (`scripts/sweep-replicas.sh`).
    #[arg(long)]
    key_salt: Option<u64>,
    /// Simulator configuration file (TOML); embedded defaults otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// GPU function catalogue (TOML) that trace functions are mapped onto.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
    /// Directory for summaries (summary.json, sweep.md) and SVG plots.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also write one CSV of per-invocation records per policy and load into --out.
    #[arg(long, requires = "out")]
    records: bool,
    /// Reject an arrival whose predicted queueing delay exceeds this many ms (overrides the
    /// config's admission.max_queue_ms; off by default).
    #[arg(long)]
    max_queue_ms: Option<f64>,
    /// Sandboxes per function created before the first arrival, as an operator does with the
    /// worker's prewarm API (overrides the config's prewarm.per_function; 0 by default).
    #[arg(long, conflicts_with = "workers")]
    prewarm: Option<u32>,
    /// Instead of one run per policy: the fewest GPUs on which each policy meets --slo with the
    /// trace at its recorded rate.
    #[arg(long, requires = "slo", conflicts_with_all = ["target_util", "gpus", "out"])]
    capacity: bool,
    /// The latency target of --capacity: p99=<ms> or mean=<ms>.
    #[arg(long, requires = "capacity")]
    slo: Option<Slo>,
    /// The most GPUs --capacity tries.
    #[arg(long, default_value_t = 16, requires = "capacity")]
    max_gpus: usize,
    /// Simulate a cluster of this many workers (each --gpus GPUs, its own scheduler and device
    /// model) behind the routers of --routers; each worker runs the config's policy, or the one
    /// policy given with --policies.
    #[arg(long, conflicts_with_all = ["capacity", "target_util", "records"])]
    pub(crate) workers: Option<usize>,
    /// With --workers: comma-separated routers (ch-bl, ch-rlu, random, round-robin,
    /// least-loaded, p2c).
    #[arg(
        long,
        default_value = "ch-bl,ch-rlu,random,round-robin,least-loaded,p2c",
        value_delimiter = ',',
        requires = "workers"
    )]
    pub(crate) routers: Vec<String>,
    /// With --workers: workers leaving and joining, e.g. `leave:3@3600,join:3@7200` (count @
    /// seconds; leavers drain, joiners start cold).
    #[arg(long, requires = "workers")]
    pub(crate) churn: Option<String>,
    /// With --workers: the load bound's epsilon of the hashing routers (default 0.05, the
    /// cluster router's).
    #[arg(long, requires = "workers")]
    pub(crate) epsilon: Option<f64>,
    /// With --workers: how far above its bound a warm worker still takes work under the hashing
    /// routers (0: the plain bounded-load rule).
    #[arg(long, requires = "workers")]
    pub(crate) hint_slack: Option<f64>,
    /// With --workers: arrivals per second above which ch-rlu lets a function spill (the
    /// cluster router's `popular_rps`, default 5).
    #[arg(long, requires = "workers")]
    pub(crate) popular_rps: Option<f64>,
    /// With --workers: ch-rlu lets an unpopular function spill once its home is past this
    /// multiple of its bound (the cluster router's `gate_ceiling`, default 2; 0: never, the
    /// paper's gate).
    #[arg(long, requires = "workers")]
    pub(crate) gate_ceiling: Option<f64>,
    /// With --workers: randomised rounding of the hashing routers' load bound (`true`, the
    /// default, as in the cluster router) or its plain ceiling (`false`).
    #[arg(long, requires = "workers")]
    pub(crate) fractional: Option<bool>,
    /// With --workers: distinct workers the hashing routers walk clockwise from a function's
    /// home before the power-of-two fallback (default 32, the cluster router's; 0: no limit).
    #[arg(long, requires = "workers")]
    pub(crate) probes: Option<usize>,
    /// With --workers: how late workers' load reports reach the router, ms (default 10; 0:
    /// every arrival routed on exact loads, slower).
    #[arg(long, requires = "workers")]
    pub(crate) report_ms: Option<f64>,
    /// With --workers: threads that advance the workers (default: one per core, at most 8; one
    /// with --report-ms 0); results do not depend on it.
    #[arg(long, requires = "workers")]
    pub(crate) threads: Option<usize>,
    /// No progress bars.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

pub fn run(args: SimArgs) -> Result<()> {
    if args.workers.is_some() {
        return super::sim_cluster::run(&args);
    }
    let exp = experiment(&args)?;
    exp.validate()?;
    let (workload, warnings) = exp.load()?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if workload.arrivals.is_empty() {
        bail!("the trace has no invocations");
    }
    if let Some(slo) = args.slo.filter(|_| args.capacity) {
        return run_capacity(&args, &exp, &workload, slo);
    }
    let bars = Bars::new(&exp.policies, workload.arrivals.len() as u64, args.quiet);
    let mut loads = Vec::new();
    for (i, load) in exp.loads.iter().enumerate() {
        bars.reset(i, exp.loads.len(), *load);
        let single = Experiment {
            loads: vec![*load],
            ..exp.clone()
        };
        loads.extend(single.run(&workload, &|p, n| bars.set(p, n))?);
    }
    bars.clear();
    if let Some(dir) = &args.out {
        write_outputs(dir, &loads, args.records)?;
    }
    print(&args, &exp, &workload.name, &loads)
}

pub(crate) fn experiment(args: &SimArgs) -> Result<Experiment> {
    let mut config = match &args.config {
        Some(p) => SimConfig::load(p)?,
        None => SimConfig::embedded(),
    };
    if let Some(g) = args.gpus {
        config.gpus = g;
    }
    if let Some(s) = args.seed {
        config.trace.seed = s;
    }
    if let Some(s) = args.spread {
        config.trace.spread = s;
    }
    if let Some(salt) = args.key_salt {
        config.scheduler.placement.key_salt = salt;
    }
    if let Some(ms) = args.max_queue_ms {
        config.admission.max_queue_ms = Some(ms);
    }
    if let Some(n) = args.prewarm {
        config.prewarm.per_function = n;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let catalog = match &args.catalog {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read catalogue {}", p.display()))?;
            let c: Catalog = toml::from_str(&text)
                .with_context(|| format!("invalid catalogue {}", p.display()))?;
            c.validate()?;
            c
        }
        None => Catalog::builtin(),
    };
    for &u in &args.target_util {
        if !(u.is_finite() && u > 0.0 && u <= 10.0) {
            bail!("--target-util values must be in (0, 10], got {u}");
        }
    }
    let loads = if args.target_util.is_empty() {
        vec![None]
    } else {
        args.target_util.iter().map(|&u| Some(u)).collect()
    };
    Ok(Experiment {
        trace: args.trace.parse::<TraceSpec>()?,
        policies: args.policies.iter().map(|p| p.trim().to_string()).collect(),
        loads,
        config,
        catalog,
    })
}

fn run_capacity(args: &SimArgs, exp: &Experiment, w: &Workload, slo: Slo) -> Result<()> {
    if args.max_gpus == 0 || args.max_gpus > 1024 {
        bail!("--max-gpus must be in 1..=1024, got {}", args.max_gpus);
    }
    let quiet = args.quiet || args.json;
    let rows = capacity::search(exp, w, slo, args.max_gpus, &|p, gpus| {
        if !quiet {
            eprintln!("{}: trying {gpus} GPU(s)", exp.policies[p]);
        }
    })?;
    if args.json {
        let v = capacity::to_json(&w.name, slo, args.max_gpus, &rows);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "trace: {}   target: {slo}   at most {} GPUs   (recorded rate)",
            w.name, args.max_gpus
        );
        print!("{}", capacity::render_table(args.max_gpus, &rows));
    }
    Ok(())
}

/// The ideal bound's summary at one load.
fn ideal_summary(l: &LoadResult) -> Summary {
    report::summarize(&l.ideal)
}

/// The policies' summaries at one load, each compared with the ideal bound.
fn summaries(l: &LoadResult) -> Vec<Summary> {
    let ideal = ideal_summary(l);
    l.results
        .iter()
        .map(|r| {
            let mut s = report::summarize(r);
            s.compare_to_ideal(&ideal);
            s
        })
        .collect()
}

fn print(args: &SimArgs, exp: &Experiment, name: &str, loads: &[LoadResult]) -> Result<()> {
    if args.json {
        let rows = sweep_rows(loads, false);
        let mut v = report::to_json(&rows.iter().map(|r| r.summary.clone()).collect::<Vec<_>>());
        if let Some(obj) = v.as_object_mut() {
            obj.insert("trace".into(), name.into());
            obj.insert("gpus".into(), exp.config.gpus.into());
            let ideal: Vec<Summary> = loads.iter().map(ideal_summary).collect();
            obj.insert("ideal".into(), report::to_json(&ideal)["policies"].clone());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("trace: {name}   gpus: {}", exp.config.gpus);
    for l in loads {
        let summaries = summaries(l);
        match l.target_util {
            Some(u) => println!(
                "\noffered GPU utilisation {u} (inter-arrival times x{:.4})",
                l.scale
            ),
            None => println!(
                "\nas recorded: offered GPU utilisation {:.3}",
                summaries.first().map_or(0.0, |s| s.offered_util)
            ),
        }
        print!("{}", report::render_table(&summaries));
        let ideal = ideal_summary(l);
        println!(
            "ideal bound (same arrivals, all warm and resident, FCFS on the same GPUs): mean {:.1} ms, p99 {:.1} ms",
            ideal.latency_ms.mean, ideal.latency_ms.p99
        );
    }
    Ok(())
}

/// Every policy's row at every load (compared with the ideal), and the ideal's rows if asked.
fn sweep_rows(loads: &[LoadResult], with_ideal: bool) -> Vec<SweepRow> {
    loads
        .iter()
        .flat_map(|l| {
            let ideal = with_ideal.then(|| ideal_summary(l));
            summaries(l)
                .into_iter()
                .chain(ideal)
                .map(move |summary| SweepRow {
                    target_util: l.target_util.unwrap_or(summary.offered_util),
                    summary,
                })
        })
        .collect()
}

fn write_outputs(dir: &Path, loads: &[LoadResult], records: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for l in loads {
        let tag = l
            .target_util
            .map_or_else(|| "recorded".to_string(), |u| format!("u{u}"));
        for r in l.results.iter().filter(|_| records) {
            let path = dir.join(format!("records-{tag}-{}.csv", r.policy));
            let f =
                File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
            report::write_records_csv(r, BufWriter::new(f))?;
        }
        let refs: Vec<_> = l.results.iter().collect();
        report::write_latency_cdf_svg(&refs, &dir.join(format!("latency-cdf-{tag}.svg")))?;
    }
    let summaries: Vec<Summary> = sweep_rows(loads, false)
        .into_iter()
        .map(|r| r.summary)
        .collect();
    let mut json = report::to_json(&summaries);
    let ideal: Vec<Summary> = loads.iter().map(ideal_summary).collect();
    json["ideal"] = report::to_json(&ideal)["policies"].clone();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let rows = sweep_rows(loads, true);
    std::fs::write(dir.join("sweep.md"), report::render_sweep_markdown(&rows))?;
    if loads.len() > 1 {
        report::write_latency_vs_load_svg(&rows, &dir.join("latency-vs-load.svg"))?;
    }
    Ok(())
}

/// One progress bar per policy on stderr (hidden when stderr is not a terminal or with -q).
struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Bars {
    fn new(policies: &[String], total: u64, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> ");
        let bars = policies
            .iter()
            .map(|p| {
                let b = multi.add(ProgressBar::new(total));
                b.set_style(style.clone());
                b.set_prefix(p.clone());
                b
            })
            .collect();
        Bars { multi, bars }
    }

    fn reset(&self, i: usize, n: usize, load: Option<f64>) {
        let msg = load.map_or_else(
            || "as recorded".into(),
            |u| format!("util {u} ({}/{n})", i + 1),
        );
        for b in &self.bars {
            b.set_position(0);
            b.set_message(msg.clone());
        }
    }

    fn set(&self, policy: usize, done: u64) {
        if let Some(b) = self.bars.get(policy) {
            b.set_position(done);
        }
    }

    fn clear(&self) {
        for b in &self.bars {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
