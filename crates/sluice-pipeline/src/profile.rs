//! Per-model performance profiles: latency and resource use of one model as a function of batch
//! size and SM share, read from the Gpu-let tables (`UTIL.CSV` + `mem-config.json`) or from the
//! CSV `sluice profile` writes, and looked up with interpolation. This module owns the table, its
//! import/export and the rules that turn measured points into a value at any (batch, share).
//!
//! Rules (also in `docs/pipelines.md`, "Performance model"):
//! - **Monotone cleaning.** A bigger batch never runs faster: at each share the latencies are
//!   replaced by their running maximum over batch (measurement noise in `UTIL.CSV` has e.g. bert
//!   batch 2 faster than batch 1). Table points that already are monotone are returned exactly.
//! - **Batch.** Linear between measured batches; below the smallest measured batch, the smallest
//!   one's latency; beyond the largest, its per-item cost (`L(b) = L(b_max)·b/b_max`).
//! - **Share.** Between two measured shares, linear. Above the largest measured share, no further
//!   speed-up (conservative). Below the smallest measured share `s0`, the kernel keeps a fraction
//!   `U` of the whole GPU's SMs busy (`sm_util`), so a share `s ≥ U` costs nothing and a smaller
//!   share stretches it: `L(b, s) = L(b, s0) · max(1, U / s)`. The bytes a batch moves do not
//!   change, so its L2 and DRAM utilisation (rates) shrink by the same factor. `UTIL.CSV` holds
//!   only whole-GPU points (`s0 = 100%`), so every smaller share of a Gpu-let model is derived by
//!   this rule; the planner never plans below 5% (see `planner`).
//!
//! Utilisations are fractions of the whole GPU (0..1) in memory; files carry percent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::FULL_SHARE;

/// Why profiles (or contention coefficients, or an app) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// A data row is malformed or out of range.
    #[error("{what}, line {line}: {problem}")]
    Parse {
        /// What was being read: a file path or a description such as "profile CSV".
        what: String,
        /// 1-based line number in that text.
        line: usize,
        /// What is wrong with the line.
        problem: String,
    },
    /// The input as a whole is unusable (empty, a missing column, bad JSON, wrong row count).
    #[error("{what}: {problem}")]
    Invalid {
        /// What was being read: a file path or a description.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, ProfileError> {
    std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// How busy a running batch keeps the GPU, as fractions of the whole GPU.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Util {
    /// Share of the GPU's SMs kept busy, fraction 0..1.
    pub sm: f64,
    /// L2 cache utilisation, fraction 0..1 of the whole GPU's.
    pub l2: f64,
    /// DRAM bandwidth utilisation, fraction 0..1 of the whole GPU's.
    pub dram: f64,
}

impl Util {
    fn lerp(a: Util, b: Util, t: f64) -> Util {
        Util {
            sm: a.sm + (b.sm - a.sm) * t,
            l2: a.l2 + (b.l2 - a.l2) * t,
            dram: a.dram + (b.dram - a.dram) * t,
        }
    }
    fn scaled(self, f: f64) -> Util {
        Util {
            sm: self.sm * f,
            l2: self.l2 * f,
            dram: self.dram * f,
        }
    }
}

/// One measured point: a model at a batch size and SM share.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Batch size (≥ 1).
    pub batch: u32,
    /// SM share, percent (1..=100).
    pub share: u32,
    /// Time to run one batch, ms (finite, > 0).
    pub latency_ms: f64,
    /// GPU utilisation while the batch ran.
    pub util: Util,
    /// Memory the model held, MB.
    pub mem_mb: u64,
}

/// Latency and utilisation at one (batch, share), after the lookup rules.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Time to run one batch alone on the share, ms.
    pub latency_ms: f64,
    /// GPU utilisation while it runs, as fractions of the whole GPU (scaled down below the
    /// measured shares, see the module's share rule).
    pub util: Util,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Row {
    batch: u32,
    latency_ms: f64,
    util: Util,
}

/// All points of one model.
#[derive(Clone, Debug, Default, PartialEq)]
struct ModelProfile {
    /// Raw points by (share, batch), as measured (exported unchanged).
    points: BTreeMap<(u32, u32), Point>,
    /// Per share, rows sorted by batch with monotone latency.
    tables: BTreeMap<u32, Vec<Row>>,
    mem_mb: u64,
}

