use super::*;
use crate::config::SimConfig;
use crate::engine::RunOptions;
use crate::trace::{SyntheticDay, SyntheticSpec};

fn day() -> SyntheticDay {
    let spec: SyntheticSpec =
        "functions=300;invocations=30000;duration=3600;seed=7;median_ms=400;swing=0"
            .parse()
            .unwrap();
    SyntheticDay::new(&spec, 0)
}

/// A day at the load of the measured 1,000-worker day (offered GPU utilisation about half):
/// two to three invocations outstanding per worker, where the bound's rounding matters.
fn busy_day() -> SyntheticDay {
    let spec: SyntheticSpec =
        "functions=300;invocations=30000;duration=3600;seed=7;median_ms=1000;swing=0"
            .parse()
            .unwrap();
    SyntheticDay::new(&spec, 0)
}

fn run_one(day: &SyntheticDay, router: RouterKind, churn: &str) -> ClusterSummary {
    run_with(day, router, churn, 1.0)
}

fn run_with(day: &SyntheticDay, router: RouterKind, churn: &str, slack: f64) -> ClusterSummary {
    let mut params = ClusterParams {
        churn: churn.parse().unwrap(),
        ..ClusterParams::new(8, 2, router)
    };
    params.placement.hint_slack = slack;
    run_params(day, &params)
}

fn run_params(day: &SyntheticDay, params: &ClusterParams) -> ClusterSummary {
    let cfg = SimConfig::embedded();
    run(
        day.functions(),
        day.arrivals(),
        params,
        &cfg.scheduler,
        &cfg.device,
        RunOptions::default(),
        &mut |_| {},
    )
    .unwrap()
}

/// CH-BL with its default fractional rounding on a day at the measured load: busy-time
/// imbalance within 1.25, fewer cold starts than random (only eight workers: random lands on a
/// warm worker often, so the margin is smaller than at 100 or 1,000 workers, where CH-BL has a
/// fifth of random's); and at ε 0.25, where the rounding weighs most, a better balance than
/// the ceiling's (at ε 0.05 the two differ by less than the noise of eight workers).
#[test]
fn ch_bl_balances_within_a_quarter_with_fewer_cold_starts_than_random() {
    let d = busy_day();
    // The plain bounded-load rule (no slack for warm workers), as in the measured figures.
    let ch = run_with(&d, RouterKind::ChBl, "", 0.0);
    let random = run_with(&d, RouterKind::Random, "", 0.0);
    let at_quarter = |fractional: bool| {
        let mut p = ClusterParams::new(8, 2, RouterKind::ChBl);
        p.placement.hint_slack = 0.0;
        p.placement.epsilon = 0.25;
        p.placement.fractional = fractional;
        run_params(&d, &p)
    };
    let (fractional, ceiling) = (at_quarter(true), at_quarter(false));
    assert_eq!(ch.invocations, random.invocations);
    assert_eq!(ch.completed + ch.rejected, ch.invocations);
    assert!(ch.load_imbalance <= 1.25, "{}", ch.load_imbalance);
    assert!(
        fractional.load_imbalance < ceiling.load_imbalance,
        "fractional {} vs ceiling {}",
        fractional.load_imbalance,
        ceiling.load_imbalance
    );
    assert!(
        ch.cold_starts < random.cold_starts,
        "ch-bl {} vs random {}",
        ch.cold_starts,
        random.cold_starts
    );
    assert_eq!(random.spilled, None);
    assert!(ch.spilled.is_some());
    for r in [&ch, &random, &fractional, &ceiling] {
        let c = r.cold_start_causes;
        assert_eq!(c.total(), r.cold_starts, "{}: {c:?}", r.router);
    }
    // A function's sandboxes spread over more workers under random routing: more of them are
    // each worker's first.
    assert!(
        ch.cold_start_causes.first < random.cold_start_causes.first,
        "{:?} vs {:?}",
        ch.cold_start_causes,
        random.cold_start_causes
    );
}

