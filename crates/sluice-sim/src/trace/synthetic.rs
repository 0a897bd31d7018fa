//! A synthetic day in the shape of the Azure Functions trace (Shahrad et al., ATC'20): the
//! `synthetic:` spec, the function population it draws and a streaming generator of its
//! arrivals, so that ten thousand functions over a day never sit in memory as one list.
//!
//! `synthetic:functions=<n>;invocations=<expected total>[;duration=<s>][;seed=<k>][;skew=<σ>]
//! [;swing=<a>][;median_ms=<ms>]` (defaults: 1000 functions, 1,000,000 invocations, 86400 s,
//! the load seed, σ 2.5, a 0.5, 1000 ms). Per function:
//!
//! - **popularity**: a mean rate ∝ `exp(σ·z)`, `z` standard normal (lognormal), scaled so the
//!   rates add up to `invocations / duration`: with σ = 2.5 the top 10% of functions carry
//!   about 80% of the invocations and half of them see fewer than one an hour, as in the trace;
//! - **diurnal swing**: every rate follows `1 − a·cos(2πt/86400)`, trough at midnight and peak
//!   at noon (peak/trough `(1+a)/(1−a)`, 3 at the default), drawn by thinning a Poisson process;
//! - **duration** (warm GPU time): lognormal around `median_ms` with σ 1.3, within 10 ms..120 s;
//! - **memory**: lognormal around 2 GiB with σ 0.7, within 256 MiB..16 GiB; the cold start is
//!   1 s plus the memory at 2 GB/s (sandbox, CUDA context and model load).
//!
//! Deterministic: function `i`'s profile and arrivals come from its own SplitMix64 stream seeded
//! from `(seed, i)`, so they do not depend on how many other functions there are.

use super::error::{excerpt, TraceError};
use super::{LoadOptions, Loaded, MAX_ARRIVALS};
use crate::workload::{Arrival, FunctionProfile, Workload};
use sluice_core::{Dur, FunctionId, Time};
use sluice_policy::placement::{RandomSource, SplitMix64, StableHasher};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;

const DAY_S: f64 = 86_400.0;
const MAX_FUNCTIONS: u32 = 1_000_000;

/// A parsed `synthetic:` spec (without the prefix).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Distinct functions (1 to 1,000,000).
    pub functions: u32,
    /// Expected invocations over the whole duration.
    pub invocations: f64,
    /// Length of the generated trace, seconds (a day by default).
    pub duration_s: f64,
    /// `None`: the load options' seed.
    pub seed: Option<u64>,
    /// σ of the lognormal popularity.
    pub skew: f64,
    /// Diurnal amplitude in `[0, 1)`.
    pub swing: f64,
    /// Median warm GPU time of a function, ms.
    pub median_ms: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            functions: 1000,
            invocations: 1_000_000.0,
            duration_s: DAY_S,
            seed: None,
            skew: 2.5,
            swing: 0.5,
            median_ms: 1000.0,
        }
    }
}

