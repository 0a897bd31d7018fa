//! Reading the three Azure 2019 files by header name: invocation counts per function and minute (`_inv`),
//! warm execution time per function (`_run`) and host memory per app (`_mem`, only validated).
//!
//! Owns the column rules (keys, `minute_K` or bare `K` columns) and per-file checks; turning rows into a
//! workload is `azure.rs`'s job.

use super::error::TraceError;
use super::table::Table;
use super::MAX_ARRIVALS;
use csv::StringRecord;
use std::collections::{HashMap, HashSet};
use std::path::Path;

const INV_HEADER: &str = "HashFunction,HashApp,HashOwner,minute_1..minute_1440";
const RUN_HEADER: &str = "HashFunction,HashApp,HashOwner,Count,Average,…";
const MEM_HEADER: &str = "HashApp,HashOwner,SampleCount,AverageAllocatedMb,…";

/// (HashOwner, HashApp, HashFunction); owner and app are empty when a file lacks those columns.
pub(crate) type Key = (String, String, String);

/// One function row of the invocation file: its key and its non-zero (0-based minute, count) cells.
pub(crate) struct InvRow {
    pub key: Key,
    pub cells: Vec<(u64, u64)>,
    pub total: u64,
}

/// Warm execution times (ms) by full key, and by HashFunction alone where that is unambiguous.
pub(crate) struct RunStats {
    by_key: HashMap<Key, f64>,
    by_func: HashMap<String, Option<f64>>,
}

impl RunStats {
    pub fn lookup(&self, key: &Key) -> Option<f64> {
        self.by_key
            .get(key)
            .copied()
            .or_else(|| self.by_func.get(&key.2).copied().flatten())
    }
}

/// The key columns of a file (owner, app, function), of which `required` must be present.
fn key_columns(t: &Table, required: &str) -> Result<[Option<usize>; 3], TraceError> {
    t.column(required)?;
    Ok([
        t.find("HashOwner")?,
        t.find("HashApp")?,
        t.find("HashFunction")?,
    ])
}

fn key_of(
    t: &Table,
    rec: &StringRecord,
    line: u64,
    cols: [Option<usize>; 3],
) -> Result<Key, TraceError> {
    let get = |c: Option<usize>| c.map_or(Ok(""), |c| t.name(rec, line, c));
    Ok((
        get(cols[0])?.to_string(),
        get(cols[1])?.to_string(),
        get(cols[2])?.to_string(),
    ))
}

pub(crate) fn read_run(path: &Path, warnings: &mut Vec<String>) -> Result<RunStats, TraceError> {
    let mut t = Table::open(path, RUN_HEADER)?;
    let cols = key_columns(&t, "HashFunction")?;
    let avg = t.column("Average")?;
    let mut stats = RunStats {
        by_key: HashMap::new(),
        by_func: HashMap::new(),
    };
    let (mut rec, mut dups) = (StringRecord::new(), 0);
    while let Some(line) = t.next_row(&mut rec)? {
        let key = key_of(&t, &rec, line, cols)?;
        let ms = t.non_negative(&rec, line, avg)?;
        if stats.by_key.contains_key(&key) {
            dups += 1;
            continue;
        }
        stats
            .by_func
            .entry(key.2.clone())
            .and_modify(|v| *v = None)
            .or_insert(Some(ms));
        stats.by_key.insert(key, ms);
    }
    if stats.by_key.is_empty() {
        return Err(TraceError::NoRows {
            path: path.to_path_buf(),
            expected: "one row per function".into(),
        });
    }
    if dups > 0 {
        warnings.push(format!(
            "{}: {dups} repeated function row(s); kept the first of each",
            path.display()
        ));
    }
    Ok(stats)
}

pub(crate) fn validate_mem(path: &Path) -> Result<(), TraceError> {
    let mut t = Table::open(path, MEM_HEADER)?;
    let cols = key_columns(&t, "HashApp")?;
    let mb = t.column("AverageAllocatedMb")?;
    let mut rec = StringRecord::new();
    while let Some(line) = t.next_row(&mut rec)? {
        key_of(&t, &rec, line, cols)?;
        t.non_negative(&rec, line, mb)?;
    }
    Ok(())
}

/// The minute columns of the invocation header: (column index, 0-based minute) for `minute_K` or bare `K`.
fn minute_columns(t: &Table) -> Result<Vec<(usize, u64)>, TraceError> {
    let mut cols = Vec::new();
    let mut seen = HashSet::new();
    for (i, h) in t.headers().iter().enumerate() {
        let k = h.strip_prefix("minute_").unwrap_or(h);
        if let Ok(k) = k.parse::<u32>() {
            if k == 0 {
                return Err(t.field_error(1, i, h, "minute columns numbered from 1"));
            }
            if !seen.insert(k) {
                return Err(t.duplicate(h));
            }
            cols.push((i, u64::from(k - 1)));
        }
    }
    if cols.is_empty() {
        return Err(t.missing("minute_1..minute_1440 (or 1..1440)"));
    }
    Ok(cols)
}

pub(crate) fn read_inv(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<InvRow>, TraceError> {
    let mut t = Table::open(path, INV_HEADER)?;
    let cols = key_columns(&t, "HashFunction")?;
    let minutes = minute_columns(&t)?;
    let (mut rows, mut index) = (Vec::<InvRow>::new(), HashMap::<Key, usize>::new());
    let (mut rec, mut grand_total, mut merged) = (StringRecord::new(), 0u64, 0);
    while let Some(line) = t.next_row(&mut rec)? {
        let key = key_of(&t, &rec, line, cols)?;
        let mut cells = Vec::new();
        let mut total = 0u64;
        for &(col, minute) in &minutes {
            let c = t.count(&rec, line, col)?;
            if c > 0 {
                cells.push((minute, c));
                total = total.saturating_add(c);
            }
        }
        grand_total = grand_total.saturating_add(total);
        if grand_total > MAX_ARRIVALS {
            return Err(TraceError::TooLarge {
                what: format!(
                    "{}: the number of invocations (by line {line})",
                    path.display()
                ),
                limit: MAX_ARRIVALS,
            });
        }
        if let Some(&i) = index.get(&key) {
            merged += 1;
            let row = &mut rows[i];
            row.cells.extend(cells);
            row.cells.sort_unstable();
            row.cells.dedup_by(|cur, kept| {
                let same = cur.0 == kept.0;
                if same {
                    kept.1 = kept.1.saturating_add(cur.1);
                }
                same
            });
            row.total = row.total.saturating_add(total);
        } else {
            index.insert(key.clone(), rows.len());
            rows.push(InvRow { key, cells, total });
        }
    }
    if rows.is_empty() {
        return Err(TraceError::NoRows {
            path: path.to_path_buf(),
            expected: "one row per function".into(),
        });
    }
    if merged > 0 {
        warnings.push(format!(
            "{}: {merged} repeated function row(s) merged into the first",
            path.display()
        ));
    }
    Ok(rows)
}
