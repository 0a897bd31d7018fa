//! Synthetic Poisson mixes: the `poisson:` spec grammar and the workload it generates.
//!
//! `poisson:<class>=<rate_per_s>[,<class>=<rate>...][;duration=<s>][;functions_per_class=<k>]` gives, for each
//! entry, `k` functions `<class>-<i>` (i from 0) profiled from that catalogue class, each arriving as an
//! independent Poisson process of the given rate over `duration` seconds (defaults: k = 1, 600 s).

use super::error::{excerpt, TraceError};
use super::{LoadOptions, Loaded, MAX_ARRIVALS};
use crate::workload::{Arrival, Workload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sluice_core::{Dur, FunctionId, Time};
use std::fmt;
use std::str::FromStr;

const MAX_DURATION_S: f64 = 1e7;
const MAX_FUNCTIONS_PER_CLASS: usize = 100_000;

/// A parsed `poisson:` spec (without the `poisson:` prefix).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoissonSpec {
    /// One entry per class, in the order written.
    pub mix: Vec<PoissonEntry>,
    /// Arrivals are generated over this many seconds from time zero (default 600; at most 10^7).
    pub duration_s: f64,
    /// Functions generated per entry, each an independent Poisson process (default 1; at most
    /// 100,000).
    pub functions_per_class: usize,
}

/// `<class>=<rate_per_s>`: each function of this class arrives at `rate_per_s` on average.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoissonEntry {
    /// A catalogue class name.
    pub class: String,
    /// Mean arrivals per second of each function of the class (> 0).
    pub rate_per_s: f64,
}

impl FromStr for PoissonSpec {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<PoissonSpec, TraceError> {
        let bad = |reason: String| TraceError::Spec {
            spec: format!("poisson:{}", excerpt(s)),
            reason,
        };
        let mut parts = s.split(';').map(str::trim);
        let mut spec = PoissonSpec {
            mix: Vec::new(),
            duration_s: 600.0,
            functions_per_class: 1,
        };
        for entry in parts.next().unwrap_or("").split(',').map(str::trim) {
            let Some((class, rate)) = entry.split_once('=') else {
                return Err(bad(format!(
                    "expected <class>=<rate_per_s>, found `{}`",
                    excerpt(entry)
                )));
            };
            let class = class.trim();
            let rate = rate
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r > 0.0);
            let Some(rate_per_s) = rate else {
                return Err(bad(format!(
                    "rate of `{}` must be a positive number of arrivals per second",
                    excerpt(class)
                )));
            };
            if class.is_empty() {
                return Err(bad("empty class name before `=`".into()));
            }
            if spec.mix.iter().any(|e| e.class == class) {
                return Err(bad(format!("class `{}` is listed twice", excerpt(class))));
            }
            spec.mix.push(PoissonEntry {
                class: class.to_string(),
                rate_per_s,
            });
        }
        for option in parts {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            match key.trim() {
                "duration" => {
                    let d = value.trim().parse::<f64>().ok();
                    spec.duration_s = d
                        .filter(|d| d.is_finite() && *d > 0.0 && *d <= MAX_DURATION_S)
                        .ok_or_else(|| {
                            bad(format!(
                                "duration must be a number of seconds in (0, {MAX_DURATION_S:e}]"
                            ))
                        })?;
                }
                "functions_per_class" => {
                    let k = value.trim().parse::<usize>().ok();
                    spec.functions_per_class = k
                        .filter(|k| (1..=MAX_FUNCTIONS_PER_CLASS).contains(k))
                        .ok_or_else(|| bad(format!("functions_per_class must be an integer in 1..={MAX_FUNCTIONS_PER_CLASS}")))?;
                }
                other => {
                    return Err(bad(format!(
                        "unknown option `{}`: known options are duration, functions_per_class",
                        excerpt(other)
                    )))
                }
            }
        }
        let total_rate: f64 = spec.mix.iter().map(|e| e.rate_per_s).sum();
        let expected = total_rate * spec.duration_s * spec.functions_per_class as f64;
        if expected > (MAX_ARRIVALS / 2) as f64 {
            return Err(TraceError::TooLarge {
                what: format!(
                    "the expected number of arrivals of `poisson:{}` ({expected:.0})",
                    excerpt(s)
                ),
                limit: MAX_ARRIVALS / 2,
            });
        }
        Ok(spec)
    }
}

impl fmt::Display for PoissonSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mix: Vec<String> = self
            .mix
            .iter()
            .map(|e| format!("{}={}", e.class, e.rate_per_s))
            .collect();
        write!(f, "{};duration={}", mix.join(","), self.duration_s)?;
        if self.functions_per_class != 1 {
            write!(f, ";functions_per_class={}", self.functions_per_class)?;
        }
        Ok(())
    }
}