impl ModelProfile {
    fn rebuild(&mut self, share: u32) {
        let mut rows: Vec<Row> = Vec::new();
        for ((_, batch), p) in self.points.range((share, 0)..=(share, u32::MAX)) {
            // A bigger batch takes no less time and keeps no fewer SMs busy than a smaller one
            // (measured dips are noise): without the second floor, stretching a profile to a
            // share below the measured ones made a bigger batch faster.
            let (floor, sm_floor) = rows
                .last()
                .map_or((0.0, 0.0), |r| (r.latency_ms, r.util.sm));
            let mut util = p.util;
            util.sm = util.sm.max(sm_floor);
            rows.push(Row {
                batch: *batch,
                latency_ms: p.latency_ms.max(floor),
                util,
            });
        }
        self.tables.insert(share, rows);
    }

    fn at_share(rows: &[Row], batch: u32) -> Estimate {
        let first = &rows[0];
        let last = &rows[rows.len() - 1];
        if batch <= first.batch {
            return Estimate {
                latency_ms: first.latency_ms,
                util: first.util,
            };
        }
        if batch >= last.batch {
            return Estimate {
                latency_ms: last.latency_ms * batch as f64 / last.batch as f64,
                util: last.util,
            };
        }
        let hi = rows.partition_point(|r| r.batch < batch);
        let (a, b) = (&rows[hi - 1], &rows[hi]);
        if b.batch == batch {
            return Estimate {
                latency_ms: b.latency_ms,
                util: b.util,
            };
        }
        let t = (batch - a.batch) as f64 / (b.batch - a.batch) as f64;
        Estimate {
            latency_ms: a.latency_ms + (b.latency_ms - a.latency_ms) * t,
            util: Util::lerp(a.util, b.util, t),
        }
    }

    fn estimate(&self, batch: u32, share: u32) -> Option<Estimate> {
        let (&lo_share, lo_rows) = self.tables.iter().next()?;
        if let Some(rows) = self.tables.get(&share) {
            return Some(Self::at_share(rows, batch));
        }
        if share < lo_share {
            let e = Self::at_share(lo_rows, batch);
            let stretch = (e.util.sm * FULL_SHARE as f64 / share as f64).max(1.0);
            return Some(Estimate {
                latency_ms: e.latency_ms * stretch,
                util: e.util.scaled(1.0 / stretch),
            });
        }
        let below = self.tables.range(..share).next_back();
        let above = self.tables.range(share..).next();
        match (below, above) {
            (Some((&s0, r0)), Some((&s1, r1))) => {
                let (a, b) = (Self::at_share(r0, batch), Self::at_share(r1, batch));
                let t = (share - s0) as f64 / (s1 - s0) as f64;
                Some(Estimate {
                    latency_ms: a.latency_ms + (b.latency_ms - a.latency_ms) * t,
                    util: Util::lerp(a.util, b.util, t),
                })
            }
            (Some((_, rows)), None) => Some(Self::at_share(rows, batch)),
            _ => None,
        }
    }
}

/// Profiles of many models, keyed by profile key (e.g. `resnet50`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profiles {
    models: BTreeMap<String, ModelProfile>,
}

/// Header of the CSV `sluice profile` writes and [`Profiles::from_csv`] reads.
pub const CSV_HEADER: &str = "model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb";

impl Profiles {
    /// Adds (or replaces) one measured point.
    pub fn insert(&mut self, model: &str, point: Point) {
        let m = self.models.entry(model.to_string()).or_default();
        m.mem_mb = m.mem_mb.max(point.mem_mb);
        let share = point.share;
        m.points.insert((share, point.batch), point);
        m.rebuild(share);
    }

    /// Sets a model's memory footprint, MB (overrides what the points say).
    pub fn set_memory(&mut self, model: &str, mem_mb: u64) {
        if let Some(m) = self.models.get_mut(model) {
            m.mem_mb = mem_mb;
        }
    }

