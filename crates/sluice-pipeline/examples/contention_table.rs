//! Prints the linear contention model's predicted slowdown for every ordered pair of Gpu-let
//! models (victim row, co-runner column), both at one batch size on half a GPU, as a Markdown
//! table; with a pair-measurement CSV (`victim,victim_batch,victim_share,other,other_batch,
//! other_share,slowdown`) also the prediction error against it. Usage:
//! `cargo run -p sluice-pipeline --example contention_table -- [DATA_DIR] [BATCH] [MEASURED.csv]`

use std::path::PathBuf;

use sluice_pipeline::contention::PairMeasurement;
use sluice_pipeline::{Contention, Profiles};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("data/gpulet-2080ti", String::as_str));
    let batch: u32 = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let profiles = Profiles::load_gpulet(&dir)?;
    let contention = Contention::load_gpulet(&dir)?;
    let models: Vec<&str> = profiles.models().collect();
    let table = contention.pair_table(&profiles, batch);
    println!("| victim \\ co-runner | {} |", models.join(" | "));
    println!("|---|{}", "---|".repeat(models.len()));
    for m in &models {
        let row: Vec<String> = table
            .iter()
            .filter(|(a, _, _)| a == m)
            .map(|(_, _, s)| format!("{s:.2}"))
            .collect();
        println!("| {m} | {} |", row.join(" | "));
    }
    if let Some(path) = args.get(3) {
        let measured = PairMeasurement::from_csv(&std::fs::read_to_string(path)?)?;
        let r = contention.prediction_error(&profiles, &measured);
        println!(
            "\n{} pairs compared ({} skipped): mean |error| {:.1}%, max {:.1}%",
            r.count, r.skipped, r.mean_abs_pct, r.max_abs_pct
        );
    }
    Ok(())
}
