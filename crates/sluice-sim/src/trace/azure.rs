//! The Azure Functions 2019 loader: `<dir>/<N>_inv.csv` (per-minute invocation counts), `<N>_run.csv` (warm
//! execution time per function) and `<N>_mem.csv` (host memory per app, validated but not used).
//!
//! Columns are found by header name, so both the vHive "invitro" order (`HashFunction,HashApp,HashOwner,
//! minute_1..`) and the original 2019 order (`HashOwner,HashApp,HashFunction,Trigger,1..`) load. Within a
//! minute the trace gives only a count; [`Spread`] says how the arrivals are placed inside it.

use super::azure_csv::{read_inv, read_run, validate_mem, InvRow};
use super::error::TraceError;
use super::sample::{by_popularity, AzureOptions, Timing};
use super::{LoadOptions, Loaded, Spread};
use crate::workload::{Arrival, Workload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_core::{Dur, FunctionId, Time};
use std::collections::{HashMap, HashSet};
use std::path::Path;

const MINUTE_US: u64 = 60_000_000;

/// Loads day `n` from `dir` as a workload named `name`, sampled and timed as `azure` says.
pub(crate) fn load(
    dir: &Path,
    n: &str,
    azure: AzureOptions,
    opts: &LoadOptions,
    name: String,
) -> Result<Loaded, TraceError> {
    let mut warnings = Vec::new();
    let rows = read_inv(&dir.join(format!("{n}_inv.csv")), &mut warnings)?;
    let run_path = dir.join(format!("{n}_run.csv"));
    let run = read_run(&run_path, &mut warnings)?;
    let mem_path = dir.join(format!("{n}_mem.csv"));
    if mem_path.exists() {
        validate_mem(&mem_path)?;
    } else {
        warnings.push(format!(
            "{} not found; host memory is not used, so loading goes on",
            mem_path.display()
        ));
    }

    let (mut kept, mut warm, mut zero, mut no_run, mut no_run_inv) =
        (Vec::new(), Vec::new(), 0, 0, 0);
    for row in rows {
        if row.total == 0 {
            zero += 1;
        } else if let Some(avg_ms) = run.lookup(&row.key) {
            warm.push(Dur::from_millis_f64(avg_ms));
            kept.push(row);
        } else {
            no_run += 1;
            no_run_inv += row.total;
        }
    }
    if zero > 0 {
        warnings.push(format!(
            "dropped {zero} function(s) with no invocations in the day"
        ));
    }
    if no_run > 0 {
        warnings.push(format!(
            "skipped {no_run} function(s) with invocations but no run statistics in {} ({no_run_inv} invocations)",
            run_path.display()
        ));
    }
    if kept.is_empty() {
        return Err(TraceError::EmptyWorkload {
            source_name: name,
            reason: "no function has both invocations and run statistics".into(),
        });
    }

    // Names come from the whole day, so a function keeps its name in every sample.
    let mut names = short_names(&kept);
    if let Some(k) = azure.sample {
        let totals: Vec<u64> = kept.iter().map(|r| r.total).collect();
        if k >= kept.len() {
            warnings.push(format!(
                "sample={k} keeps all {} functions of the day",
                kept.len()
            ));
        }
        let chosen = by_popularity(&totals, k, opts.seed);
        let keep = |i: usize| chosen.binary_search(&i).is_ok();
        kept = keep_indices(kept, keep);
        warm = keep_indices(warm, keep);
        names = keep_indices(names, keep);
    }
    finish(kept, warm, names, azure, opts, name, warnings)
}

/// The elements of `v` whose index passes `keep`, in order.
fn keep_indices<T>(v: Vec<T>, keep: impl Fn(usize) -> bool) -> Vec<T> {
    v.into_iter()
        .enumerate()
        .filter(|&(i, _)| keep(i))
        .map(|(_, x)| x)
        .collect()
}

/// Profiles the kept functions and spreads their arrivals.
fn finish(
    kept: Vec<InvRow>,
    warm: Vec<Dur>,
    names: Vec<String>,
    azure: AzureOptions,
    opts: &LoadOptions,
    name: String,
    warnings: Vec<String>,
) -> Result<Loaded, TraceError> {
    let functions = kept
        .iter()
        .zip(&names)
        .zip(&warm)
        .map(|((_, fname), &trace_warm)| {
            let class = opts.catalog.class_for(fname);
            let cpu_warm = match azure.timing {
                Timing::Trace => trace_warm,
                Timing::Class => Dur::from_millis_f64(class.cpu_warm_ms),
            };
            class.profile(fname, cpu_warm)
        })
        .collect();
    let total: u64 = kept.iter().map(|r| r.total).sum();
    let mut arrivals = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for (i, row) in kept.iter().enumerate() {
        let func = FunctionId(u32::try_from(i).map_err(|_| too_many_functions())?);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(i as u64);
        for &(minute, count) in &row.cells {
            let base = minute * MINUTE_US;
            for k in 0..count {
                let offset = match opts.spread {
                    Spread::Poisson => rng.random_range(0..MINUTE_US),
                    Spread::Uniform => (2 * k + 1) * MINUTE_US / (2 * count),
                };
                arrivals.push(Arrival {
                    at: Time::from_micros(base + offset),
                    func,
                });
            }
        }
    }
    arrivals.sort_unstable_by_key(|a| (a.at, a.func));
    Ok(Loaded {
        workload: Workload {
            name,
            functions,
            arrivals,
        },
        warnings,
    })
}

fn too_many_functions() -> TraceError {
    TraceError::TooLarge {
        what: "the number of functions".into(),
        limit: u64::from(u32::MAX),
    }
}

/// Names: the first 10 characters of HashFunction, more where needed to stay unique; functions that share a
/// HashFunction across apps get `@` and the first 10 characters of HashApp; any clash left gets `~k`.
fn short_names(rows: &[InvRow]) -> Vec<String> {
    let prefix = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let lcp = |a: &str, b: &str| a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let mut distinct: Vec<&str> = rows.iter().map(|r| r.key.2.as_str()).collect();
    distinct.sort_unstable();
    let mut uses = HashMap::<&str, usize>::new();
    for h in &distinct {
        *uses.entry(h).or_default() += 1;
    }
    distinct.dedup();
    let mut len_of = HashMap::new();
    for (i, h) in distinct.iter().enumerate() {
        let before = i
            .checked_sub(1)
            .and_then(|j| distinct.get(j))
            .map_or(0, |o| lcp(h, o) + 1);
        let after = distinct.get(i + 1).map_or(0, |o| lcp(h, o) + 1);
        len_of.insert(*h, before.max(after).max(10));
    }
    let mut used = HashSet::new();
    rows.iter()
        .map(|r| {
            let h = r.key.2.as_str();
            let mut name = prefix(h, len_of.get(h).copied().unwrap_or(10));
            if uses.get(h).copied().unwrap_or(0) > 1 {
                name = format!("{name}@{}", prefix(&r.key.1, 10));
            }
            let mut candidate = name.clone();
            let mut k = 2;
            while !used.insert(candidate.clone()) {
                candidate = format!("{name}~{k}");
                k += 1;
            }
            candidate
        })
        .collect()
}