    /// Profile keys, sorted.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Whether `model` has a profile.
    pub fn contains(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// Number of measured points of `model` (0 if unknown).
    pub fn point_count(&self, model: &str) -> usize {
        self.models.get(model).map_or(0, |m| m.points.len())
    }

    /// The smallest share `model` was measured at, when it was measured at more than one share:
    /// below it the profile only extrapolates, and a measured profile (`sluice profile`) shows
    /// effects there that the stretch rule does not (a CPU quota's scheduling period, an SM
    /// allocation's rounding), so planners keep above it. `None` for whole-GPU tables such as
    /// Gpu-let's, whose smaller shares are all derived.
    pub fn measured_floor(&self, model: &str) -> Option<u32> {
        let m = self.models.get(model)?;
        let mut shares = m.tables.keys();
        let lowest = *shares.next()?;
        shares.next().map(|_| lowest)
    }

    /// The measured points of `model`, by (share, batch).
    pub fn points(&self, model: &str) -> impl Iterator<Item = &Point> {
        self.models
            .get(model)
            .into_iter()
            .flat_map(|m| m.points.values())
    }

    /// Memory footprint of one instance of `model`, MB.
    pub fn memory_mb(&self, model: &str) -> Option<u64> {
        self.models.get(model).map(|m| m.mem_mb)
    }

    /// Latency and utilisation of `model` at `batch` (≥ 1) and `share` (1..=100 percent), without
    /// contention, by the module's interpolation rules. `None` for an unknown model or a batch or
    /// share out of range.
    pub fn estimate(&self, model: &str, batch: u32, share: u32) -> Option<Estimate> {
        if batch == 0 || share == 0 || share > FULL_SHARE {
            return None;
        }
        self.models.get(model)?.estimate(batch, share)
    }

    /// Interpolated latency of one batch, ms, no contention.
    pub fn latency_ms(&self, model: &str, batch: u32, share: u32) -> Option<f64> {
        self.estimate(model, batch, share).map(|e| e.latency_ms)
    }

    /// Reads `UTIL.CSV` and `mem-config.json` from a directory such as
    /// `data/gpulet-2080ti`. `avg_duration` is in seconds (the data README; the column
    /// header says "ms", but e.g. vgg16 at batch 1 = 0.067 only makes sense as seconds). Memory
    /// entries named like a profile key plus digits (`lenet1`) apply to that key.
    pub fn load_gpulet(dir: &Path) -> Result<Profiles, ProfileError> {
        let util_path = dir.join("UTIL.CSV");
        let mut profiles = Self::parse_gpulet_util(&read(&util_path)?, &util_path)?;
        let mem_path = dir.join("mem-config.json");
        let memory = parse_gpulet_memory(&read(&mem_path)?, &mem_path)?;
        for (name, mb) in memory {
            if let Some(key) = profiles.key_for(&name).map(str::to_string) {
                let current = profiles.models[&key].mem_mb;
                profiles.set_memory(&key, if name == key { mb } else { current.max(mb) });
            }
        }
        Ok(profiles)
    }

    /// The profile key an application's model name maps to: the name itself, or the longest key
    /// it extends with digits only (`lenet3` → `lenet`).
    pub fn key_for(&self, name: &str) -> Option<&str> {
        if let Some((k, _)) = self.models.get_key_value(name) {
            return Some(k);
        }
        self.models
            .keys()
            .filter(|k| {
                name.strip_prefix(k.as_str()).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .max_by_key(|k| k.len())
            .map(String::as_str)
    }

    fn parse_gpulet_util(text: &str, path: &Path) -> Result<Profiles, ProfileError> {
        let what = path.display().to_string();
        let table = Csv::parse(text, &what)?;
        let cols = table.columns(
            &what,
            &[
                "bench",
                "batch",
                "avg_duration(ms)",
                "SM_util(%)",
                "l2_util(%)",
                "mem_util(%)",
            ],
        )?;
        let mut profiles = Profiles::default();
        for (line, row) in &table.rows {
            let f = |c: usize| table.number(&what, *line, row, cols[c]);
            let latency_ms = f(2)? * 1000.0;
            let point = Point {
                batch: table.count(&what, *line, row, cols[1])?,
                share: FULL_SHARE,
                latency_ms,
                util: Util {
                    sm: f(3)? / 100.0,
                    l2: f(4)? / 100.0,
                    dram: f(5)? / 100.0,
                },
                mem_mb: 0,
            };
            check_point(&what, *line, &point)?;
            profiles.insert(row[cols[0]].trim(), point);
        }
        Ok(profiles)
    }

    /// Reads the CSV `sluice profile` writes ([`CSV_HEADER`]; columns found by name, any order):
    /// latency in ms, utilisations in percent of the whole GPU, share in percent, memory in MB.
    pub fn from_csv(text: &str) -> Result<Profiles, ProfileError> {
        let what = "profile CSV".to_string();
        let table = Csv::parse(text, &what)?;
        let names: Vec<&str> = CSV_HEADER.split(',').collect();
        let cols = table.columns(&what, &names)?;
        let mut profiles = Profiles::default();
        for (line, row) in &table.rows {
            let f = |c: usize| table.number(&what, *line, row, cols[c]);
            let point = Point {
                batch: table.count(&what, *line, row, cols[1])?,
                share: table.count(&what, *line, row, cols[2])?,
                latency_ms: f(3)?,
                util: Util {
                    sm: f(4)? / 100.0,
                    l2: f(5)? / 100.0,
                    dram: f(6)? / 100.0,
                },
                mem_mb: f(7)?.round() as u64,
            };
            check_point(&what, *line, &point)?;
            let model = row[cols[0]].trim();
            if model.is_empty() {
                return Err(parse_err(&what, *line, "empty model name".into()));
            }
            profiles.insert(model, point);
        }
        Ok(profiles)
    }

    /// Writes every measured point in the [`CSV_HEADER`] format (round-trips through
    /// [`Profiles::from_csv`]).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for (name, m) in &self.models {
            for p in m.points.values() {
                out.push_str(&format!(
                    "{name},{},{},{},{},{},{},{}\n",
                    p.batch,
                    p.share,
                    p.latency_ms,
                    p.util.sm * 100.0,
                    p.util.l2 * 100.0,
                    p.util.dram * 100.0,
                    p.mem_mb
                ));
            }
        }
        out
    }
}

fn parse_err(what: &str, line: usize, problem: String) -> ProfileError {
    ProfileError::Parse {
        what: what.to_string(),
        line,
        problem,
    }
}

fn check_point(what: &str, line: usize, p: &Point) -> Result<(), ProfileError> {
    if p.batch == 0 {
        return Err(parse_err(what, line, "batch must be >= 1".into()));
    }
    if p.share == 0 || p.share > FULL_SHARE {
        return Err(parse_err(
            what,
            line,
            format!("share {} outside 1..=100", p.share),
        ));
    }
    if !(p.latency_ms.is_finite() && p.latency_ms > 0.0) {
        return Err(parse_err(
            what,
            line,
            format!("latency {} is not positive", p.latency_ms),
        ));
    }
    for (name, u) in [("sm", p.util.sm), ("l2", p.util.l2), ("dram", p.util.dram)] {
        if !(0.0..=1.0).contains(&u) {
            return Err(parse_err(
                what,
                line,
                format!("{name} utilisation {} outside 0..=100%", u * 100.0),
            ));
        }
    }
    Ok(())
}

fn parse_gpulet_memory(text: &str, path: &Path) -> Result<Vec<(String, u64)>, ProfileError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        mem: u64,
    }
    #[derive(serde::Deserialize)]
    struct File {
        models: Vec<Entry>,
    }
    let file: File = serde_json::from_str(text).map_err(|e| ProfileError::Invalid {
        what: path.display().to_string(),
        problem: e.to_string(),
    })?;
    Ok(file.models.into_iter().map(|e| (e.name, e.mem)).collect())
}

