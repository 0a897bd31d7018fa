//! The contention model: how much slower an instance runs because of its co-runners on the same
//! GPU, from their L2 and DRAM use. This module owns the Gpu-let linear interference model, its
//! generalisation beyond pairs, and the hook that compares its predictions with measured pairs.
//!
//! Gpu-let fits, for a model `m1` co-located with `m2` (utilisations as fractions),
//! `slowdown(m1) = c1·l2(m1) + c2·l2(m2) + c3·dram(m1) + c4·dram(m2) + c0`.
//! Generalisation (documented in `docs/pipelines.md`, "Contention model"):
//! - alone on its GPU an instance has slowdown 1;
//! - with co-runners, `m2`'s terms become the co-runners' total pressure `Σ l2`, `Σ dram`, each
//!   sum capped at 1 (a GPU's L2 or DRAM cannot be more than saturated);
//! - each co-runner's utilisation is taken at its own batch and SM share (a co-runner squeezed
//!   into a small share moves the same bytes over a longer time, so exerts less pressure — see
//!   `profile`), and co-runners are assumed busy (the worst case, which is where a plan runs at
//!   its capacity);
//! - the result is clamped to ≥ 1 (the fitted constant is 0.895, so two near-idle models would
//!   otherwise "speed each other up").

use std::path::Path;

use crate::profile::{read, Csv, ProfileError, Profiles, Util};

/// Coefficients of the linear interference model.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Coefficients {
    /// `c1`: weight of the instance's own L2 utilisation (fraction 0..1).
    pub l2_self: f64,
    /// `c2`: weight of the co-runners' total L2 utilisation (fraction 0..1, capped at 1).
    pub l2_other: f64,
    /// `c3`: weight of the instance's own DRAM utilisation (fraction 0..1).
    pub dram_self: f64,
    /// `c4`: weight of the co-runners' total DRAM utilisation (fraction 0..1, capped at 1).
    pub dram_other: f64,
    /// `c0`: the intercept (0.895 in the Gpu-let fit); the slowdown is clamped to ≥ 1 after it.
    pub constant: f64,
}

/// The contention model: linear (Gpu-let) or none (every slowdown is 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Contention {
    coefficients: Option<Coefficients>,
}

impl Contention {
    /// No contention at all.
    pub fn none() -> Contention {
        Contention { coefficients: None }
    }

    /// The linear model with these coefficients.
    pub fn linear(c: Coefficients) -> Contention {
        Contention {
            coefficients: Some(c),
        }
    }

    /// The coefficients, if the model is linear.
    pub fn coefficients(&self) -> Option<Coefficients> {
        self.coefficients
    }

    /// Reads `INT_MODEL_CONSTANT.CSV` from a directory such as `data/gpulet-2080ti`.
    pub fn load_gpulet(dir: &Path) -> Result<Contention, ProfileError> {
        let path = dir.join("INT_MODEL_CONSTANT.CSV");
        Self::parse(&read(&path)?, &path.display().to_string())
    }

    /// Parses the coefficients CSV (`l2_util_m1,l2_util_m2,dram_util_m1,dram_util_m2,constant`,
    /// one data row).
    pub fn parse(text: &str, what: &str) -> Result<Contention, ProfileError> {
        let table = Csv::parse(text, what)?;
        let cols = table.columns(
            what,
            &[
                "l2_util_m1",
                "l2_util_m2",
                "dram_util_m1",
                "dram_util_m2",
                "constant",
            ],
        )?;
        let [(line, row)] = table.rows.as_slice() else {
            return Err(ProfileError::Invalid {
                what: what.to_string(),
                problem: format!(
                    "expected one row of coefficients, found {}",
                    table.rows.len()
                ),
            });
        };
        let v = |c: usize| table.number(what, *line, row, cols[c]);
        Ok(Contention::linear(Coefficients {
            l2_self: v(0)?,
            l2_other: v(1)?,
            dram_self: v(2)?,
            dram_other: v(3)?,
            constant: v(4)?,
        }))
    }

    /// Slowdown (≥ 1) of an instance with utilisation `me` beside co-runners `others`.
    pub fn slowdown(&self, me: Util, others: &[Util]) -> f64 {
        let Some(c) = self.coefficients else {
            return 1.0;
        };
        if others.is_empty() {
            return 1.0;
        }
        let l2: f64 = others.iter().map(|u| u.l2).sum::<f64>().min(1.0);
        let dram: f64 = others.iter().map(|u| u.dram).sum::<f64>().min(1.0);
        let s = c.l2_self * me.l2
            + c.l2_other * l2
            + c.dram_self * me.dram
            + c.dram_other * dram
            + c.constant;
        s.max(1.0)
    }