impl FromStr for SyntheticSpec {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, TraceError> {
        let bad = |reason: String| TraceError::Spec {
            spec: format!("synthetic:{}", excerpt(s)),
            reason,
        };
        let mut spec = SyntheticSpec::default();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad(format!(
                    "expected <key>=<value>, found `{}`",
                    excerpt(part)
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            let num = |lo: f64, hi: f64| -> Result<f64, TraceError> {
                match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
                    _ => Err(bad(format!(
                        "{k} must be a number in [{lo}, {hi}], found `{}`",
                        excerpt(v)
                    ))),
                }
            };
            match k {
                "functions" => spec.functions = num(1.0, f64::from(MAX_FUNCTIONS))? as u32,
                "invocations" => spec.invocations = num(0.0, MAX_ARRIVALS as f64)?,
                "duration" => spec.duration_s = num(1.0, 1e7)?,
                "seed" => {
                    spec.seed = Some(v.parse::<u64>().map_err(|_| {
                        bad(format!("seed must be a non-negative integer, found `{}`", excerpt(v)))
                    })?)
                }
                "skew" => spec.skew = num(0.0, 5.0)?,
                "swing" => spec.swing = num(0.0, 0.99)?,
                "median_ms" => spec.median_ms = num(0.01, 3.6e6)?,
                other => {
                    return Err(bad(format!(
                        "unknown option `{}`: expected functions, invocations, duration, seed, skew, swing or median_ms",
                        excerpt(other)
                    )))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for SyntheticSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "functions={};invocations={};duration={}",
            self.functions, self.invocations, self.duration_s
        )?;
        if let Some(seed) = self.seed {
            write!(f, ";seed={seed}")?;
        }
        let d = SyntheticSpec::default();
        for (k, v, dv) in [
            ("skew", self.skew, d.skew),
            ("swing", self.swing, d.swing),
            ("median_ms", self.median_ms, d.median_ms),
        ] {
            if v != dv {
                write!(f, ";{k}={v}")?;
            }
        }
        Ok(())
    }
}

/// A uniform float in `(0, 1)`.
fn open_unit(r: &mut SplitMix64) -> f64 {
    ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(r: &mut SplitMix64) -> f64 {
    let (u, v) = (open_unit(r), open_unit(r));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn lognormal(r: &mut SplitMix64, median: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    (median * (sigma * normal(r)).exp()).clamp(lo, hi)
}

/// The synthetic day: its functions and their mean rates; [`SyntheticDay::arrivals`] streams
/// the invocations.
#[derive(Clone, Debug)]
pub struct SyntheticDay {
    spec: SyntheticSpec,
    seed: u64,
    functions: Vec<FunctionProfile>,
    /// Mean invocations per second of each function over a whole day.
    rates: Vec<f64>,
}

impl SyntheticDay {
    /// Draws the functions of `spec` (seeded by the spec's seed, else `default_seed`).
    pub fn new(spec: &SyntheticSpec, default_seed: u64) -> Self {
        let seed = spec.seed.unwrap_or(default_seed);
        let mut weights = Vec::with_capacity(spec.functions as usize);
        let mut functions = Vec::with_capacity(spec.functions as usize);
        for i in 0..spec.functions {
            let mut r = Self::stream(seed, i, 0);
            weights.push((spec.skew * normal(&mut r)).exp());
            let warm_ms = lognormal(&mut r, spec.median_ms, 1.3, 10.0, 120_000.0);
            let mem = lognormal(
                &mut r,
                2.0 * (1u64 << 30) as f64,
                0.7,
                256.0 * (1 << 20) as f64,
                16.0 * (1u64 << 30) as f64,
            );
            let gpu_mem_bytes = mem as u64;
            functions.push(FunctionProfile {
                name: format!("fn{i:06}"),
                class: "synthetic".into(),
                gpu_warm: Dur::from_millis_f64(warm_ms),
                cpu_warm: Dur::from_millis_f64(warm_ms * 5.0),
                cold_start: Dur::from_secs_f64(1.0 + gpu_mem_bytes as f64 / 2e9),
                gpu_mem_bytes,
            });
        }
        let total: f64 = weights.iter().sum();
        let per_s = spec.invocations / spec.duration_s;
        let rates = weights.iter().map(|w| per_s * w / total).collect();
        SyntheticDay {
            spec: spec.clone(),
            seed,
            functions,
            rates,
        }
    }

    /// Function `i`'s random stream `k` (0: its profile, 1: its arrivals).
    fn stream(seed: u64, i: u32, k: u64) -> SplitMix64 {
        let mut h = StableHasher::new();
        h.write_u64(seed);
        h.write_u64(u64::from(i));
        h.write_u64(k);
        SplitMix64::new(h.finish())
    }

    /// The functions, indexed by [`FunctionId`].
    pub fn functions(&self) -> &[FunctionProfile] {
        &self.functions
    }

    /// Each function's mean rate (per second) over a day.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// The diurnal factor at `t_s` seconds (mean 1 over a day).
    pub fn diurnal(&self, t_s: f64) -> f64 {
        1.0 - self.spec.swing * (std::f64::consts::TAU * t_s / DAY_S).cos()
    }

    /// The expected total GPU work (solo warm seconds) over the duration, by the rates.
    pub fn expected_work_s(&self) -> f64 {
        self.rates
            .iter()
            .zip(&self.functions)
            .map(|(r, f)| r * f.gpu_warm.as_secs_f64())
            .sum::<f64>()
            * self.spec.duration_s
    }

    /// The name of the workload (`synthetic:` and the spec).
    pub fn name(&self) -> String {
        format!(
            "synthetic:{}",
            SyntheticSpec {
                seed: Some(self.seed),
                ..self.spec.clone()
            }
        )
    }

    /// The arrivals in time order, generated as they are read.
    pub fn arrivals(&self) -> Arrivals<'_> {
        let mut a = Arrivals {
            day: self,
            end_us: (self.spec.duration_s * 1e6) as u64,
            streams: (0..self.spec.functions)
                .map(|i| Self::stream(self.seed, i, 1))
                .collect(),
            heap: BinaryHeap::with_capacity(self.functions.len()),
        };
        for i in 0..self.spec.functions {
            a.schedule(i, 0.0);
        }
        a
    }
}

/// The streaming arrivals of a [`SyntheticDay`]: one pending arrival per function in a heap.
pub struct Arrivals<'a> {
    day: &'a SyntheticDay,
    end_us: u64,
    streams: Vec<SplitMix64>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Arrivals<'_> {
    /// Draws function `i`'s next arrival after `from_s` by thinning (candidates at the peak rate,
    /// each kept with probability rate(t)/peak) and queues it if it falls inside the duration.
    fn schedule(&mut self, i: u32, from_s: f64) {
        if let Some(at) = self.draw(i, from_s) {
            self.heap.push(Reverse((at, i)));
        }
    }

    /// Function `i`'s next arrival after `from_s` (µs), if it falls inside the duration.
    fn draw(&mut self, i: u32, from_s: f64) -> Option<u64> {
        let peak = self.day.rates[i as usize] * (1.0 + self.day.spec.swing);
        if peak <= 0.0 {
            return None;
        }
        let r = &mut self.streams[i as usize];
        let mut t = from_s;
        let end_s = self.end_us as f64 / 1e6;
        loop {
            t += -open_unit(r).ln() / peak;
            if t >= end_s {
                return None;
            }
            let keep = self.day.diurnal(t) / (1.0 + self.day.spec.swing);
            if open_unit(r) < keep {
                return Some((t * 1e6) as u64);
            }
        }
    }
}

impl Iterator for Arrivals<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        let Reverse((at, i)) = *self.heap.peek()?;
        // The function's next arrival replaces this one at the top (one sift, not a pop and a
        // push); entries are unique (one per function), so the order is the same either way.
        match self.draw(i, at as f64 / 1e6) {
            Some(next) => {
                if let Some(mut top) = self.heap.peek_mut() {
                    *top = Reverse((next, i));
                }
            }
            None => {
                self.heap.pop();
            }
        }
        Some(Arrival {
            at: Time::from_micros(at),
            func: FunctionId(i),
        })
    }
}

/// Materialises a synthetic day as a [`Workload`] (for the single-worker engine); refused above
/// the loader's arrival limit.
pub(super) fn load(spec: &SyntheticSpec, opts: &LoadOptions) -> Result<Loaded, TraceError> {
    if spec.invocations > MAX_ARRIVALS as f64 {
        return Err(TraceError::Spec {
            spec: format!("synthetic:{spec}"),
            reason: format!("at most {MAX_ARRIVALS} invocations can be loaded at once"),
        });
    }
    let day = SyntheticDay::new(spec, opts.seed);
    let arrivals: Vec<Arrival> = day.arrivals().collect();
    Ok(Loaded {
        workload: Workload {
            name: day.name(),
            functions: day.functions().to_vec(),
            arrivals,
        },
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