/// Under the plain ceiling at ε 0.25 CH-BL has under half of random's cold starts even on
/// eight workers, at a bounded imbalance.
#[test]
fn ch_bl_under_the_ceiling_has_under_half_of_randoms_cold_starts() {
    let d = day();
    let mut params = ClusterParams::new(8, 2, RouterKind::ChBl);
    params.placement.hint_slack = 0.0;
    params.placement.fractional = false;
    params.placement.epsilon = 0.25;
    let ch = run_params(&d, &params);
    let random = run_with(&d, RouterKind::Random, "", 0.0);
    assert!(
        2 * ch.cold_starts < random.cold_starts,
        "ch-bl {} vs random {}",
        ch.cold_starts,
        random.cold_starts
    );
    assert!(ch.load_imbalance <= 1.6, "{}", ch.load_imbalance);
}

#[test]
fn runs_are_deterministic_and_every_router_completes_everything() {
    let d = day();
    for router in RouterKind::ALL {
        let a = run_one(&d, router, "");
        assert_eq!(a, run_one(&d, router, ""), "{router}");
        assert_eq!(a.completed + a.rejected, a.invocations, "{router}");
        assert_eq!(a.router, router.name());
    }
}

#[test]
fn churn_remaps_only_the_departed_homes() {
    let d = day();
    let still = run_one(&d, RouterKind::ChBl, "");
    assert_eq!(still.remapped, Some(0));
    let churned = run_one(&d, RouterKind::ChBl, "leave:2@600,join:1@1800");
    let moved = churned.remapped.unwrap();
    // Two of eight workers leave (about a quarter of the homes), one joins (about a seventh).
    assert!(moved > 0 && moved < 300, "{moved}");
    assert_eq!(churned.completed + churned.rejected, churned.invocations);
    assert_eq!(run_one(&d, RouterKind::P2c, "leave:2@600").remapped, None);
}

#[test]
fn bad_params_are_refused_not_panicked() {
    let d = day();
    let cfg = SimConfig::embedded();
    for params in [
        ClusterParams::new(0, 2, RouterKind::ChBl),
        ClusterParams::new(2, 0, RouterKind::ChBl),
        ClusterParams {
            churn: "leave:2@10".parse().unwrap(),
            ..ClusterParams::new(2, 1, RouterKind::Random)
        },
    ] {
        let r = run(
            d.functions(),
            d.arrivals(),
            &params,
            &cfg.scheduler,
            &cfg.device,
            RunOptions::default(),
            &mut |_| {},
        );
        assert!(r.is_err());
    }
}

/// `cargo test -p sluice-sim --lib print_rows -- --ignored --nocapture`: the test day's table
/// under the plain bounded-load rule.
#[test]
#[ignore = "a printout for the docs, not a check: run by hand with --nocapture"]
fn print_rows() {
    let d = day();
    let rows: Vec<_> = RouterKind::ALL
        .iter()
        .map(|&r| run_with(&d, r, "", 0.0))
        .collect();
    println!("{}", render_table(&rows));
}

/// The walk, not the bound-blind fallback, places the spills: with ε 0.05 on 24 workers of
/// four GPUs at the measured load (offered utilisation about one half), eight probes often find
/// every worker clockwise at its bound and fall back to two random workers whatever their
/// load, which lets the busiest run past the bound (busy time 1.16 times the mean here); the
/// cluster's default walk (`cluster_params().probes`) keeps the bound (1.11).
#[test]
fn a_longer_walk_keeps_the_bound_where_the_fallback_would_not() {
    let spec: SyntheticSpec =
        "functions=300;invocations=180000;duration=3600;seed=7;median_ms=1000;swing=0"
            .parse()
            .unwrap();
    let d = SyntheticDay::new(&spec, 0);
    let with = |probes: usize| {
        let mut p = ClusterParams::new(24, 4, RouterKind::ChBl);
        p.placement.hint_slack = 0.0;
        p.placement.probes = probes;
        run_params(&d, &p)
    };
    let probes = sluice_policy::routing::cluster_params().probes;
    let (short, default) = (with(8), with(probes));
    assert_eq!(default.completed + default.rejected, default.invocations);
    let (f8, f32) = (short.fallbacks.unwrap(), default.fallbacks.unwrap());
    assert!(
        f8 > 10 * f32.max(1) && f32 <= short.spilled.unwrap(),
        "fallbacks: {f8} with 8 probes, {f32} with {probes}"
    );
    assert!(
        default.load_imbalance < 1.14 && default.load_imbalance + 0.04 < short.load_imbalance,
        "probes {probes}: {}, probes 8: {}",
        default.load_imbalance,
        short.load_imbalance
    );
}

