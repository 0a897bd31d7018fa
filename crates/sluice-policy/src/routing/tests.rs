use super::*;

fn router(kind: RouterKind, n: u32) -> Router<u32> {
    let mut r = Router::new(kind, &PlacementParams::default()).unwrap();
    r.join_all((0..n).map(|i| (i, 4))).unwrap();
    r
}

fn req<'a>(key: u64, usable: &'a dyn Fn(&u32) -> bool) -> Request<'a, u32> {
    Request {
        key: Key::of_u64(key),
        hints: &[],
        usable,
        popular: true,
    }
}

#[test]
fn names_round_trip_and_unknown_is_named() {
    for k in RouterKind::ALL {
        assert_eq!(k.name().parse::<RouterKind>().unwrap(), k);
    }
    let e = "ch-foo".parse::<RouterKind>().unwrap_err();
    assert!(e.contains("ch-foo") && e.contains("least-loaded"), "{e}");
}

#[test]
fn round_robin_cycles_and_skips_unusable() {
    let mut r = router(RouterKind::RoundRobin, 3);
    let all = |_: &u32| true;
    let picks: Vec<u32> = (0..6)
        .map(|k| r.place(&req(k, &all)).unwrap().bin)
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    let not1 = |w: &u32| *w != 1;
    let picks: Vec<u32> = (0..3)
        .map(|k| r.place(&req(k, &not1)).unwrap().bin)
        .collect();
    assert_eq!(picks, [0, 2, 0]);
}

#[test]
fn least_loaded_follows_loads() {
    let mut r = router(RouterKind::LeastLoaded, 4);
    let all = |_: &u32| true;
    for w in 0..4 {
        r.set_load(&w, f64::from(10 - w)).unwrap();
    }
    assert_eq!(r.place(&req(0, &all)).unwrap().bin, 3);
    assert_eq!(r.load(&3), Some(8.0));
    // 3 now at 8, 2 at 8: tie goes to the lower id.
    assert_eq!(r.place(&req(0, &all)).unwrap().bin, 2);
    let not2 = |w: &u32| *w != 2 && *w != 3;
    assert_eq!(r.place(&req(0, &not2)).unwrap().bin, 1);
    r.leave(&1).unwrap();
    assert_eq!(r.place(&req(0, &not2)).unwrap().bin, 0);
}

#[test]
fn random_and_p2c_spread_and_are_seeded() {
    for kind in [RouterKind::Random, RouterKind::P2c] {
        let all = |_: &u32| true;
        let run = || {
            let mut r = router(kind, 10);
            (0..2000)
                .map(|k| r.place(&req(k, &all)).unwrap().bin)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run(), "{kind} is deterministic");
        let mut counts = [0u32; 10];
        a.iter().for_each(|&w| counts[w as usize] += 1);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 100, "{kind}: {counts:?}");
        if kind == RouterKind::P2c {
            // Loads only grow here, so two choices keep them within a few of each other.
            assert!(max - min <= 10, "{kind}: {counts:?}");
        }
    }
}

#[test]
fn weighted_random_follows_weights() {
    let mut r: Router<u32> = Router::new(RouterKind::Random, &PlacementParams::default()).unwrap();
    r.join(0, 1).unwrap();
    r.join(1, 3).unwrap();
    let all = |_: &u32| true;
    let ones = (0..4000)
        .filter(|&k| r.place(&req(k, &all)).unwrap().bin == 1)
        .count();
    assert!((2800..3200).contains(&ones), "{ones}");
}

#[test]
fn no_usable_member_is_none_for_every_kind() {
    let none = |_: &u32| false;
    for kind in RouterKind::ALL {
        let mut r = router(kind, 5);
        assert_eq!(r.place(&req(1, &none)), None, "{kind}");
        let mut empty: Router<u32> = Router::new(kind, &PlacementParams::default()).unwrap();
        let all = |_: &u32| true;
        assert_eq!(empty.place(&req(1, &all)), None, "{kind}");
    }
}

#[test]
fn hashing_kinds_keep_keys_home_and_count_remaps() {
    let mut r = router(RouterKind::ChBl, 8);
    let all = |_: &u32| true;
    for k in 0..100 {
        r.track(Key::of_u64(k));
    }
    let first = r.place(&req(7, &all)).unwrap();
    assert_eq!(first.kind, Some(ChoiceKind::Home));
    r.set_load(&first.bin, 0.0).unwrap();
    assert_eq!(r.place(&req(7, &all)).unwrap().bin, first.bin);
    r.leave(&first.bin).unwrap();
    let moved = r.remaps().unwrap();
    assert!(moved > 0 && moved < 40, "{moved}");
    assert_eq!(router(RouterKind::Random, 3).remaps(), None);
    // Simple rules reject duplicate and unknown members like the ring does.
    let mut s = router(RouterKind::P2c, 2);
    assert!(matches!(s.join(1, 4), Err(PlacementError::Duplicate(_))));
    assert!(matches!(s.leave(&9), Err(PlacementError::Unknown(_))));
    assert!(matches!(s.join(9, 0), Err(PlacementError::Weight { .. })));
}

#[test]
fn ch_bl_spills_when_home_is_full() {
    let mut r = router(RouterKind::ChBl, 4);
    let all = |_: &u32| true;
    let home = r.place(&req(3, &all)).unwrap().bin;
    r.set_load(&home, 50.0).unwrap();
    let next = r.place(&req(3, &all)).unwrap();
    assert_ne!(next.bin, home);
    assert!(next.spilled());
}

#[test]
fn ch_rlu_sets_gate_and_jitter() {
    let p = RouterKind::ChRlu.placement_params(&PlacementParams::default());
    assert!(p.popularity_gate && p.jitter == 0.25);
    let p = RouterKind::ChBl.placement_params(&p);
    assert!(!p.popularity_gate && p.jitter == 0.0);
}

#[test]
fn popularity_counts_per_second() {
    let mut p = Popularity::new(2.0);
    let k = Key::of_u64(1);
    assert!(!p.arrive(k, 0));
    assert!(!p.arrive(k, 0));
    assert!(p.arrive(k, 0));
    // The previous second's three still count in the next one.
    assert!(p.arrive(k, 1));
    // A gap of a second forgets them.
    assert!(!p.arrive(k, 3));
}
