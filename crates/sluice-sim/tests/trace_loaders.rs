//! Trace loaders end to end: the bundled Azure 2019 and Ilúvatar data (exact counts), the original 2019 column
//! order, seeding and spreads, one clear error per malformed input (tests/data/trace/malformed.toml), and no
//! panic on garbage. Poisson mixes and utilisation scaling are tested next to their code. Every test name starts
//! with `trace_` so that `cargo test -p sluice-sim trace` selects them.

use proptest::prelude::*;
use sluice_core::{Dur, FunctionId, Time};
use sluice_sim::trace::{load, LoadOptions, Loaded, Spread, TraceError, TraceSpec};
use std::collections::BTreeMap;
use std::time::Instant;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trace");

fn load_spec(spec: &str, opts: &LoadOptions) -> Result<Loaded, TraceError> {
    load(&spec.parse::<TraceSpec>()?, opts)
}

fn azure(n: &str, opts: &LoadOptions) -> Loaded {
    load_spec(&format!("azure2019:{DATA}/azure2019-sample/{n}"), opts)
        .expect("bundled Azure day loads")
}

fn count_per_function(l: &Loaded) -> Vec<u64> {
    let mut counts = vec![0; l.workload.functions.len()];
    for a in &l.workload.arrivals {
        counts[a.func.index()] += 1;
    }
    counts
}

fn assert_sorted(l: &Loaded) {
    assert!(l
        .workload
        .arrivals
        .windows(2)
        .all(|w| (w[0].at, w[0].func) <= (w[1].at, w[1].func)));
}

#[test]
fn trace_azure_10_function_day_matches_the_inv_file_exactly() {
    let l = azure("10", &LoadOptions::default());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let w = &l.workload;
    let names: Vec<&str> = w.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[..3], ["1779fd3337", "bd28ee142c", "1b46c1a27e"]);
    assert_eq!(
        count_per_function(&l),
        [4038, 8, 1769, 47, 20165, 21, 2305, 4, 3, 72]
    );
    assert_eq!(w.arrivals.len(), 28_432);
    assert_sorted(&l);
    // Every arrival lies in the minute it was counted in: recount per (function, minute) from the raw file.
    let text =
        std::fs::read_to_string(format!("{DATA}/azure2019-sample/10_inv.csv")).expect("read");
    for (f, line) in text.lines().skip(1).enumerate() {
        let mut per_minute = vec![0u64; 1440];
        for a in w.arrivals.iter().filter(|a| a.func.index() == f) {
            per_minute[(a.at.as_micros() / 60_000_000) as usize] += 1;
        }
        let want: Vec<u64> = line
            .split(',')
            .skip(3)
            .map(|c| c.parse().expect("count"))
            .collect();
        assert_eq!(per_minute, want, "function {f}");
    }
    // Run stats: 1779fd… averages 18671 ms; its class maps it to the GPU.
    let f0 = &w.functions[0];
    assert_eq!(f0.cpu_warm, Dur::from_millis(18_671));
    let class = LoadOptions::default()
        .catalog
        .class_for("1779fd3337")
        .clone();
    assert_eq!(f0.class, class.name);
    assert_eq!(
        f0.gpu_warm,
        Dur::from_millis(18_671).mul_f64(1.0 / class.speedup)
    );
    let cold_ms = class.container_start_ms + class.gpu_init_ms;
    assert_eq!(f0.cold_start, Dur::from_millis_f64(cold_ms));
}

#[test]
fn trace_azure_100_function_day_loads_fast_with_every_invocation() {
    let start = Instant::now();
    let l = azure("100", &LoadOptions::default());
    let took = start.elapsed();
    eprintln!(
        "azure2019 100-function day: {} arrivals in {took:?}",
        l.workload.arrivals.len()
    );
    assert_eq!(l.workload.functions.len(), 100);
    assert_eq!(l.workload.arrivals.len(), 621_128);
    assert_sorted(&l);
    assert!(l.workload.span() < Dur::from_secs(86_400));
    if !cfg!(debug_assertions) {
        assert!(took.as_secs_f64() < 1.0, "took {took:?}");
    }
}