/// A plain comma-separated table (no quoting: the files hold names and numbers), header first.
pub(crate) struct Csv {
    header: Vec<String>,
    /// (1-based line number, fields)
    pub(crate) rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    pub(crate) fn parse(text: &str, what: &str) -> Result<Csv, ProfileError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(ProfileError::Invalid {
                what: what.to_string(),
                problem: "empty file".into(),
            });
        };
        let header = header.split(',').map(|h| h.trim().to_string()).collect();
        let rows = lines
            .map(|(n, l)| (n, l.split(',').map(|f| f.trim().to_string()).collect()))
            .collect();
        Ok(Csv { header, rows })
    }

    /// Column positions of `names`, in that order.
    pub(crate) fn columns(&self, what: &str, names: &[&str]) -> Result<Vec<usize>, ProfileError> {
        names
            .iter()
            .map(|n| {
                self.header
                    .iter()
                    .position(|h| h.eq_ignore_ascii_case(n))
                    .ok_or_else(|| ProfileError::Invalid {
                        what: what.to_string(),
                        problem: format!("no column {n:?} in the header"),
                    })
            })
            .collect()
    }

    pub(crate) fn number(
        &self,
        what: &str,
        line: usize,
        row: &[String],
        col: usize,
    ) -> Result<f64, ProfileError> {
        let field = row.get(col).map(String::as_str).unwrap_or("");
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(parse_err(
                what,
                line,
                format!("column {:?}: {field:?} is not a number", self.header[col]),
            )),
        }
    }

    fn count(
        &self,
        what: &str,
        line: usize,
        row: &[String],
        col: usize,
    ) -> Result<u32, ProfileError> {
        let field = row.get(col).map(String::as_str).unwrap_or("");
        field.parse::<u32>().map_err(|_| {
            parse_err(
                what,
                line,
                format!(
                    "column {:?}: {field:?} is not a whole number",
                    self.header[col]
                ),
            )
        })
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
