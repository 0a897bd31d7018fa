//! `sluice sim --workers N --routers …`: the cluster in the simulator. Each router replays the
//! same arrivals (a `synthetic:` day is streamed, never held in memory; other traces are loaded)
//! on `N` simulated workers; rows go to a table or JSON (`--json`), and `--out` gets
//! `cluster.json` and `cluster.md`.

use super::sim::{experiment, SimArgs};
use anyhow::{anyhow, bail, Context, Result};
use sluice_policy::routing::RouterKind;
use sluice_sim::cluster::{self, Churn, ClusterParams, ClusterSummary};
use sluice_sim::engine::RunOptions;
use sluice_sim::trace::{SyntheticDay, TraceSpec};
use std::time::Instant;

pub fn run(args: &SimArgs) -> Result<()> {
    let workers = args.workers.unwrap_or(0);
    let mut exp = experiment(args)?;
    if exp.policies.len() == 1 {
        exp.config.scheduler.policy = exp.policies[0].clone();
    } else if exp.policies != ["fcfs", "mqfq-sticky"] {
        bail!(
            "with --workers give at most one policy (each worker runs it), got {}",
            exp.policies.join(",")
        );
    }
    exp.policies = vec![exp.config.scheduler.policy.clone()];
    exp.validate()?;
    if exp.config.prewarm.per_function > 0 {
        bail!("prewarm.per_function is modelled on one node only: set it to 0 with --workers");
    }
    let routers = args
        .routers
        .iter()
        .map(|r| {
            r.parse::<RouterKind>()
                .map_err(|e| anyhow!("--routers: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if routers.is_empty() {
        bail!("--routers needs at least one router");
    }
    let churn: Churn = match &args.churn {
        Some(c) => c.parse().map_err(|e| anyhow!("--churn: {e}"))?,
        None => Churn::default(),
    };
    let mut base = ClusterParams {
        churn,
        ..ClusterParams::new(workers, exp.config.gpus, RouterKind::ChBl)
    };
    base.placement.seed = exp.config.trace.seed;
    if let Some(e) = args.epsilon {
        base.placement.epsilon = e;
    }
    if let Some(h) = args.hint_slack {
        base.placement.hint_slack = h;
    }
    if let Some(r) = args.popular_rps {
        base.popular_rps = r;
    }
    if let Some(c) = args.gate_ceiling {
        base.placement.gate_ceiling = c;
    }
    if let Some(f) = args.fractional {
        base.placement.fractional = f;
    }
    if let Some(p) = args.probes {
        base.placement.probes = p;
    }
    if let Some(ms) = args.report_ms {
        if !(ms.is_finite() && (0.0..=60_000.0).contains(&ms)) {
            bail!("--report-ms must be a number of ms in [0, 60000], got {ms}");
        }
        base.report_delay = sluice_core::Dur::from_millis_f64(ms);
    }
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        base.threads = t;
    }
    base.validate()
        .map_err(|e| anyhow!("invalid cluster: {e}"))?;
    let opts = RunOptions {
        max_queue: exp.config.admission.max_queue(),
        prewarm: 0,
    };
    // A synthetic day streams; any other trace is loaded once.
    let synthetic = match &exp.trace {
        TraceSpec::Synthetic(s) => Some(SyntheticDay::new(s, exp.config.trace.seed)),
        _ => None,
    };
    let loaded = match synthetic {
        Some(_) => None,
        None => {
            let (w, warnings) = exp.load()?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Some(w)
        }
    };
    let (name, functions) = match (&synthetic, &loaded) {
        (Some(d), _) => (d.name(), d.functions()),
        (_, Some(w)) => (w.name.clone(), &w.functions[..]),
        _ => bail!("no trace"),
    };
    if let Some(d) = &synthetic {
        let gpus = (workers * exp.config.gpus) as f64;
        let span = match &exp.trace {
            TraceSpec::Synthetic(s) => s.duration_s,
            _ => 1.0,
        };
        if !args.quiet {
            eprintln!(
                "trace: {name}: offered GPU utilisation about {:.3} on {workers} x {} GPUs",
                d.expected_work_s() / (gpus * span),
                exp.config.gpus
            );
        }
    }
    let mut rows: Vec<(ClusterSummary, f64)> = Vec::new();
    for router in routers {
        let params = ClusterParams {
            router,
            ..base.clone()
        };
        let started = Instant::now();
        let quiet = args.quiet;
        let mut progress = |n: u64| {
            if !quiet && n.is_multiple_of(1 << 22) {
                eprintln!("  {router}: {n} arrivals routed");
            }
        };
        let sched = &exp.config.scheduler;
        let dev = &exp.config.device;
        let row = match (&synthetic, &loaded) {
            (Some(d), _) => cluster::run(
                functions,
                d.arrivals(),
                &params,
                sched,
                dev,
                opts,
                &mut progress,
            ),
            (_, Some(w)) => cluster::run(
                functions,
                w.arrivals.iter().copied(),
                &params,
                sched,
                dev,
                opts,
                &mut progress,
            ),
            _ => bail!("no trace"),
        }
        .map_err(|e| anyhow!("{router}: {e}"))?;
        let wall = started.elapsed().as_secs_f64();
        if !args.quiet {
            eprintln!(
                "{router}: {} invocations simulated in {wall:.1} s",
                row.invocations
            );
        }
        rows.push((row, wall));
    }
    let summaries: Vec<ClusterSummary> = rows.iter().map(|(r, _)| r.clone()).collect();
    let mut json = cluster::to_json(&summaries);
    json["trace"] = name.clone().into();
    json["workers"] = workers.into();
    json["gpus_per_worker"] = exp.config.gpus.into();
    json["churn"] = base.churn.to_string().into();
    let table = format!(
        "trace: {name}   workers: {workers} x {} GPUs   policy: {}   churn: {}\n{}",
        exp.config.gpus,
        exp.config.scheduler.policy,
        if base.churn.0.is_empty() {
            "none".to_string()
        } else {
            base.churn.to_string()
        },
        cluster::render_table(&summaries)
    );
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut with_wall = json.clone();
        if let Some(list) = with_wall["routers"].as_array_mut() {
            for (v, (_, wall)) in list.iter_mut().zip(&rows) {
                v["wall_s"] = (*wall).into();
            }
        }
        std::fs::write(
            dir.join("cluster.json"),
            serde_json::to_string_pretty(&with_wall)?,
        )?;
        std::fs::write(dir.join("cluster.md"), format!("```\n{table}```\n"))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{table}");
    }
    Ok(())
}
