//! Trace loaders: turn a trace spec (`azure2019:…`, `iluvatar:…`, `poisson:…`, `synthetic:…`) into a [`Workload`] whose
//! functions are mapped onto the GPU [`Catalog`], plus [`scale_to_util`] to set the offered GPU load.
//!
//! This module owns the spec grammar, the load options and the dispatch to one loader per format
//! (`azure`, `iluvatar`, `poisson`); the mapping of CPU timings onto GPU classes lives in [`catalog`].
//! It does not run anything: the simulator replays what is loaded here. See docs/traces.md.

mod azure;
mod azure_csv;
pub mod catalog;
mod error;
mod iluvatar;
pub mod poisson;
mod sample;
mod scale;
pub mod synthetic;
mod table;

pub use catalog::{Catalog, GpuClass};
pub use error::TraceError;
pub use poisson::{PoissonEntry, PoissonSpec};
pub use sample::{AzureOptions, Timing};
pub use scale::scale_to_util;
pub use synthetic::{SyntheticDay, SyntheticSpec};

use crate::workload::Workload;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The most arrivals a loader will build (about 1.6 GB of arrivals); larger inputs are refused, not attempted.
pub(crate) const MAX_ARRIVALS: u64 = 100_000_000;

const KINDS: &str = "azure2019 (azure2019:<dir>/<N>[;sample=<K>][;timing=trace|class]), iluvatar (iluvatar:<trace.csv>,<metadata.csv>), \
                     poisson (poisson:<class>=<rate_per_s>[,…][;duration=<s>][;functions_per_class=<k>]), \
                     synthetic (synthetic:functions=<n>;invocations=<total>[;duration=<s>][;seed=<k>][;skew=<σ>][;swing=<a>][;median_ms=<ms>])";

/// Which trace to load, as written on the command line.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceSpec {
    /// `azure2019:<dir>/<N>[;sample=<K>][;timing=trace|class]`: files `<dir>/<N>_inv.csv`,
    /// `<N>_run.csv`, `<N>_mem.csv`, optionally sampled and timed by class ([`AzureOptions`]).
    Azure {
        /// The directory holding the three files.
        dir: PathBuf,
        /// The files' common prefix `<N>`, e.g. `100` for `100_inv.csv`.
        n: String,
        /// Sampling and timing options written after the path.
        opts: AzureOptions,
    },
    /// `iluvatar:<trace.csv>,<metadata.csv>` (or `iluvatar:<dir>` for `trace.csv`, `metadata-trace.csv` there).
    Iluvatar {
        /// The trace file: one row per invocation (`func_name`, `invoke_time_ms`).
        trace: PathBuf,
        /// The metadata file: one row per function, with its warm and cold times.
        metadata: PathBuf,
    },
    /// `poisson:<class>=<rate_per_s>[,…][;duration=<s>][;functions_per_class=<k>]`.
    Poisson(PoissonSpec),
    /// `synthetic:functions=<n>;invocations=<total>[;…]`: an Azure-shaped synthetic day
    /// ([`synthetic`]).
    Synthetic(SyntheticSpec),
}

impl FromStr for TraceSpec {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<TraceSpec, TraceError> {
        let s = s.trim();
        let bad = |reason: &str| TraceError::Spec {
            spec: error::excerpt(s),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(TraceError::Spec {
                spec: String::new(),
                reason: format!("the spec is empty: expected one of {KINDS}"),
            });
        }
        let Some((kind, rest)) = s.split_once(':') else {
            return Err(TraceError::UnknownKind {
                kind: error::excerpt(s),
                known: KINDS,
            });
        };
        let rest = rest.trim();
        match kind.trim() {
            "azure2019" => {
                let mut parts = rest.split(';');
                let path = parts.next().unwrap_or("").trim();
                let opts = AzureOptions::parse(parts, s)?;
                let (dir, n) = match path.rsplit_once('/') {
                    Some(("", n)) => ("/", n),
                    Some((dir, n)) => (dir, n),
                    None => (".", path),
                };
                let n = n.strip_suffix("_inv.csv").unwrap_or(n);
                if n.is_empty() {
                    return Err(bad("expected azure2019:<dir>/<N> naming <dir>/<N>_inv.csv, e.g. azure2019:data/100"));
                }
                Ok(TraceSpec::Azure {
                    dir: PathBuf::from(dir),
                    n: n.to_string(),
                    opts,
                })
            }
            "iluvatar" => {
                let (trace, metadata) = match rest.split_once(',') {
                    Some((t, m)) => (PathBuf::from(t.trim()), PathBuf::from(m.trim())),
                    None => (
                        PathBuf::from(rest).join("trace.csv"),
                        PathBuf::from(rest).join("metadata-trace.csv"),
                    ),
                };
                if rest.is_empty()
                    || trace.as_os_str().is_empty()
                    || metadata.as_os_str().is_empty()
                {
                    return Err(bad(
                        "expected iluvatar:<trace.csv>,<metadata.csv> or iluvatar:<dir>",
                    ));
                }
                Ok(TraceSpec::Iluvatar { trace, metadata })
            }
            "poisson" => Ok(TraceSpec::Poisson(rest.parse()?)),
            "synthetic" => Ok(TraceSpec::Synthetic(rest.parse()?)),
            other => Err(TraceError::UnknownKind {
                kind: error::excerpt(other),
                known: KINDS,
            }),
        }
    }
}

