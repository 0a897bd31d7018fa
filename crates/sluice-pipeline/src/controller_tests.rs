use super::*;
use proptest::prelude::*;

fn ctl() -> Controller {
    Controller::new(
        ControllerConfig::default(),
        100.0,
        Policy::MaxLoad,
        100.0,
        0.0,
    )
    .unwrap()
}

#[test]
fn refuses_bad_configs() {
    let bad = |f: fn(&mut ControllerConfig)| {
        let mut c = ControllerConfig::default();
        f(&mut c);
        c.validate().is_err()
    };
    assert!(ControllerConfig::default().validate().is_ok());
    assert!(bad(|c| c.low = 0.9));
    assert!(bad(|c| c.high = 1.5));
    assert!(bad(|c| c.headroom = 1.0));
    assert!(bad(|c| c.headroom = 3.0));
    assert!(bad(|c| c.window_s = -1.0));
    assert!(bad(|c| c.cooldown_s = f64::NAN));
}

#[test]
fn goes_down_after_the_window_and_up_again() {
    let mut c = ctl();
    // Cooldown from adoption at t = 0: nothing before 120 s even if low all along.
    for t in 0..120 {
        assert_eq!(c.observe(t as f64, 10.0, 50.0), Decision::Keep, "t={t}");
    }
    let d = c.observe(120.0, 10.0, 50.0);
    assert_eq!(
        d,
        Decision::Replan {
            policy: Policy::MinResources,
            load_rps: 13.0
        }
    );
    c.adopt(Policy::MinResources, 20.0, 120.0);
    // Load rises above 85% of 20 and stays: after the cooldown and a full window, up.
    let mut up = None;
    for t in 121..400 {
        if let Decision::Replan { policy, .. } = c.observe(t as f64, 30.0, 50.0) {
            up = Some((t, policy));
            break;
        }
    }
    assert_eq!(up, Some((240, Policy::MaxLoad)));
}

#[test]
fn a_p99_miss_triggers_max_load_but_not_twice() {
    let mut c = Controller::new(
        ControllerConfig::default(),
        100.0,
        Policy::MinResources,
        100.0,
        0.0,
    )
    .unwrap();
    for t in 0..150 {
        let d = c.observe(t as f64, 60.0, 150.0);
        if t < 120 {
            assert_eq!(d, Decision::Keep);
        } else {
            assert_eq!(
                d,
                Decision::Replan {
                    policy: Policy::MaxLoad,
                    load_rps: 60.0
                }
            );
            c.adopt(Policy::MaxLoad, 90.0, t as f64);
            break;
        }
    }
    for t in 121..1000 {
        assert_eq!(c.observe(t as f64, 80.0, 150.0), Decision::Keep);
    }
}

#[test]
fn one_sample_inside_the_band_restarts_the_window() {
    let mut c = Controller::new(
        ControllerConfig {
            cooldown_s: 0.0,
            ..ControllerConfig::default()
        },
        100.0,
        Policy::MaxLoad,
        100.0,
        0.0,
    )
    .unwrap();
    for t in 0..29 {
        assert_eq!(c.observe(t as f64, 10.0, 50.0), Decision::Keep);
    }
    assert_eq!(c.observe(29.0, 50.0, 50.0), Decision::Keep);
    for t in 30..59 {
        assert_eq!(c.observe(t as f64, 10.0, 50.0), Decision::Keep);
    }
    assert!(matches!(
        c.observe(60.0, 10.0, 50.0),
        Decision::Replan { .. }
    ));
}

proptest! {
    /// Load oscillating anywhere inside (low, high) of capacity with p99 on target never re-plans.
    #[test]
    fn no_flapping_inside_the_band(loads in proptest::collection::vec(40.5f64..84.5, 1..400), step in 0.5f64..20.0) {
        let mut c = ctl();
        for (i, l) in loads.iter().enumerate() {
            prop_assert_eq!(c.observe(i as f64 * step, *l, 99.0), Decision::Keep);
        }
    }

    /// Whatever the samples, two re-plans are never closer than the cooldown.
    #[test]
    fn re_plans_respect_the_cooldown(samples in proptest::collection::vec((0.0f64..200.0, 0.0f64..200.0), 1..600)) {
        let mut c = ctl();
        let mut last = 0.0;
        for (i, (load, p99)) in samples.iter().enumerate() {
            let now = i as f64;
            if let Decision::Replan { policy, load_rps } = c.observe(now, *load, *p99) {
                prop_assert!(now - last >= 120.0);
                last = now;
                let cap = if policy == Policy::MaxLoad { 150.0 } else { load_rps };
                c.adopt(policy, cap, now);
            }
        }
    }

    /// Outside the band for a whole window (after the cooldown), it re-plans, in the right direction.
    #[test]
    fn switches_after_the_window(high in proptest::bool::ANY, step in 1u32..10) {
        let mut c = Controller::new(ControllerConfig::default(), 100.0, Policy::MinResources, 100.0, 0.0).unwrap();
        let load = if high { 95.0 } else { 20.0 };
        let mut got = None;
        let mut t = 0;
        while t <= 400 {
            if let Decision::Replan { policy, .. } = c.observe(t as f64, load, 50.0) {
                got = Some((t, policy));
                break;
            }
            t += step;
        }
        let (at, policy) = got.expect("re-plans");
        prop_assert!(at >= 120 && at < 120 + step);
        prop_assert_eq!(policy, if high { Policy::MaxLoad } else { Policy::MinResources });
    }
}
