//! Building GPU workloads from an Azure day the way the MQFQ-Sticky authors built theirs: a
//! sample of K functions stratified by popularity, each mapped onto a GPU class whose own warm
//! time, cold time and memory it takes ([`AzureOptions`], [`Timing`]).
//!
//! The authors' trace generator (Ilúvatar's `representative_trace.py`) cuts the day's functions
//! into popularity quartiles by total invocations and draws the same number from each; their
//! GPU functions run the benchmarks' own code, so a function's GPU time is its benchmark's, not a
//! rescaled CPU time. This module owns the option grammar (`;sample=K;timing=class` after an
//! `azure2019:` spec) and the sampler.

use super::error::{excerpt, TraceError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Where a trace function's GPU timings come from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Timing {
    /// The trace's warm time divided by the class's speedup (the default; Azure averages of
    /// minutes become multi-minute GPU calls).
    #[default]
    Trace,
    /// The class's own warm time (`cpu_warm_ms / speedup`), as the MQFQ-Sticky authors' functions
    /// run their benchmark's code; the trace gives only the arrivals.
    Class,
}

/// Options of an `azure2019:` spec after the path: `;sample=K;timing=class|trace`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureOptions {
    /// Keep K functions sampled by popularity quartile (`None`: every function).
    pub sample: Option<usize>,
    /// Where GPU timings come from.
    pub timing: Timing,
}

impl AzureOptions {
    /// Parses `key=value` options (already split on `;`); `spec` names the whole spec in errors.
    pub(crate) fn parse<'a>(
        parts: impl Iterator<Item = &'a str>,
        spec: &str,
    ) -> Result<Self, TraceError> {
        let bad = |reason: String| TraceError::Spec {
            spec: excerpt(spec),
            reason,
        };
        let mut opts = AzureOptions::default();
        for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(bad(format!("option `{part}` is not key=value")));
            };
            match (key.trim(), value.trim()) {
                ("sample", v) => match v.parse::<usize>() {
                    Ok(k) if k >= 1 => opts.sample = Some(k),
                    _ => return Err(bad(format!("sample must be a whole number ≥ 1, got `{v}`"))),
                },
                ("timing", "trace") => opts.timing = Timing::Trace,
                ("timing", "class") => opts.timing = Timing::Class,
                ("timing", v) => {
                    return Err(bad(format!("timing must be trace or class, got `{v}`")))
                }
                (k, _) => {
                    return Err(bad(format!(
                        "unknown option `{k}`: expected sample=<K> or timing=trace|class"
                    )))
                }
            }
        }
        Ok(opts)
    }
}

impl fmt::Display for AzureOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = self.sample {
            write!(f, ";sample={k}")?;
        }
        if self.timing == Timing::Class {
            write!(f, ";timing=class")?;
        }
        Ok(())
    }
}

/// Indices of `k` of the items whose invocation totals are `totals`, stratified by popularity:
/// items sorted by total (ties by index) are cut into four quartiles of nearly equal size;
/// `⌊k/4⌋` are drawn from each and the `k mod 4` left over from the most popular quartiles down
/// (a quartile too small gives its excess to the next more popular one, then less popular);
/// within a quartile uniformly without replacement from ChaCha8 seeded with `seed`. Returns
/// indices in increasing order; `k ≥ n` returns every index.
pub(crate) fn by_popularity(totals: &[u64], k: usize, seed: u64) -> Vec<usize> {
    let n = totals.len();
    if k >= n {
        return (0..n).collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (totals[i], i));
    let bounds: Vec<usize> = (0..=4).map(|q| q * n / 4).collect();
    let mut quota = [k / 4; 4];
    for q in (0..4).rev().take(k % 4) {
        quota[q] += 1;
    }
    // Move any quota a quartile cannot fill to its neighbours, most popular first.
    for q in 0..4 {
        let size = bounds[q + 1] - bounds[q];
        let excess = quota[q].saturating_sub(size);
        quota[q] -= excess;
        let mut left = excess;
        for r in (0..4).rev().filter(|&r| r != q) {
            let room = (bounds[r + 1] - bounds[r]).saturating_sub(quota[r]);
            let take = room.min(left);
            quota[r] += take;
            left -= take;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(0x005a_4d50_4c45);
    let mut chosen = Vec::with_capacity(k);
    for q in 0..4 {
        let pool = &mut order[bounds[q]..bounds[q + 1]];
        for j in 0..quota[q].min(pool.len()) {
            let pick = rng.random_range(j..pool.len());
            pool.swap(j, pick);
            chosen.push(pool[j]);
        }
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_print() {
        let o = AzureOptions::parse(["sample=20", " timing=class "].into_iter(), "s").unwrap();
        assert_eq!(
            o,
            AzureOptions {
                sample: Some(20),
                timing: Timing::Class
            }
        );
        assert_eq!(o.to_string(), ";sample=20;timing=class");
        assert_eq!(AzureOptions::default().to_string(), "");
        for (bad, needle) in [
            ("sample=0", "sample must be"),
            ("sample=x", "sample must be"),
            ("timing=gpu", "timing must be"),
            ("seed=3", "unknown option `seed`"),
            ("sample", "not key=value"),
        ] {
            let e = AzureOptions::parse([bad].into_iter(), "s").unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn sampling_takes_each_quartile_and_is_seeded() {
        let totals: Vec<u64> = (0..100).map(|i| (i * 37 % 100) as u64).collect();
        let a = by_popularity(&totals, 20, 7);
        assert_eq!(a, by_popularity(&totals, 20, 7));
        assert_ne!(a, by_popularity(&totals, 20, 8));
        assert_eq!(a.len(), 20);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Five from each quartile of totals (0-24, 25-49, 50-74, 75-99).
        for q in 0..4u64 {
            let n = a.iter().filter(|&&i| totals[i] / 25 == q).count();
            assert_eq!(n, 5, "quartile {q}");
        }
        let b = by_popularity(&totals, 6, 1);
        let top = b.iter().filter(|&&i| totals[i] >= 50).count();
        assert_eq!(top, 4, "the two extra come from the popular half");
        assert_eq!(by_popularity(&totals[..3], 5, 1), vec![0, 1, 2]);
        assert_eq!(
            by_popularity(&totals[..7], 6, 1).len(),
            6,
            "small quartiles pass quota on"
        );
    }
}
