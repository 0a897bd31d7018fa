//! Calibration of the planner's analytic p99 against the pipeline simulator: every policy's
//! max-load plan on the Gpu-let apps (and OCR when its profile exists) on 1, 2 and 4 GPUs, checked
//! at several fractions of its simulated peak, plus each policy's min-resources plan at a low
//! load. Prints one row per check (predicted vs simulated end-to-end p99, and with `-v` every
//! stage's) and the mean absolute and mean signed error.
//!
//! ```text
//! cargo run --release -p sluice-sim --example pipeline_calibration -- [GPULET_DIR] [-v]
//! ```

use sluice_pipeline::model::PerfModel;
use sluice_pipeline::planner::{plan, Goal, Policy};
use sluice_pipeline::{Cluster, GpuModel, PipelineSpec, Plan, ServiceModel};
use sluice_sim::pipeline::evaluate::{load_apps, App, EvalConfig};
use sluice_sim::pipeline::{peak_load, simulate, PeakConfig};
use std::path::PathBuf;
use std::time::Instant;

/// Fractions of the simulated peak at which max-load plans are checked.
const FRACTIONS: [f64; 4] = [0.3, 0.5, 0.7, 0.9];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let dir = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| PathBuf::from("data/gpulet-2080ti"), PathBuf::from);
    let ocr_dir = PathBuf::from("examples/pipelines/ocr");
    let ocr = ocr_dir
        .join("profile.csv")
        .exists()
        .then(|| (ocr_dir.join("profile.csv"), ocr_dir.join("pipeline.yaml")));
    let cfg = EvalConfig::new(dir, ocr);
    let apps = load_apps(&cfg)?;
    let peak_cfg = PeakConfig {
        requests: 10_000,
        ..PeakConfig::default()
    };
    let mut errors = Vec::new();
    println!("app\tgpus\tpolicy\tload\tpred\tsim\terr%");
    for app in &apps {
        let mut low: Option<f64> = None;
        for gpus in [1, 2, 4] {
            let model = model_of(app, gpus);
            for policy in Policy::ALL {
                if policy == Policy::MinResources {
                    continue;
                }
                let t = Instant::now();
                let Ok(p) = plan(&app.spec, &model, policy, Goal::MaxLoad) else {
                    continue;
                };
                let plan_ms = t.elapsed().as_secs_f64() * 1000.0;
                let peak = peak_load(
                    &app.spec,
                    &p,
                    &model,
                    &model.cluster,
                    app.spec.slo_ms,
                    &peak_cfg,
                )?;
                println!(
                    "# {} {gpus} GPU(s) {policy}: planned in {plan_ms:.0} ms, predicted capacity {:.2}, simulated peak {peak:.2} rps",
                    app.name, p.predicted.capacity_rps
                );
                if gpus == 1 && policy.is_baseline() {
                    low = Some(low.map_or(peak, |l: f64| l.max(peak)));
                }
                for f in FRACTIONS {
                    if peak > 0.0 {
                        let e = check(app, &model, &p, peak * f, verbose)?;
                        errors.push(e);
                    }
                }
            }
        }
        let Some(best) = low.filter(|&l| l > 0.0) else {
            continue;
        };
        let model = model_of(app, 4);
        for policy in Policy::ALL {
            let load = 0.2 * best;
            if let Ok(p) = plan(
                &app.spec,
                &model,
                policy,
                Goal::MinResources { load_rps: load },
            ) {
                println!(
                    "# {} low load {policy}: {:.2} GPUs",
                    app.name,
                    p.gpus_used()
                );
                errors.push(check(app, &model, &p, load, verbose)?);
            }
        }
    }
    let n = errors.len() as f64;
    println!(
        "checks {}: mean |err| {:.1}%, mean err {:+.1}%, max |err| {:.1}%",
        errors.len(),
        errors.iter().map(|e| e.abs()).sum::<f64>() / n,
        errors.iter().sum::<f64>() / n,
        errors.iter().map(|e| e.abs()).fold(0.0, f64::max)
    );
    Ok(())
}

fn model_of(app: &App, gpus: u32) -> PerfModel {
    PerfModel {
        profiles: app.profiles.clone(),
        contention: app.contention.clone(),
        cluster: Cluster::new(GpuModel::rtx_2080_ti(), gpus),
    }
}

/// Simulates `p` at `load` (20 000 requests) and prints predicted vs simulated p99; the error, %.
fn check(
    app: &App,
    model: &PerfModel,
    p: &Plan,
    load: f64,
    verbose: bool,
) -> Result<f64, Box<dyn std::error::Error>> {
    let spec: &PipelineSpec = &app.spec;
    let cfg = PeakConfig::default().run_config(load);
    let cfg = sluice_sim::pipeline::RunConfig {
        max_drops: None,
        ..cfg
    };
    let run = simulate(spec, p, model, &model.cluster, &cfg)?;
    let ev = model.evaluate(spec, p);
    let pred = ev.p99_ms(load);
    let sim = run.e2e_ms.p99;
    let err = (pred - sim) / sim * 100.0;
    println!(
        "{}\t{}\t{}\t{load:.3}\t{pred:.2}\t{sim:.2}\t{err:+.1}",
        app.name, p.gpus, p.policy
    );
    if verbose {
        for (s, (st, pr)) in run.per_stage.iter().zip(ev.stage_p99_ms(load)).enumerate() {
            let insts: Vec<String> = p
                .of_stage(s)
                .map(|x| format!("g{}:{}%/b{}", x.gpu, x.sm_share, x.batch))
                .take(4)
                .collect();
            let k = p.instances.iter().position(|x| x.stage == s).unwrap_or(0);
            let (t1, tb) = (
                model.batch_ms(spec, p, k, 1),
                model.batch_ms(spec, p, k, p.instances[k].batch),
            );
            println!(
                "    {:<16} pred {pr:8.2} sim p99 {:8.2} p50 {:8.2} batch {:5.2} util {:.2} T1 {t1:.2} Tb {tb:.2} [{}]",
                st.stage,
                st.latency_ms.p99,
                st.latency_ms.p50,
                st.mean_batch,
                st.utilisation,
                insts.join(" ")
            );
        }
    }
    Ok(err)
}