#[test]
fn trace_azure_original_2019_column_order_loads_by_header() {
    let opts = LoadOptions {
        spread: Spread::Uniform,
        ..LoadOptions::default()
    };
    let l = load_spec(&format!("azure2019:{FIXTURES}/azure2019-orig/d01"), &opts)
        .expect("fixture loads");
    let w = &l.workload;
    let names: Vec<&str> = w.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["f00000000000a@app1", "f00000000000b", "f00000000000a@app2"]
    );
    // The same HashFunction in two apps keeps each app's own run stats.
    let warm: Vec<Dur> = w.functions.iter().map(|f| f.cpu_warm).collect();
    assert_eq!(
        warm,
        [
            Dur::from_millis(120),
            Dur::from_micros(30_500),
            Dur::from_millis(4000)
        ]
    );
    assert_eq!(count_per_function(&l), [6, 4, 1]);
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l
        .warnings
        .iter()
        .any(|m| m.contains("dropped 1 function(s) with no invocations")));
    assert!(l
        .warnings
        .iter()
        .any(|m| m.contains("skipped 1 function(s)") && m.contains("7 invocations")));
    // Uniform spread: the i-th of c arrivals in minute m at 60m + (i + 0.5)·60/c s.
    let times = |f: u32| -> Vec<f64> {
        let mine = w.arrivals.iter().filter(|a| a.func == FunctionId(f));
        mine.map(|a| a.at.as_secs_f64()).collect()
    };
    assert_eq!(times(0), [10.0, 30.0, 50.0, 90.0, 86_355.0, 86_385.0]);
    assert_eq!(times(1), [547.5, 562.5, 577.5, 592.5]);
    assert_eq!(times(2), [30.0]);
}

#[test]
fn trace_seeds_decide_the_arrivals() {
    let opts = |seed| LoadOptions {
        seed,
        ..LoadOptions::default()
    };
    let seeded = |seed| azure("10", &opts(seed));
    assert_eq!(seeded(7), seeded(7));
    let (a, b) = (seeded(7).workload, seeded(8).workload);
    assert_eq!(a.functions, b.functions);
    assert_ne!(a.arrivals, b.arrivals);
    let p = |seed| load_spec("poisson:squeezenet=5,rnn=2;duration=60", &opts(seed));
    assert_eq!(p(1).expect("p").workload, p(1).expect("p").workload);
    assert_ne!(
        p(1).expect("p").workload.arrivals,
        p(2).expect("p").workload.arrivals
    );
}

#[test]
fn trace_iluvatar_paper_trace_loads_in_metadata_order() {
    let opts = LoadOptions::default();
    let l = load_spec(&format!("iluvatar:{DATA}/iluvatar-paper-trace"), &opts).expect("loads");
    let w = &l.workload;
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(w.functions.len(), 21);
    assert_eq!(w.arrivals.len(), 11_868);
    assert_eq!(w.functions[0].name, "4137b8c22f");
    let want = [
        753, 1405, 1411, 3912, 765, 55, 598, 600, 196, 123, 302, 90, 80, 99, 50, 68, 49, 50, 1138,
        50, 74,
    ];
    assert_eq!(count_per_function(&l), want);
    assert_eq!(w.arrivals[0].at, Time::from_micros(6_000));
    assert_sorted(&l);
    let (f0, class) = (&w.functions[0], opts.catalog.class_for("4137b8c22f"));
    assert_eq!(f0.cpu_warm, Dur::from_millis(23));
    assert_eq!(
        f0.cold_start,
        Dur::from_millis_f64(class.container_start_ms + class.gpu_init_ms)
    );
    assert_eq!(f0.gpu_mem_bytes, (class.gpu_mem_mb * 1048576.0) as u64);
}

const INV: &str = "HashFunction,HashApp,HashOwner,minute_1,minute_2\nf1,a1,o1,1,2\n";
const RUN: &str = "HashFunction,HashApp,HashOwner,Count,Average\nf1,a1,o1,3,100\n";
const MEM: &str = "HashApp,HashOwner,SampleCount,AverageAllocatedMb\na1,o1,5,128\n";
const TRACE: &str = "func_name,invoke_time_ms\nf1,10\nf1,20.5\n";
const META: &str = "func_name,cold_dur_ms,warm_dur_ms,mem_mb,mean_iat\nf1,900,100,64,10.0\n";

const AZURE: [(&str, &str); 3] = [("x_inv.csv", INV), ("x_run.csv", RUN), ("x_mem.csv", MEM)];
const ILUVATAR: [(&str, &str); 2] = [("trace.csv", TRACE), ("metadata-trace.csv", META)];

/// Writes the valid files of `kind` into a fresh directory, `over` replacing same-named ones and `remove` left
/// out, and loads them.
fn load_with(kind: &str, over: &[(&str, &[u8])], remove: &[String]) -> Result<Loaded, TraceError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let base: &[(&str, &str)] = if kind == "azure" { &AZURE } else { &ILUVATAR };
    for (name, body) in base.iter().filter(|(n, _)| !remove.iter().any(|r| r == n)) {
        let body = over
            .iter()
            .find(|(n, _)| n == name)
            .map_or(body.as_bytes(), |o| o.1);
        std::fs::write(dir.path().join(name), body).expect("write");
    }
    let d = dir.path().display();
    let spec = if kind == "azure" {
        format!("azure2019:{d}/x")
    } else {
        format!("iluvatar:{d}")
    };
    load_spec(&spec, &LoadOptions::default())
}

