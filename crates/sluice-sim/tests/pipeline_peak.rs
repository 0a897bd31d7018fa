//! Peak-load search: bounded by the service capacity, zero when the target is impossible,
//! deterministic, and monotone in resources (twice the instances never lowers the peak).

mod pipeline_fixture;

use pipeline_fixture::{cluster, plan, spec, stage, Linear};
use sluice_sim::pipeline::peak::{meets, service_bound_rps};
use sluice_sim::pipeline::{peak_load, simulate, PeakConfig, SimError};

fn quick() -> PeakConfig {
    PeakConfig {
        requests: 5_000,
        ..PeakConfig::default()
    }
}

#[test]
fn single_stage_peak_is_below_capacity_and_meets_the_target_there() {
    let s = spec("one", 10.0, vec![stage("only", &[], 1, 0.0)]);
    let p = plan("max-load", 1, &[(0, 0, 100, 1)]);
    let m = Linear {
        stages: vec![(1.0, 0.0)],
    };
    let c = cluster(1);
    assert_eq!(service_bound_rps(&s, &p, &m), 1000.0);
    let cfg = quick();
    let peak = peak_load(&s, &p, &m, &c, 10.0, &cfg).expect("peak");
    // M/D/1 with D = 1 ms: the p99 sojourn reaches 10 ms near ρ ≈ 0.8-0.9.
    assert!(peak > 650.0 && peak < 1000.0, "{peak}");
    let at = simulate(&s, &p, &m, &c, &cfg.run_config(peak)).expect("run");
    assert!(meets(&at, 10.0), "{}", at.render_text());
    let above = simulate(&s, &p, &m, &c, &cfg.run_config(peak * 1.05)).expect("run");
    assert!(!meets(&above, 10.0), "{}", above.render_text());
    assert_eq!(peak_load(&s, &p, &m, &c, 10.0, &cfg), Ok(peak));
    // A target below the service time itself cannot be met at any load.
    assert_eq!(peak_load(&s, &p, &m, &c, 0.9, &cfg), Ok(0.0));
}

#[test]
fn twice_the_instances_never_lowers_the_peak() {
    let s = spec(
        "chain",
        40.0,
        vec![
            stage("a", &[], 8, 2.0),
            stage("b", &["a"], 8, 2.0),
            stage("c", &["b"], 8, 2.0),
        ],
    );
    let m = Linear {
        stages: vec![(0.5, 0.3), (1.0, 0.5), (0.3, 0.1)],
    };
    let cfg = quick();
    let layouts: [&[(usize, u32, u32, u32)]; 3] = [
        &[(0, 0, 30, 4), (1, 0, 40, 8), (2, 0, 30, 2)],
        &[(0, 0, 20, 8), (1, 0, 60, 4), (2, 0, 20, 8)],
        &[(0, 0, 50, 1), (1, 0, 30, 2), (2, 0, 20, 1)],
    ];
    for one_gpu in layouts {
        let mut doubled = one_gpu.to_vec();
        doubled.extend(one_gpu.iter().map(|&(st, _, share, b)| (st, 1, share, b)));
        let p1 = plan("max-load", 1, one_gpu);
        let p2 = plan("max-load", 2, &doubled);
        let peak1 = peak_load(&s, &p1, &m, &cluster(1), 40.0, &cfg).expect("peak");
        let peak2 = peak_load(&s, &p2, &m, &cluster(2), 40.0, &cfg).expect("peak");
        assert!(peak1 > 0.0, "{one_gpu:?}");
        assert!(peak2 >= peak1, "{one_gpu:?}: {peak2} < {peak1}");
        assert!(peak2 > 1.5 * peak1, "{one_gpu:?}: {peak2} vs {peak1}");
    }
}

#[test]
fn bad_search_settings_are_errors() {
    let s = spec("one", 10.0, vec![stage("only", &[], 1, 0.0)]);
    let p = plan("max-load", 1, &[(0, 0, 100, 1)]);
    let m = Linear {
        stages: vec![(1.0, 0.0)],
    };
    let c = cluster(1);
    let err = peak_load(&s, &p, &m, &c, f64::NAN, &quick());
    assert!(matches!(
        err,
        Err(SimError::Config {
            field: "slo_ms",
            ..
        })
    ));
    let cfg = PeakConfig {
        tolerance: 0.0,
        ..quick()
    };
    let err = peak_load(&s, &p, &m, &c, 10.0, &cfg);
    assert!(matches!(
        err,
        Err(SimError::Config {
            field: "tolerance",
            ..
        })
    ));
    let free = Linear {
        stages: vec![(0.0, 0.0)],
    };
    assert!(peak_load(&s, &p, &free, &c, 10.0, &quick()).is_err());
}