/// Generates the mix as a workload named `name`.
pub(crate) fn load(
    spec: &PoissonSpec,
    opts: &LoadOptions,
    name: String,
) -> Result<Loaded, TraceError> {
    let mut functions = Vec::new();
    let mut arrivals = Vec::new();
    for entry in &spec.mix {
        let class = opts
            .catalog
            .get(&entry.class)
            .ok_or_else(|| TraceError::UnknownClass {
                class: excerpt(&entry.class),
                known: opts.catalog.names(),
            })?;
        for i in 0..spec.functions_per_class {
            let id = u32::try_from(functions.len()).map_err(|_| TraceError::TooLarge {
                what: "the number of functions".into(),
                limit: u64::from(u32::MAX),
            })?;
            let fname = format!("{}-{i}", class.name);
            functions.push(class.profile(&fname, Dur::from_millis_f64(class.cpu_warm_ms)));
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(u64::from(id));
            let mut t = 0.0;
            loop {
                let u: f64 = rng.random();
                t += -(1.0 - u).ln() / entry.rate_per_s;
                if t >= spec.duration_s || arrivals.len() as u64 >= MAX_ARRIVALS {
                    break;
                }
                arrivals.push(Arrival {
                    at: Time::from_secs_f64(t),
                    func: FunctionId(id),
                });
            }
        }
    }
    if arrivals.is_empty() {
        return Err(TraceError::EmptyWorkload {
            source_name: name,
            reason: "no arrivals were generated; raise the rates or the duration".into(),
        });
    }
    arrivals.sort_unstable_by_key(|a| (a.at, a.func));
    Ok(Loaded {
        workload: Workload {
            name,
            functions,
            arrivals,
        },
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_example() {
        let s: PoissonSpec = "squeezenet=5, rnn=2;duration=60;functions_per_class=3"
            .parse()
            .expect("spec");
        assert_eq!(s.mix.len(), 2);
        assert_eq!((s.mix[1].class.as_str(), s.mix[1].rate_per_s), ("rnn", 2.0));
        assert_eq!((s.duration_s, s.functions_per_class), (60.0, 3));
        assert_eq!(s.to_string().parse::<PoissonSpec>().expect("round trip"), s);
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for (spec, needle) in [
            ("", "expected <class>=<rate_per_s>"),
            ("squeezenet", "expected <class>=<rate_per_s>"),
            ("squeezenet=-1", "positive number"),
            ("squeezenet=x", "positive number"),
            ("=3", "empty class"),
            ("a=1,a=2", "listed twice"),
            ("a=1;duration=0", "duration"),
            ("a=1;functions_per_class=0", "functions_per_class"),
            ("a=1;speed=3", "unknown option `speed`"),
            ("a=1e9;duration=1e6", "exceeds the limit"),
        ] {
            let err = spec.parse::<PoissonSpec>().expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn mix_gives_named_functions_at_the_asked_rates() {
        let spec: PoissonSpec = "squeezenet=5,rnn=2;functions_per_class=2"
            .parse()
            .expect("spec");
        let w = load(&spec, &LoadOptions::default(), "mix".into())
            .expect("mix")
            .workload;
        let names: Vec<&str> = w.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["squeezenet-0", "squeezenet-1", "rnn-0", "rnn-1"]);
        assert_eq!(w.functions[2].cpu_warm, Dur::from_millis(150));
        assert_eq!(w.functions[2].gpu_warm, Dur::from_millis(50));
        for (f, rate) in [5.0, 5.0, 2.0, 2.0].into_iter().enumerate() {
            let n = w.arrivals.iter().filter(|a| a.func.index() == f).count() as f64;
            let expected = rate * 600.0; // Poisson count: sd = sqrt(expected); allow 5 sd.
            assert!(
                (n - expected).abs() < 5.0 * expected.sqrt(),
                "{f}: {n} vs {expected}"
            );
        }
        assert!(w
            .arrivals
            .windows(2)
            .all(|p| (p[0].at, p[0].func) <= (p[1].at, p[1].func)));
        assert!(w.span() < Dur::from_secs(600));
        let unknown: PoissonSpec = "resnet=1".parse().expect("spec");
        let err = load(&unknown, &LoadOptions::default(), "x".into()).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains(
                "unknown GPU class `resnet`: known classes are squeezenet, imagenet-resnet50"
            ),
            "{msg}"
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,60}", t in "[a-z=,;0-9._ -]{0,40}") {
            let _ = s.parse::<PoissonSpec>();
            let _ = t.parse::<PoissonSpec>();
        }
    }
}
