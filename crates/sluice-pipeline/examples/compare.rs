//! Plans the Gpu-let applications with every policy and prints predicted capacity (max-load goal)
//! and SM share used (min-resources goal), with planning times. Usage:
//! `cargo run --release -p sluice-pipeline --example compare -- [DATA_DIR] [GPUS] [LOW_LOAD_FRACTION]`
//! (defaults: data/gpulet-2080ti, 4, 0.2 — the low load is that fraction of the best
//! baseline's peak load).

use std::path::PathBuf;
use std::time::Instant;

use sluice_pipeline::{gpulet, plan, Goal, PerfModel, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("data/gpulet-2080ti", String::as_str));
    let gpus: u32 = args.get(2).map_or(Ok(4), |s| s.parse())?;
    let frac: f64 = args.get(3).map_or(Ok(0.2), |s| s.parse())?;
    let model = PerfModel::gpulet(&dir, gpus)?;
    for app in ["traffic", "game"] {
        let spec = gpulet::load_app(&dir.join(format!("{app}.json")))?;
        println!(
            "== {app}: {} stages, SLO {} ms, {gpus} GPU(s)",
            spec.stages.len(),
            spec.slo_ms
        );
        let mut best_baseline = 0.0_f64;
        for policy in Policy::ALL {
            let t = Instant::now();
            match plan(&spec, &model, policy, Goal::MaxLoad) {
                Ok(p) => {
                    if policy.is_baseline() {
                        best_baseline = best_baseline.max(p.predicted.capacity_rps);
                    }
                    println!(
                        "max-load goal  {:<14} capacity {:>8.1} req/s  share {:>5.2} GPUs  {:>4} instances  {:>6.1} ms to plan",
                        policy.name(),
                        p.predicted.capacity_rps,
                        p.predicted.gpus_used,
                        p.instances.len(),
                        t.elapsed().as_secs_f64() * 1000.0
                    );
                }
                Err(e) => println!("max-load goal  {:<14} {e}", policy.name()),
            }
        }
        let load = best_baseline * frac;
        for policy in Policy::ALL {
            let t = Instant::now();
            match plan(&spec, &model, policy, Goal::MinResources { load_rps: load }) {
                Ok(p) => println!(
                    "min-res @{load:>7.1}  {:<14} share {:>5.2} GPUs  p99 {:>6.1} ms  {:>4} instances  {:>6.1} ms to plan",
                    policy.name(),
                    p.predicted.gpus_used,
                    p.predicted.p99_ms,
                    p.instances.len(),
                    t.elapsed().as_secs_f64() * 1000.0
                ),
                Err(e) => println!("min-res @{load:>7.1}  {:<14} {e}", policy.name()),
            }
        }
    }
    Ok(())
}
