use super::*;

#[test]
fn decay_root_solves_the_md1_equation() {
    for rho in [0.05, 0.2, 0.5, 0.8, 0.95, 0.99] {
        let u = decay_root(rho, 0.0);
        assert!(u > 0.0, "rho {rho}");
        let residual = rho * (u.exp() - 1.0) - u;
        assert!(
            residual.abs() < 1e-9 * u.max(1.0),
            "rho {rho}: u {u}, residual {residual}"
        );
    }
    // Known value: ρ = 0.5 → u ≈ 1.2564.
    assert!((decay_root(0.5, 0.0) - 1.2564).abs() < 1e-3);
    // Service jitter slows the decay; heavier load slows it too.
    assert!(decay_root(0.5, 0.5) < decay_root(0.5, 0.0));
    assert!(decay_root(0.9, 0.0) < decay_root(0.5, 0.0));
    assert_eq!(decay_root(1.0, 0.0), 0.0);
    assert!(decay_root(0.0, 0.0).is_infinite());
}

#[test]
fn erlang_c_matches_known_values() {
    assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
    // M/M/2 at ρ = 0.5: C = 2ρ²/(1+ρ) = 1/3.
    assert!((erlang_c(2, 0.5) - 1.0 / 3.0).abs() < 1e-12);
    assert!(erlang_c(8, 0.5) < erlang_c(2, 0.5));
    assert_eq!(erlang_c(4, 1.2), 1.0);
}

#[test]
fn capped_poisson_batch_is_bounded_and_exact_for_small_caps() {
    assert_eq!(capped_poisson_batch(0.0, 8), 1.0);
    assert_eq!(capped_poisson_batch(3.0, 1), 1.0);
    // cap 2: 1 + P(N ≥ 1).
    let m: f64 = 0.4;
    assert!((capped_poisson_batch(m, 2) - (2.0 - (-m).exp())).abs() < 1e-12);
    assert!((capped_poisson_batch(1000.0, 8) - 8.0).abs() < 1e-9);
    assert!((capped_poisson_batch(1e-9, 8) - 1.0).abs() < 1e-6);
}

#[test]
fn gamma_p99_is_above_the_mean() {
    let q = gamma_p99_ms(1.0, 0.1);
    // Exponential p99 = ln(100)/λ = 46.05 ms; Wilson–Hilferty is within a few percent.
    assert!((q - 46.05).abs() < 2.0, "{q}");
    assert!(gamma_p99_ms(10.0, 1.0) > 10.0);
    assert_eq!(gamma_p99_ms(0.0, 1.0), 0.0);
}

#[test]
fn a_stage_of_normal_service_has_normal_quantiles() {
    let l = Latency::stage(5.0, 100.0, 5.0, Wait::NONE);
    assert!((l.p99() - (105.0 + Z99 * 5.0)).abs() < 1e-9);
    assert!((l.p999() - (105.0 + Z999 * 5.0)).abs() < 1e-9);
    // Two in a row: the deviations add in quadrature.
    let two = l.then(&l);
    assert!((two.p99() - (210.0 + Z99 * 50.0_f64.sqrt())).abs() < 1e-9);
}

#[test]
fn a_waiting_time_tail_gives_its_exact_quantile_alone() {
    // P(W > x) = 0.5·e^{−x/10}: p99 = 10·ln 50.
    let l = Latency::stage(0.0, 0.0, 0.0, Wait { p: 0.5, theta: 0.1 });
    assert!((l.p99() - 10.0 * 50.0_f64.ln()).abs() < 1e-9);
    assert!((l.mean - 5.0).abs() < 1e-12);
    // A wait so rare it has no p99 leaves the quantile at the service time.
    let rare = Latency::stage(
        0.0,
        20.0,
        0.0,
        Wait {
            p: 0.001,
            theta: 0.1,
        },
    );
    assert!((rare.p99() - 20.0).abs() < 1e-9);
    assert!(Latency::stage(0.0, f64::INFINITY, 0.0, Wait::NONE)
        .p99()
        .is_infinite());
}

#[test]
fn the_sum_of_two_exponential_waits_is_close_to_erlang() {
    // Exp(1) + Exp(1): exact p99 of the Erlang-2 is 6.638.
    let e = Latency::stage(0.0, 0.0, 0.0, Wait { p: 1.0, theta: 1.0 });
    let q = e.then(&e).p99();
    assert!((q - 6.638).abs() / 6.638 < 0.1, "{q}");
}

#[test]
fn the_max_of_identical_branches_lies_further_out() {
    let l = Latency::stage(0.0, 50.0, 5.0, Wait::NONE);
    let seven = Latency::max_of(&[l; 7]);
    // Exact for independent normals: each must stay below x with probability 0.99^(1/7).
    let exact = 50.0 + 5.0 * 2.983;
    assert!(
        (seven.p99() - exact).abs() < 0.5,
        "{} vs {exact}",
        seven.p99()
    );
    assert!(seven.p99() > l.p99());
    // A branch far behind the others changes nothing.
    let short = Latency::fixed(1.0);
    assert!((Latency::max_of(&[l, short]).p99() - l.p99()).abs() < 1e-6);
    assert_eq!(Latency::max_of(&[l]), l);
}

#[test]
fn comonotone_branches_keep_the_worst_quantile() {
    let a = Latency::stage(0.0, 50.0, 5.0, Wait { p: 0.5, theta: 0.1 });
    let b = Latency::stage(0.0, 40.0, 5.0, Wait { p: 0.5, theta: 0.1 });
    let m = Latency::max_of_comonotone(&[a, b]);
    assert!((m.p99() - a.p99()).abs() < 1e-9);
    assert!((m.p999() - a.p999()).abs() < 1e-9);
    assert!(Latency::max_of(&[a, b]).p99() > m.p99());
}