    /// The model's prediction for every ordered pair of profiled models, both at `batch` on
    /// half a GPU each: (victim, co-runner, predicted slowdown of the victim), sorted by name.
    pub fn pair_table(&self, profiles: &Profiles, batch: u32) -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for a in profiles.models() {
            for b in profiles.models() {
                let (Some(ea), Some(eb)) = (
                    profiles.estimate(a, batch, 50),
                    profiles.estimate(b, batch, 50),
                ) else {
                    continue;
                };
                out.push((
                    a.to_string(),
                    b.to_string(),
                    self.slowdown(ea.util, &[eb.util]),
                ));
            }
        }
        out
    }

    /// Compares the model's predictions with measured pairs (what `sluice profile` can record:
    /// two models co-run, each at its batch and share). Pairs whose models are not profiled
    /// are skipped and counted.
    pub fn prediction_error(
        &self,
        profiles: &Profiles,
        measured: &[PairMeasurement],
    ) -> ErrorReport {
        let mut report = ErrorReport::default();
        let mut sum = 0.0;
        for m in measured {
            let (Some(v), Some(o)) = (
                profiles.estimate(&m.victim, m.victim_batch, m.victim_share),
                profiles.estimate(&m.other, m.other_batch, m.other_share),
            ) else {
                report.skipped += 1;
                continue;
            };
            let predicted = self.slowdown(v.util, &[o.util]);
            let err = (predicted - m.slowdown).abs() / m.slowdown * 100.0;
            sum += err;
            report.count += 1;
            report.max_abs_pct = report.max_abs_pct.max(err);
        }
        if report.count > 0 {
            report.mean_abs_pct = sum / report.count as f64;
        }
        report
    }
}

/// A measured co-location: `victim` ran `slowdown` times slower beside `other`.
#[derive(Clone, Debug, PartialEq)]
pub struct PairMeasurement {
    /// Profile key of the model whose slowdown was measured.
    pub victim: String,
    /// Batch size the victim ran at (≥ 1).
    pub victim_batch: u32,
    /// The victim's SM share, percent (≥ 1).
    pub victim_share: u32,
    /// Profile key of the co-runner.
    pub other: String,
    /// Batch size the co-runner ran at (≥ 1).
    pub other_batch: u32,
    /// The co-runner's SM share, percent (≥ 1).
    pub other_share: u32,
    /// The victim's latency beside `other` divided by its latency alone at the same batch and
    /// share (> 0; 1 means no interference).
    pub slowdown: f64,
}

/// Header of a pair-measurement CSV.
pub const PAIR_CSV_HEADER: &str =
    "victim,victim_batch,victim_share,other,other_batch,other_share,slowdown";

impl PairMeasurement {
    /// Reads a CSV with [`PAIR_CSV_HEADER`] (columns by name).
    pub fn from_csv(text: &str) -> Result<Vec<PairMeasurement>, ProfileError> {
        let what = "pair CSV";
        let table = Csv::parse(text, what)?;
        let names: Vec<&str> = PAIR_CSV_HEADER.split(',').collect();
        let cols = table.columns(what, &names)?;
        let mut out = Vec::new();
        for (line, row) in &table.rows {
            let n = |c: usize| table.number(what, *line, row, cols[c]);
            let whole = |c: usize| -> Result<u32, ProfileError> {
                let v = n(c)?;
                if v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                    Ok(v as u32)
                } else {
                    Err(ProfileError::Parse {
                        what: what.into(),
                        line: *line,
                        problem: format!("column {:?} must be a whole number >= 1", names[c]),
                    })
                }
            };
            let slowdown = n(6)?;
            if slowdown <= 0.0 {
                return Err(ProfileError::Parse {
                    what: what.into(),
                    line: *line,
                    problem: "slowdown must be positive".into(),
                });
            }
            out.push(PairMeasurement {
                victim: row[cols[0]].clone(),
                victim_batch: whole(1)?,
                victim_share: whole(2)?,
                other: row[cols[3]].clone(),
                other_batch: whole(4)?,
                other_share: whole(5)?,
                slowdown,
            });
        }
        Ok(out)
    }
}

/// Prediction error over measured pairs, in percent of the measured slowdown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorReport {
    /// Pairs compared.
    pub count: usize,
    /// Pairs skipped because a model, batch or share had no profile estimate.
    pub skipped: usize,
    /// Mean of `|predicted − measured| / measured` over the compared pairs, percent (0 when none).
    pub mean_abs_pct: f64,
    /// Largest such error, percent (0 when none).
    pub max_abs_pct: f64,
}

#[cfg(test)]
#[path = "contention_tests.rs"]
mod tests;