impl fmt::Display for TraceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceSpec::Azure { dir, n, opts } => {
                write!(f, "azure2019:{}/{n}{opts}", dir.display())
            }
            TraceSpec::Iluvatar { trace, metadata } => {
                write!(f, "iluvatar:{},{}", trace.display(), metadata.display())
            }
            TraceSpec::Poisson(p) => write!(f, "poisson:{p}"),
            TraceSpec::Synthetic(s) => write!(f, "synthetic:{s}"),
        }
    }
}

/// How the arrivals counted in one Azure minute are placed inside it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Evenly spaced: the i-th of c arrivals at `(i + 0.5)·60/c` s into the minute.
    Uniform,
    /// A Poisson process conditioned on its count: c i.i.d. uniform times in the minute, sorted (seeded).
    #[default]
    Poisson,
}

impl FromStr for Spread {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Spread, TraceError> {
        match s.trim() {
            "uniform" => Ok(Spread::Uniform),
            "poisson" => Ok(Spread::Poisson),
            other => Err(TraceError::Spec {
                spec: error::excerpt(other),
                reason: "unknown spread: expected uniform or poisson".into(),
            }),
        }
    }
}

/// How to load: the seed of every random choice, the in-minute spread, and the GPU catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Seed of every random choice: the in-minute spread, the Azure sample, the Poisson arrivals.
    pub seed: u64,
    /// How the arrivals counted in an Azure minute are placed inside it.
    pub spread: Spread,
    /// The GPU classes that trace functions are mapped onto.
    pub catalog: Catalog,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            seed: 42,
            spread: Spread::Poisson,
            catalog: Catalog::builtin(),
        }
    }
}

/// A loaded workload and what the loader had to skip or assume on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The workload to replay.
    pub workload: Workload,
    /// What the loader skipped, merged or assumed, one message each, for the user.
    pub warnings: Vec<String>,
}

/// Loads the trace `spec` names. Deterministic: the same spec, files and options give the same workload.
pub fn load(spec: &TraceSpec, opts: &LoadOptions) -> Result<Loaded, TraceError> {
    opts.catalog.validate()?;
    let name = spec.to_string();
    match spec {
        TraceSpec::Azure { dir, n, opts: a } => azure::load(dir, n, *a, opts, name),
        TraceSpec::Iluvatar { trace, metadata } => iluvatar::load(trace, metadata, opts, name),
        TraceSpec::Poisson(p) => poisson::load(p, opts, name),
        TraceSpec::Synthetic(s) => synthetic::load(s, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_kind() {
        let a: TraceSpec = "azure2019:data/azure2019-sample/100"
            .parse()
            .expect("azure");
        assert_eq!(
            a,
            TraceSpec::Azure {
                dir: "data/azure2019-sample".into(),
                n: "100".into(),
                opts: AzureOptions::default(),
            }
        );
        let s: TraceSpec = "azure2019:d/100;sample=20;timing=class"
            .parse()
            .expect("azure with options");
        assert!(
            matches!(&s, TraceSpec::Azure { opts, .. } if opts.sample == Some(20) && opts.timing == Timing::Class)
        );
        assert_eq!(s.to_string().parse::<TraceSpec>().expect("round trip"), s);
        assert_eq!(a.to_string().parse::<TraceSpec>().expect("round trip"), a);
        let i: TraceSpec = "iluvatar:t.csv, m.csv".parse().expect("iluvatar");
        assert_eq!(
            i,
            TraceSpec::Iluvatar {
                trace: "t.csv".into(),
                metadata: "m.csv".into()
            }
        );
        let p: TraceSpec = "poisson:squeezenet=5,rnn=2;duration=600"
            .parse()
            .expect("poisson");
        assert!(matches!(p, TraceSpec::Poisson(ref s) if s.mix.len() == 2));
        assert_eq!(
            "uniform".parse::<Spread>().expect("spread"),
            Spread::Uniform
        );
        assert_eq!(
            serde_json::to_string(&Spread::Poisson).expect("json"),
            "\"poisson\""
        );
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for (spec, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("foo:bar", "unknown trace kind `foo`"),
            ("nocolon", "known kinds are azure2019"),
            ("azure2019:", "expected azure2019:<dir>/<N>"),
            ("azure2019:dir/", "expected azure2019:<dir>/<N>"),
            ("azure2019:d/1;sample=0", "sample must be"),
            ("azure2019:d/1;colour=red", "unknown option"),
            ("iluvatar:", "expected iluvatar:"),
            ("iluvatar:t.csv,", "expected iluvatar:"),
            ("poisson:", "expected <class>=<rate_per_s>"),
        ] {
            let err = spec.parse::<TraceSpec>().expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn spec_parser_never_panics(s in "\\PC{0,80}", t in "(azure2019|iluvatar|poisson|x)?:[a-z0-9/,;=._ ]{0,30}") {
            let _ = s.parse::<TraceSpec>();
            let _ = t.parse::<TraceSpec>();
        }
    }
}