/// One case of `tests/data/trace/malformed.toml` (its header says what a case means).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    kind: String,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    warn: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Cases {
    case: Vec<Case>,
}

fn check(name: &str, result: Result<Loaded, TraceError>, expect: &[String], warn: &[String]) {
    match result {
        Ok(l) if expect.is_empty() => {
            let has = |w: &String| l.warnings.iter().any(|m| m.contains(w.as_str()));
            assert!(
                warn.iter().all(has),
                "{name}: warnings {:?} lack one of {warn:?}",
                l.warnings
            );
        }
        Ok(_) => panic!("{name}: loaded, but expected an error containing {expect:?}"),
        Err(e) => {
            let msg = e.to_string();
            let ok = !expect.is_empty() && expect.iter().all(|n| msg.contains(n.as_str()));
            assert!(ok, "{name}: `{msg}` lacks one of {expect:?}");
        }
    }
}

#[test]
fn trace_malformed_inputs_give_clear_errors() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/malformed.toml")).expect("fixture");
    let cases: Cases = toml::from_str(&text).expect("malformed.toml parses");
    for c in &cases.case {
        let over: Vec<(&str, &[u8])> = c
            .files
            .iter()
            .map(|(f, b)| (f.as_str(), b.as_bytes()))
            .collect();
        let result = load_with(&c.kind, &over, &c.remove);
        check(&c.name, result, &c.expect, &c.warn);
    }
    let utf8: &[(&str, &[u8])] = &[(
        "x_inv.csv",
        b"HashFunction,HashApp,minute_1\n\xff\xfe,a,1\n",
    )];
    let msg = ["x_inv.csv:2: malformed CSV: invalid UTF-8".to_string()];
    check("utf8", load_with("azure", utf8, &[]), &msg, &[]);
}

/// Garbage lines: fields of digits, signs, letters and quotes, some of them ragged.
fn garbage() -> impl Strategy<Value = String> {
    prop::collection::vec("[0-9a-z,.\" -]{0,12}", 0..6).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn trace_loaders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), lines in garbage(), pick in 0usize..5) {
        let (kind, (name, valid)) = match pick {
            0..=2 => ("azure", AZURE[pick]),
            _ => ("iluvatar", ILUVATAR[pick - 3]),
        };
        let header = valid.lines().next().unwrap_or("");
        for body in [bytes.clone(), format!("{header}\n{lines}").into_bytes()] {
            let _ = load_with(kind, &[(name, &body)], &[]);
        }
    }
}

/// The MQFQ-Sticky authors' way: K functions sampled by popularity quartile, each timed by its
/// GPU class (warm, cold, memory), arrivals as recorded; the same seed gives the same sample.
#[test]
fn trace_azure_sample_with_class_timing() {
    let opts = LoadOptions::default();
    let full = azure("100", &opts);
    let l = load_spec(
        &format!("azure2019:{DATA}/azure2019-sample/100;sample=12;timing=class"),
        &opts,
    )
    .expect("sampled day loads");
    assert_eq!(l.workload.functions.len(), 12);
    assert_sorted(&l);
    for f in &l.workload.functions {
        let class = opts.catalog.get(&f.class).expect("a catalogue class");
        assert_eq!(
            f.gpu_warm,
            Dur::from_millis_f64(class.cpu_warm_ms / class.speedup)
        );
        let twin = full
            .workload
            .functions
            .iter()
            .find(|g| g.name == f.name)
            .expect("names are the full day's");
        assert_eq!(
            (twin.class.as_str(), twin.cold_start),
            (f.class.as_str(), f.cold_start)
        );
    }
    let again = load_spec(
        &format!("azure2019:{DATA}/azure2019-sample/100;sample=12;timing=class"),
        &opts,
    )
    .expect("loads");
    assert_eq!(again.workload, l.workload);
    let other = LoadOptions {
        seed: 43,
        ..LoadOptions::default()
    };
    let l2 = load_spec(
        &format!("azure2019:{DATA}/azure2019-sample/100;sample=12"),
        &other,
    )
    .expect("loads");
    assert_ne!(
        l2.workload
            .functions
            .iter()
            .map(|f| &f.name)
            .collect::<Vec<_>>(),
        l.workload
            .functions
            .iter()
            .map(|f| &f.name)
            .collect::<Vec<_>>(),
        "another seed samples other functions"
    );
}