/// Workers advance on several threads between routing windows; which thread advances which
/// worker never shows in the rows, with churn too, under every router.
#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let d = day();
    for router in RouterKind::ALL {
        let rows: Vec<ClusterSummary> = [1, 2, 5]
            .into_iter()
            .map(|threads| {
                let p = ClusterParams {
                    churn: "leave:2@600,join:3@1800".parse().unwrap(),
                    threads,
                    ..ClusterParams::new(8, 2, router)
                };
                run_params(&d, &p)
            })
            .collect();
        assert_eq!(rows[0], rows[1], "{router}: 1 vs 2 threads");
        assert_eq!(rows[0], rows[2], "{router}: 1 vs 5 threads");
    }
}

/// Reports reaching the router late change decisions only at the margin: the test day with
/// exact loads and with a second's delay (far more than the default) completes everything,
/// and cold starts and balance stay close.
#[test]
fn a_report_delay_changes_the_rows_only_at_the_margin() {
    let d = busy_day();
    let with = |ms: u64| {
        let mut p = ClusterParams::new(8, 2, RouterKind::ChBl);
        p.placement.hint_slack = 0.0;
        p.report_delay = sluice_core::Dur::from_millis(ms);
        run_params(&d, &p)
    };
    let (exact, late) = (with(0), with(1000));
    for r in [&exact, &late] {
        assert_eq!(r.completed + r.rejected, r.invocations);
    }
    assert_ne!(exact, late, "a second's delay must change some decision");
    let ratio = late.cold_starts as f64 / exact.cold_starts as f64;
    assert!((0.8..1.25).contains(&ratio), "cold starts {ratio}");
    assert!(
        (late.load_imbalance - exact.load_imbalance).abs() < 0.1,
        "{} vs {}",
        late.load_imbalance,
        exact.load_imbalance
    );
}

/// Invocations a worker's admission refuses leave its outstanding count exactly once: under a
/// tight queue bound every arrival is either completed or refused, and the least-loaded router
/// still spreads work (a worker whose refusals were subtracted twice would look idle and draw
/// every arrival).
#[test]
fn refusals_are_counted_once_in_a_workers_load() {
    let d = busy_day();
    let cfg = SimConfig::embedded();
    let p = ClusterParams::new(8, 2, RouterKind::LeastLoaded);
    let opts = RunOptions {
        max_queue: Some(sluice_core::Dur::from_millis(200)),
        ..RunOptions::default()
    };
    let r = run(
        d.functions(),
        d.arrivals(),
        &p,
        &cfg.scheduler,
        &cfg.device,
        opts,
        &mut |_| {},
    )
    .unwrap();
    assert!(r.rejected > 0, "the bound must refuse some arrivals");
    assert_eq!(r.completed + r.rejected, r.invocations);
    assert!(r.load_imbalance < 1.3, "{}", r.load_imbalance);
}

#[test]
fn bad_threads_and_delays_are_refused() {
    let mut p = ClusterParams::new(2, 1, RouterKind::ChBl);
    p.threads = 1000;
    assert!(p.validate().unwrap_err().contains("threads"));
    p.threads = 0;
    assert!(p.threads() >= 1);
    p.report_delay = sluice_core::Dur::ZERO;
    assert_eq!(p.threads(), 1, "epochs of one instant run on one thread");
    p.report_delay = sluice_core::Dur::from_secs(3600);
    assert!(p.validate().unwrap_err().contains("delay"));
}
