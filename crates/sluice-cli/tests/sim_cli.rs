//! End-to-end tests of `sluice sim`: the real binary on a small slice of the Ilúvatar trace
//! (the first 600 invocations of `data/iluvatar-paper-trace`, copied to tests/data), a
//! golden summary, and bad input answered with a clear error and no panic.
//!
//! `UPDATE_GOLDEN=1 cargo test -p sluice-cli --test sim_cli` rewrites the golden file.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `sluice` with `args`, which must succeed, and parses what it printed as JSON.
fn sluice_json(args: &[&str]) -> serde_json::Value {
    let out = sluice(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn slice_spec() -> String {
    format!("iluvatar:{}", data("iluvatar-slice").display())
}

#[test]
fn golden_summary_of_a_small_trace() {
    let spec = slice_spec();
    let mut json = sluice_json(&[
        "sim",
        "--trace",
        &spec,
        "--policies",
        "fcfs,sjf,eedf,batch,paella,mqfq,mqfq-sticky",
        "--target-util",
        "0.8",
        "--json",
        "--quiet",
    ]);
    // The trace path depends on where the repository is checked out.
    json.as_object_mut().unwrap().remove("trace");
    let policies = json["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 7);
    for p in policies {
        assert_eq!(p["invocations"], 600);
        assert_eq!(p["completed"], 600);
        for key in ["mean", "p50", "p99", "p999"] {
            assert!(p["latency_ms"][key].as_f64().unwrap() > 0.0);
        }
        let causes = p["cold_start_causes"].as_object().expect("causes counted");
        let sum: u64 = causes.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(Some(sum), p["cold_starts"].as_u64(), "{p}");
    }
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let golden = data("sim-golden.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file exists");
    assert_eq!(
        text, want,
        "summary changed; rerun with UPDATE_GOLDEN=1 if intended"
    );
}

#[test]
fn table_output_and_out_dir() {
    let dir = std::env::temp_dir().join(format!("sluice-sim-cli-{}", std::process::id()));
    let spec = slice_spec();
    let out = sluice(&[
        "sim",
        "--trace",
        &spec,
        "--policies",
        "fcfs,mqfq-sticky",
        "--target-util",
        "0.5,0.9",
        "--quiet",
        "--records",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mqfq-sticky") && stdout.contains("offered GPU utilisation 0.9"));
    for f in [
        "summary.json",
        "sweep.md",
        "latency-vs-load.svg",
        "latency-cdf-u0.5.svg",
        "records-u0.9-fcfs.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("records-u0.9-fcfs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 601);
    std::fs::remove_dir_all(&dir).ok();
}

/// Each bad input exits with status 1 and a message naming the problem; none panics.
#[test]
fn bad_input_is_a_clear_error() {
    let spec = slice_spec();
    let bad_cfg = std::env::temp_dir().join(format!("sluice-bad-{}.toml", std::process::id()));
    std::fs::write(&bad_cfg, "[device]\nmemory_gib = -4\n").unwrap();
    let bad_overhead =
        std::env::temp_dir().join(format!("sluice-bad-overhead-{}.toml", std::process::id()));
    std::fs::write(&bad_overhead, "[device]\nexec_overhead_ms = -1.5\n").unwrap();
    let bad_prewarm =
        std::env::temp_dir().join(format!("sluice-bad-prewarm-{}.toml", std::process::id()));
    std::fs::write(&bad_prewarm, "[prewarm]\nper_function = -1\n").unwrap();
    let bad_spare =
        std::env::temp_dir().join(format!("sluice-bad-spare-{}.toml", std::process::id()));
    std::fs::write(&bad_spare, "[scheduler.keepalive]\nspare_ttl_s = -1\n").unwrap();
    let bad_salt =
        std::env::temp_dir().join(format!("sluice-bad-salt-{}.toml", std::process::id()));
    std::fs::write(&bad_salt, "[scheduler.placement]\nkey_salt = \"seven\"\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--trace", &spec, "--policies", "lifo"],
            "unknown policy",
        ),
        (vec!["--trace", "nosuch:thing"], "nosuch"),
        (vec!["--trace", "iluvatar:/no/such/dir"], "/no/such/dir"),
        (
            vec!["--trace", &spec, "--target-util", "0"],
            "--target-util",
        ),
        (vec!["--trace", &spec, "--gpus", "0"], "gpus"),
        (
            vec!["--trace", &spec, "--config", bad_cfg.to_str().unwrap()],
            "memory_gib",
        ),
        (
            vec!["--trace", &spec, "--config", bad_overhead.to_str().unwrap()],
            "exec_overhead_ms",
        ),
        (vec!["--trace", "poisson:nosuchclass=3"], "nosuchclass"),
        (vec!["--trace", &spec, "--max-queue-ms=-5"], "max_queue_ms"),
        (
            vec!["--trace", &spec, "--prewarm", "65"],
            "prewarm.per_function",
        ),
        (
            vec!["--trace", &spec, "--config", bad_prewarm.to_str().unwrap()],
            "per_function",
        ),
        (
            vec!["--trace", &spec, "--config", bad_spare.to_str().unwrap()],
            "keepalive.spare_ttl_s",
        ),
        (
            vec!["--trace", &spec, "--config", bad_salt.to_str().unwrap()],
            "key_salt",
        ),
        (
            vec![
                "--trace",
                &spec,
                "--capacity",
                "--slo",
                "p99=9",
                "--max-gpus",
                "0",
            ],
            "--max-gpus",
        ),
        (vec!["--trace", "azure2019:d/1;sample=0"], "sample must be"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["sim", "--quiet"];
        all.extend(args.iter().copied());
        let out = sluice(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.contains("error"), "{all:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{all:?} should mention {needle:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{all:?}: {stderr}");
    }
    std::fs::remove_file(bad_cfg).ok();
    std::fs::remove_file(bad_overhead).ok();
    std::fs::remove_file(bad_prewarm).ok();
    std::fs::remove_file(bad_spare).ok();
    std::fs::remove_file(bad_salt).ok();
}

#[test]
fn cluster_rows_have_the_issue_fields_and_bad_flags_are_errors() {
    let trace = "synthetic:functions=50;invocations=3000;duration=3600;seed=3;median_ms=300";
    let args = [
        "sim",
        "--trace",
        trace,
        "--workers",
        "4",
        "--gpus",
        "2",
        "--routers",
        "ch-bl,ch-rlu,random,round-robin,least-loaded,p2c",
        "--churn",
        "leave:1@600,join:1@1800",
        "--json",
        "--quiet",
    ];
    let out = sluice(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["workers"], 4);
    assert_eq!(json["churn"], "leave:1@600,join:1@1800");
    let rows = json["routers"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["router"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "ch-bl",
            "ch-rlu",
            "random",
            "round-robin",
            "least-loaded",
            "p2c"
        ]
    );
    for r in rows {
        for k in ["invocations", "completed", "cold_starts", "rejected"] {
            assert!(r[k].is_u64(), "{k}");
        }
        assert_eq!(r["completed"], r["invocations"]);
        for k in ["gb_moved", "load_imbalance", "gpu_util"] {
            assert!(r[k].is_f64(), "{k}");
        }
        let hashing = r["router"].as_str().unwrap().starts_with("ch-");
        assert_eq!(r["spilled"].is_u64(), hashing);
        assert_eq!(r["fallbacks"].is_u64(), hashing);
        assert_eq!(r["remapped"].is_u64(), hashing);
        assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    }
    // Deterministic: the same command prints the same rows, on one thread or several.
    assert_eq!(sluice(&args).stdout, out.stdout);
    let mut one = args.to_vec();
    one.extend(["--threads", "1"]);
    assert_eq!(sluice(&one).stdout, out.stdout);
    for (flags, needle) in [
        (vec!["--workers", "0"], "workers must be"),
        (
            vec!["--workers", "2", "--routers", "hash"],
            "unknown router",
        ),
        (vec!["--workers", "2", "--churn", "leave:1"], "missing `@"),
        (
            vec!["--workers", "2", "--churn", "leave:5@1"],
            "would leave no worker",
        ),
        (vec!["--workers", "2", "--epsilon=-1"], "epsilon"),
        (vec!["--workers", "2", "--probes=-1"], "--probes"),
        (vec!["--probes", "8"], "--workers"),
        (vec!["--workers", "2", "--report-ms=-1"], "--report-ms"),
        (vec!["--workers", "2", "--report-ms", "nan"], "--report-ms"),
        (vec!["--workers", "2", "--threads", "0"], "--threads"),
        (vec!["--threads", "2"], "--workers"),
        (
            vec!["--workers", "2", "--gate-ceiling", "0.5"],
            "gate_ceiling",
        ),
    ] {
        let mut a = vec!["sim", "--trace", trace, "--quiet"];
        a.extend(flags.iter().copied());
        let out = sluice(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{flags:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn prewarming_skips_first_cold_starts_and_is_refused_for_a_cluster() {
    let spec = slice_spec();
    let run = |prewarm: &str| {
        let json = sluice_json(&[
            "sim",
            "--trace",
            &spec,
            "--policies",
            "fcfs",
            "--gpus",
            "4",
            "--prewarm",
            prewarm,
            "--json",
            "--quiet",
        ]);
        json["policies"][0]["latency_ms"]["mean"].as_f64().unwrap()
    };
    let (cold, warm) = (run("0"), run("1"));
    assert!(warm < cold, "prewarmed {warm} ms, not {cold} ms");
    let out = sluice(&[
        "sim",
        "--trace",
        &spec,
        "--workers",
        "2",
        "--prewarm",
        "1",
        "--json",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--prewarm") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_key_salt_is_another_layout_and_zero_is_the_default() {
    let spec = slice_spec();
    let run = |salt: Option<&str>| {
        let mut args = vec![
            "sim",
            "--trace",
            &spec,
            "--policies",
            "fcfs,mqfq-sticky",
            "--gpus",
            "4",
            "--json",
            "--quiet",
        ];
        if let Some(s) = salt {
            args.extend(["--key-salt", s]);
        }
        sluice_json(&args)["policies"].clone()
    };
    let default = run(None);
    assert_eq!(run(Some("0")), default);
    // Another layout of the four devices' functions: the same arrivals, other figures (on this
    // slice the mean moves by up to a fifth between layouts).
    let salted = run(Some("5"));
    assert_ne!(salted, default);
    assert_eq!(salted[0]["completed"], 600);
    let out = sluice(&["sim", "--trace", &spec, "--key-salt", "one", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--key-salt") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn the_replica_sweep_averages_its_layouts_and_counts_their_rises() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    let spec = slice_spec();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sweep-replicas.sh");
    let run = Command::new("bash")
        .arg(&script)
        .args(["--bin", env!("CARGO_BIN_EXE_sluice"), "--replicas", "2"])
        .args(["--gpus", "1 2 4", "--trace", &spec, "--out"])
        .arg(&out)
        .output()
        .expect("bash runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join(p)).unwrap()).unwrap()
    };
    let summary = read("replicas.json");
    assert_eq!(summary["replicas"], 2);
    assert_eq!(
        summary["rising_figures_per_replica"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Each replica is the sweep with its own salt; the summary holds their mean.
    for g in [1, 2, 4] {
        let mean_of = |k: u32| {
            let run = read(&format!("salt-{k}/g{g}.json"));
            let p = &run["policies"].as_array().unwrap()[0];
            assert_eq!(p["policy"], "fcfs");
            p["latency_ms"]["p99"].as_f64().unwrap()
        };
        let want = (mean_of(0) + mean_of(1)) / 2.0;
        let got = summary["latency_ms"]["fcfs"][g.to_string()]["p99"]
            .as_f64()
            .unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{g} GPUs: {got} vs {want}"
        );
    }
    // Salt 0 is the default layout: its sweep is the plain run's.
    let plain = sluice_json(&[
        "sim",
        "--trace",
        &spec,
        "--policies",
        "fcfs,sjf,eedf,batch,paella,mqfq,mqfq-sticky",
        "--gpus",
        "2",
        "--seed",
        "1",
        "--json",
        "--quiet",
    ]);
    assert_eq!(read("salt-0/g2.json")["policies"], plain["policies"]);
    let md = std::fs::read_to_string(out.join("replicas.md")).unwrap();
    assert!(md.contains("2 layouts of the home devices"), "{md}");
    // One replica is no replica: refused with the usage line, nothing written.
    let one = dir.path().join("one");
    let refused = Command::new("bash")
        .arg(&script)
        .args(["--bin", env!("CARGO_BIN_EXE_sluice"), "--replicas", "1"])
        .args(["--trace", &spec, "--out"])
        .arg(&one)
        .output()
        .expect("bash runs");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("usage") && err.contains("--replicas"), "{err}");
    assert!(!one.exists());
}
