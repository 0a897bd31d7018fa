//! The Ilúvatar trace loader: `trace.csv` (`func_name,invoke_time_ms`, one row per invocation) and
//! `metadata-trace.csv` (`func_name,cold_dur_ms,warm_dur_ms,mem_mb,mean_iat`, one row per function).
//!
//! Function ids follow the order of the metadata file (functions without invocations are kept, with a warning);
//! arrival times are taken as given, in milliseconds from the trace start.

use super::error::TraceError;
use super::table::Table;
use super::{LoadOptions, Loaded, MAX_ARRIVALS};
use crate::workload::{Arrival, FunctionProfile, Workload};
use csv::StringRecord;
use sluice_core::{Dur, FunctionId, Time};
use std::collections::HashMap;
use std::path::Path;

const TRACE_HEADER: &str = "func_name,invoke_time_ms";
const META_HEADER: &str = "func_name,cold_dur_ms,warm_dur_ms,mem_mb,mean_iat";

/// Loads an Ilúvatar trace and its metadata as a workload named `name`.
pub(crate) fn load(
    trace: &Path,
    metadata: &Path,
    opts: &LoadOptions,
    name: String,
) -> Result<Loaded, TraceError> {
    let (functions, ids) = read_metadata(metadata, opts)?;
    let mut t = Table::open(trace, TRACE_HEADER)?;
    let fcol = t.column("func_name")?;
    let tcol = t.column("invoke_time_ms")?;
    let mut arrivals = Vec::new();
    let mut used = vec![false; functions.len()];
    let mut rec = StringRecord::new();
    while let Some(line) = t.next_row(&mut rec)? {
        let fname = t.name(&rec, line, fcol)?;
        let Some(&func) = ids.get(fname) else {
            return Err(TraceError::UnknownFunction {
                path: trace.to_path_buf(),
                line,
                name: super::error::excerpt(fname),
                metadata: metadata.to_path_buf(),
            });
        };
        let ms = t.non_negative(&rec, line, tcol)?;
        if arrivals.len() as u64 >= MAX_ARRIVALS {
            return Err(TraceError::TooLarge {
                what: format!("{}: the number of invocations", trace.display()),
                limit: MAX_ARRIVALS,
            });
        }
        if let Some(u) = used.get_mut(func.index()) {
            *u = true;
        }
        arrivals.push(Arrival {
            at: Time::from_millis_f64(ms),
            func,
        });
    }
    if arrivals.is_empty() {
        return Err(TraceError::NoRows {
            path: trace.to_path_buf(),
            expected: "one row per invocation".into(),
        });
    }
    arrivals.sort_unstable_by_key(|a| (a.at, a.func));
    let idle = used.iter().filter(|u| !**u).count();
    let mut warnings = Vec::new();
    if idle > 0 {
        warnings.push(format!(
            "{idle} function(s) of {} have no invocations in {}",
            metadata.display(),
            trace.display()
        ));
    }
    Ok(Loaded {
        workload: Workload {
            name,
            functions,
            arrivals,
        },
        warnings,
    })
}

/// The profiles, in file order, and the id of each function name.
fn read_metadata(
    path: &Path,
    opts: &LoadOptions,
) -> Result<(Vec<FunctionProfile>, HashMap<String, FunctionId>), TraceError> {
    let mut t = Table::open(path, META_HEADER)?;
    let fcol = t.column("func_name")?;
    let cold = t.column("cold_dur_ms")?;
    let warm = t.column("warm_dur_ms")?;
    let optional = [t.find("mem_mb")?, t.find("mean_iat")?];
    let mut functions = Vec::new();
    let mut ids = HashMap::new();
    let mut rec = StringRecord::new();
    while let Some(line) = t.next_row(&mut rec)? {
        let fname = t.name(&rec, line, fcol)?;
        // Validated but not used: see docs/traces.md on cold starts.
        t.non_negative(&rec, line, cold)?;
        let warm_ms = t.non_negative(&rec, line, warm)?;
        for col in optional.into_iter().flatten() {
            t.non_negative(&rec, line, col)?;
        }
        let id = u32::try_from(functions.len()).map_err(|_| TraceError::TooLarge {
            what: "the number of functions".into(),
            limit: u64::from(u32::MAX),
        })?;
        if ids.insert(fname.to_string(), FunctionId(id)).is_some() {
            return Err(TraceError::DuplicateFunction {
                path: path.to_path_buf(),
                line,
                name: super::error::excerpt(fname),
            });
        }
        let class = opts.catalog.class_for(fname);
        let cpu_warm = Dur::from_millis_f64(warm_ms);
        functions.push(class.profile(fname, cpu_warm));
    }
    if functions.is_empty() {
        return Err(TraceError::NoRows {
            path: path.to_path_buf(),
            expected: "one row per function".into(),
        });
    }
    Ok((functions, ids))
}
