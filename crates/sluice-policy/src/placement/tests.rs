//! Placement invariants: replicas agree whatever order bins joined in; the load bound holds at
//! every placement; a join or leave moves only the keys of the changed bin; homes and bounds
//! follow the weights; hints, the usable filter, the popularity gate, jitter, fractional
//! rounding and the fallback.

use super::*;
use proptest::prelude::*;

fn ring(bins: &[(u32, u32)], params: PlacementParams) -> Placement<u32> {
    let mut p = Placement::new(params).unwrap();
    p.join_all(bins.iter().copied()).unwrap();
    p
}

fn all(_: &u32) -> bool {
    true
}

fn req(key: u64) -> Request<'static, u32> {
    Request {
        key: Key::of_u64(key),
        hints: &[],
        usable: &all,
        popular: true,
    }
}

/// Distinct bin ids with weights 1..=4.
fn bins_strategy(max: usize) -> impl Strategy<Value = Vec<(u32, u32)>> {
    proptest::collection::btree_map(0u32..1000, 1u32..=4, 1..max)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two replicas built from the same membership in different orders (one by single joins in
    /// reverse, one in bulk) give the same home and the same choice for every key, with the
    /// same loads.
    #[test]
    fn replicas_agree_whatever_the_join_order(
        bins in bins_strategy(12),
        keys in proptest::collection::vec(any::<u64>(), 1..200),
        loads in proptest::collection::vec(0u8..6, 12),
    ) {
        let mut a = ring(&bins, PlacementParams::default());
        let mut b = Placement::new(PlacementParams::default()).unwrap();
        for &(id, w) in bins.iter().rev() {
            b.join(id, w).unwrap();
        }
        for (&(id, _), &l) in bins.iter().zip(&loads) {
            a.set_load(&id, f64::from(l)).unwrap();
            b.set_load(&id, f64::from(l)).unwrap();
        }
        for &k in &keys {
            prop_assert_eq!(a.home(Key(k)), b.home(Key(k)));
            prop_assert_eq!(a.place(&req(k)), b.place(&req(k)));
        }
    }

    /// With only arrivals, every placement lands on a bin whose load then fits its bound for the
    /// load before the placement, so at every moment every bin is within ⌈(1+ε)·L·w/W⌉; with
    /// departures mixed in, each placement still fits the bound of its moment.
    #[test]
    fn the_load_bound_holds(
        bins in bins_strategy(10),
        ops in proptest::collection::vec((any::<u64>(), 0u8..4), 1..300),
        eps in prop::sample::select(vec![0.0, 0.1, 0.25, 1.0]),
    ) {
        let params = PlacementParams { epsilon: eps, probes: 0, ..Default::default() };
        let mut p = ring(&bins, params);
        let w_total: u32 = bins.iter().map(|b| b.1).sum();
        let mut placed: Vec<u32> = Vec::new();
        let mut departures = false;
        for (k, op) in ops {
            if op == 0 && !placed.is_empty() {
                let id = placed.swap_remove((k % placed.len() as u64) as usize);
                p.add_load(&id, -1.0).unwrap();
                departures = true;
                continue;
            }
            let before = p.total_load();
            let c = p.place(&req(k)).unwrap();
            prop_assert_ne!(c.kind, ChoiceKind::Fallback, "an acceptable bin always exists");
            let w = f64::from(bins.iter().find(|b| b.0 == c.bin).unwrap().1);
            let bound = ((1.0 + eps) * (before + 1.0) * w / f64::from(w_total) - 1e-9).ceil();
            prop_assert!(p.load(&c.bin).unwrap() <= bound + 1e-9);
            placed.push(c.bin);
            if !departures {
                for &(id, w) in &bins {
                    let cap = ((1.0 + eps) * p.total_load() * f64::from(w) / f64::from(w_total) - 1e-9).ceil();
                    prop_assert!(p.load(&id).unwrap() <= cap + 1e-9, "bin {} over {}", id, cap);
                }
            }
        }
    }

    /// A join moves only keys whose new home is the new bin; a leave moves only keys whose home
    /// was the leaving bin; the tracked-key counter agrees.
    #[test]
    fn join_and_leave_move_only_the_changed_bins_keys(
        bins in bins_strategy(10),
        extra in 1000u32..2000,
        keys in proptest::collection::btree_set(any::<u64>(), 1..300),
    ) {
        prop_assume!(bins.len() >= 2);
        let mut p = ring(&bins, PlacementParams::default());
        for &k in &keys {
            p.track(Key(k));
        }
        let homes = |p: &Placement<u32>| keys.iter().map(|&k| *p.home(Key(k)).unwrap()).collect::<Vec<_>>();
        let before = homes(&p);
        let remap = p.join(extra, 2).unwrap();
        let after = homes(&p);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                prop_assert_eq!(*a, extra, "a key moved between two old bins");
                moved += 1;
            }
        }
        prop_assert_eq!(remap, Remap { tracked: keys.len(), moved });
        let remap = p.leave(&extra).unwrap();
        prop_assert_eq!(homes(&p), before.clone(), "leaving restores the old homes");
        prop_assert_eq!(remap.moved, moved);
        let gone = bins[0].0;
        let remap = p.leave(&gone).unwrap();
        let left = homes(&p);
        for (b, a) in before.iter().zip(&left) {
            if b != a {
                prop_assert_eq!(*b, gone, "a key of a staying bin moved");
            }
        }
        prop_assert_eq!(remap.moved, before.iter().filter(|&&h| h == gone).count());
        prop_assert_eq!(p.remaps(), (2 * moved + remap.moved) as u64);
    }

    /// Homes follow the weights: over many keys, each bin's share of homes is close to its
    /// share of the weight (total variation distance at most 0.15 with the default 100 ring
    /// points per unit of weight; the worst of 2,000 random memberships measured 0.10).
    #[test]
    fn homes_follow_the_weights(bins in bins_strategy(6)) {
        prop_assume!(bins.len() >= 2);
        let p = ring(&bins, PlacementParams::default());
        let n = 20_000u64;
        let w_total: u32 = bins.iter().map(|b| b.1).sum();
        let mut count = std::collections::BTreeMap::<u32, u64>::new();
        for k in 0..n {
            *count.entry(*p.home(Key::of_u64(k)).unwrap()).or_default() += 1;
        }
        let tv: f64 = bins.iter().map(|&(id, w)| {
            let share = *count.get(&id).unwrap_or(&0) as f64 / n as f64;
            (share - f64::from(w) / f64::from(w_total)).abs() / 2.0
        }).sum();
        prop_assert!(tv <= 0.15, "total variation {} for {:?}", tv, bins);
    }
}

#[test]
fn a_heavier_bin_takes_proportionally_more_under_the_bound() {
    let mut p = ring(&[(1, 1), (2, 3)], PlacementParams::default());
    for k in 0..400 {
        p.place(&req(k)).unwrap();
    }
    let (a, b) = (p.load(&1).unwrap(), p.load(&2).unwrap());
    assert_eq!(a + b, 400.0);
    assert!(b <= (1.25f64 * 400.0 * 0.75).ceil() && a <= (1.25f64 * 400.0 * 0.25).ceil());
    assert!(b > 2.0 * a, "{a} vs {b}");
}

#[test]
fn a_key_salt_lays_out_other_homes_and_zero_is_the_pinned_layout() {
    let bins: Vec<(u32, u32)> = (0..8).map(|b| (b, 1)).collect();
    let salted = |salt| {
        ring(
            &bins,
            PlacementParams {
                key_salt: salt,
                ..Default::default()
            },
        )
    };
    let homes = |p: &Placement<u32>| -> Vec<u32> {
        (0..2000)
            .map(|k| *p.home(Key::of_u64(k)).unwrap())
            .collect()
    };
    let pinned = homes(&ring(&bins, PlacementParams::default()));
    assert_eq!(homes(&salted(0)), pinned);
    // A salt is a layout: every replica with it agrees.
    let seven = homes(&salted(7));
    assert_eq!(homes(&salted(7)), seven);
    // About 7 of 8 keys land elsewhere, as under an independent hash, and every bin keeps a
    // share near its weight.
    let moved = seven.iter().zip(&pinned).filter(|(a, b)| a != b).count();
    assert!((1600..=1900).contains(&moved), "{moved} of 2000 moved");
    for b in 0..8 {
        let n = seven.iter().filter(|&&h| h == b).count();
        assert!((130..=370).contains(&n), "bin {b} is home to {n} of 2000");
    }
    // The walk past the home follows the salted point too: a placement starts at the salted home.
    let mut p = salted(7);
    let chosen = p.place(&req(42)).unwrap();
    assert_eq!((chosen.bin, chosen.kind), (seven[42], ChoiceKind::Home));
}

/// Four bins of weight 1 under the default parameters, the home of key 9 and another bin.
fn four_bins_home_and_other() -> (Placement<u32>, Key, u32, u32) {
    let p = ring(
        &[(1, 1), (2, 1), (3, 1), (4, 1)],
        PlacementParams::default(),
    );
    let key = Key::of_u64(9);
    let home = *p.home(key).unwrap();
    let other = if home == 3 { 4 } else { 3 };
    (p, key, home, other)
}

#[test]
fn hints_win_among_acceptable_bins_and_the_usable_filter_is_hard() {
    let (mut p, key, home, other) = four_bins_home_and_other();
    let hints = [(other, 1u8)];
    let r = Request {
        key,
        hints: &hints,
        usable: &all,
        popular: true,
    };
    assert_eq!(
        p.choose(&r),
        Some(Choice {
            bin: other,
            kind: ChoiceKind::Hinted
        })
    );
    // A better hint on the home wins; an equal one too (the home breaks ties).
    let hints = [(other, 1u8), (home, 1)];
    let r = Request { hints: &hints, ..r };
    assert_eq!(p.choose(&r).unwrap().kind, ChoiceKind::Home);
    // A hinted bin over its bound is passed over: the walk decides. Within the slack (1 by
    // default) above its bound it is still taken; with no slack it is not.
    p.set_load(&other, 1.0).unwrap();
    let hints = [(other, 2u8)];
    let r = Request { hints: &hints, ..r };
    assert_eq!(
        p.choose(&r).unwrap().bin,
        other,
        "bound 1, load 1: within the slack"
    );
    let mut strict = ring(
        &[(1, 1), (2, 1), (3, 1), (4, 1)],
        PlacementParams {
            hint_slack: 0.0,
            ..Default::default()
        },
    );
    strict.set_load(&other, 1.0).unwrap();
    assert_eq!(strict.choose(&r).unwrap().bin, home);
    p.set_load(&other, 5.0).unwrap();
    let hints = [(other, 2u8)];
    let r = Request { hints: &hints, ..r };
    assert_eq!(p.choose(&r).unwrap().bin, home);
    // Unusable bins are never chosen, not even as the home.
    let not_home = move |b: &u32| *b != home;
    let r = Request {
        key,
        hints: &[],
        usable: &not_home,
        popular: true,
    };
    let c = p.choose(&r).unwrap();
    assert_ne!(c.bin, home);
    assert!(matches!(c.kind, ChoiceKind::Spilled { hops: 1.. }));
    let none = |_: &u32| false;
    let r = Request { usable: &none, ..r };
    assert_eq!(p.choose(&r), None);
}

#[test]
fn a_warm_bin_with_room_beats_a_warm_home_that_needs_the_slack() {
    // Four bins of weight 1, ε 0.25: with one unit placed the bound is ⌈1.25·2/4⌉ = 1, so the
    // home holding that unit takes another only within the hint slack.
    let (mut p, _, home, other) = four_bins_home_and_other();
    p.set_load(&home, 1.0).unwrap();
    let hints = [(home, 2u8), (other, 2)];
    let r = Request {
        hints: &hints,
        ..req(9)
    };
    // Both warm at the same level: the one with room wins over co-running on the home.
    let c = p.choose(&r).unwrap();
    assert_eq!((c.bin, c.kind), (other, ChoiceKind::Hinted));
    // A higher level still wins whatever the room: the slack is there for it.
    let hints = [(home, 3u8), (other, 2)];
    let r = Request { hints: &hints, ..r };
    assert_eq!(p.choose(&r).unwrap().bin, home);
    // With no warm bin with room, the home within its slack is taken, as before.
    let hints = [(home, 2u8)];
    let r = Request { hints: &hints, ..r };
    assert_eq!(p.choose(&r).unwrap().bin, home);
}

#[test]
fn the_fallback_takes_the_lighter_usable_bin() {
    let params = PlacementParams {
        probes: 1,
        ..Default::default()
    };
    let mut p = ring(&[(1, 1), (2, 1), (3, 1)], params);
    let key = Key::of_u64(5);
    let home = *p.home(key).unwrap();
    p.set_load(&home, 10.0).unwrap();
    // The home is over its bound and only one bin is probed: the fallback decides, among
    // usable bins only.
    let only_home_unusable = move |b: &u32| *b != home;
    let r = Request {
        key,
        hints: &[],
        usable: &only_home_unusable,
        popular: true,
    };
    let c = p.choose(&r).unwrap();
    assert_eq!(c.kind, ChoiceKind::Fallback);
    assert_ne!(c.bin, home);
    let only = 1 + (home % 3); // some bin other than the home
    let one = move |b: &u32| *b == only;
    let r = Request { usable: &one, ..r };
    assert_eq!(p.choose(&r).unwrap().bin, only);
}

#[test]
fn the_popularity_gate_keeps_unpopular_keys_home() {
    let params = PlacementParams {
        popularity_gate: true,
        ..Default::default()
    };
    let bins = [(1, 1), (2, 1), (3, 1), (4, 1)];
    let mut p = ring(&bins, params.clone());
    let key = Key::of_u64(3);
    let home = *p.home(key).unwrap();
    for (b, _) in bins {
        p.set_load(&b, 10.0).unwrap();
    }
    // Home 20, total 50: the bound is ⌈1.25 × 51 / 4⌉ = 16, the ceiling 2 × 16 = 32.
    p.set_load(&home, 20.0).unwrap();
    let r = Request {
        key,
        hints: &[],
        usable: &all,
        popular: false,
    };
    assert_eq!(p.choose(&r).unwrap().kind, ChoiceKind::Home);
    let popular = Request { popular: true, ..r };
    assert_ne!(
        p.choose(&popular).unwrap().bin,
        home,
        "a popular key spills"
    );
    // Home 60, total 90: bound 29, ceiling 58: past it, the unpopular key spills too.
    p.set_load(&home, 60.0).unwrap();
    assert_ne!(p.choose(&r).unwrap().bin, home, "no home queue without end");
    // Without a ceiling (the paper's gate), it stays home whatever the load.
    let mut paper = ring(
        &bins,
        PlacementParams {
            gate_ceiling: 0.0,
            ..params
        },
    );
    paper.set_load(&home, 60.0).unwrap();
    assert_eq!(paper.choose(&r).unwrap().kind, ChoiceKind::Home);
    let bad = PlacementParams {
        gate_ceiling: 0.5,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn jitter_is_seeded_and_averages_one() {
    let params = PlacementParams {
        jitter: 0.5,
        seed: 11,
        ..Default::default()
    };
    let run = |params: PlacementParams| {
        let mut p = ring(&[(1, 1), (2, 1)], params);
        for k in 0..1000 {
            p.place(&req(k)).unwrap();
        }
        p.total_load()
    };
    let a = run(params.clone());
    assert_eq!(a, run(params.clone()), "same seed, same loads");
    assert_ne!(a, run(PlacementParams { seed: 12, ..params }));
    assert!((a - 1000.0).abs() < 40.0, "{a}");
}

#[test]
fn membership_errors_are_typed() {
    let mut p = ring(&[(1, 1)], PlacementParams::default());
    assert!(matches!(p.join(1, 1), Err(PlacementError::Duplicate(_))));
    assert!(matches!(p.join(2, 0), Err(PlacementError::Weight { .. })));
    assert!(matches!(
        p.join(2, MAX_POINTS_PER_BIN),
        Err(PlacementError::Weight { .. })
    ));
    assert!(matches!(p.leave(&7), Err(PlacementError::Unknown(_))));
    assert!(p.set_load(&7, 1.0).is_err());
    assert!(p.join_all([(3, 1), (3, 1)]).is_err());
    assert_eq!(p.len(), 1, "a refused join_all adds nothing");
    p.set_load(&1, f64::NAN).unwrap();
    assert_eq!(p.load(&1), Some(0.0));
    p.leave(&1).unwrap();
    assert!(p.is_empty() && p.home(Key(1)).is_none());
    assert_eq!(p.choose(&req(1)), None);
}

#[test]
fn string_bins_work_for_a_cluster() {
    let mut p: Placement<String> = Placement::new(PlacementParams::default()).unwrap();
    p.join_all([("w-b".to_string(), 2), ("w-a".to_string(), 2)])
        .unwrap();
    let k = Key::of_str("resnet50");
    let h = p.home(k).cloned().unwrap();
    let mut q: Placement<String> = Placement::new(PlacementParams::default()).unwrap();
    q.join("w-a".to_string(), 2).unwrap();
    q.join("w-b".to_string(), 2).unwrap();
    assert_eq!(q.home(k), Some(&h));
    assert_eq!(p.bins().count(), 2);
    assert!(p.contains(&"w-a".to_string()));
}

#[test]
fn indexed_lookup_matches_a_whole_ring_search() {
    for bins in [1u32, 3, 50, 400] {
        let mut p: Placement<u32> = Placement::new(PlacementParams::default()).unwrap();
        p.join_all((0..bins).map(|b| (b, 1 + b % 8))).unwrap();
        for k in (0..2000u64).chain([0, u64::MAX, u64::MAX - 1]) {
            let key = if k < 2000 { Key::of_u64(k) } else { Key(k) };
            let i = p.ring.partition_point(|&(pt, _)| pt < key.0);
            let i = if i == p.ring.len() { 0 } else { i };
            assert_eq!(p.start(key), Some(i), "{bins} bins, key {key:?}");
        }
    }
}

/// Fractional rounding: with every bin at 2 of a bound `x = 1.25·9/4 = 2.8125`, the ceiling (3)
/// always admits the home; the rounded bound is the bin's own, so repeated choices at unchanged
/// loads agree, and after a departure (its load falls) the home admits a third unit for about
/// `frac(x) = 0.8125` of departures (otherwise no bin is acceptable and the choice falls back);
/// a placement never leaves a bin past `⌈x⌉`.
#[test]
fn fractional_rounding_admits_at_the_ceiling_for_the_fractional_share() {
    let bins = [(1, 1), (2, 1), (3, 1), (4, 1)];
    let key = Key::of_u64(9);
    let at_two = |fractional: bool| {
        let mut p = ring(
            &bins,
            PlacementParams {
                fractional,
                seed: 5,
                ..Default::default()
            },
        );
        for (b, _) in bins {
            p.set_load(&b, 2.0).unwrap();
        }
        p
    };
    let r = Request {
        key,
        hints: &[],
        usable: &all,
        popular: true,
    };
    let mut ceil = at_two(false);
    assert!((0..100).all(|_| ceil.choose(&r).unwrap().kind == ChoiceKind::Home));
    let mut p = at_two(true);
    let home = *p.home(key).unwrap();
    let n = 4000;
    let mut admitted = 0;
    for _ in 0..n {
        p.set_load(&home, 3.0).unwrap();
        p.set_load(&home, 2.0).unwrap();
        let first = p.choose(&r).unwrap().kind;
        assert!((0..20).all(|_| p.choose(&r).unwrap().kind == first));
        admitted += usize::from(first == ChoiceKind::Home);
    }
    let share = admitted as f64 / f64::from(n);
    assert!((share - 0.8125).abs() < 0.03, "{share}");
    // Placements under the rounded bound stay within the ceiling bound of their moment.
    let mut p = ring(
        &bins,
        PlacementParams {
            fractional: true,
            seed: 6,
            ..Default::default()
        },
    );
    for k in 0..400u64 {
        let before = p.total_load();
        let c = p.place(&req(k)).unwrap();
        let bound = (1.25 * (before + 1.0) / 4.0 - 1e-9).ceil();
        if c.kind != ChoiceKind::Fallback {
            assert!(p.load(&c.bin).unwrap() <= bound + 1e-9, "{k}: over {bound}");
        }
    }
}

/// A bin offered work continuously (a hot key's home: every departure is refilled at once)
/// carries its fractional bound `x` on average, not `⌈x⌉`. With a fresh draw per placement one
/// of the ten offers after each departure would almost surely draw high and refill it to
/// `⌈x⌉ = 3` every time (mean 3.0); with the bin's own draw, renewed at each departure, it
/// refills to 3 for about `frac(x)` of the departures.
#[test]
fn a_continuously_offered_bin_carries_its_fractional_bound_on_average() {
    let mut p = ring(
        &(0..100).map(|b| (b, 1)).collect::<Vec<_>>(),
        PlacementParams {
            fractional: true,
            seed: 11,
            ..Default::default()
        },
    );
    for b in 0..100 {
        p.set_load(&b, 2.0).unwrap();
    }
    let key = Key::of_u64(3);
    let home = *p.home(key).unwrap();
    let r = Request {
        key,
        hints: &[],
        usable: &all,
        popular: true,
    };
    let rounds = 3000;
    let (mut held, mut share) = (0.0, 0.0);
    for _ in 0..rounds {
        for _ in 0..10 {
            if p.choose(&r).unwrap().kind == ChoiceKind::Home {
                p.add_load(&home, 1.0).unwrap();
            }
        }
        let load = p.load(&home).unwrap();
        held += load;
        // x just before the next unit would have been admitted.
        share += 1.25 * (p.total_load() + 1.0) / 100.0;
        p.add_load(&home, -1.0).unwrap();
    }
    let (held, share) = (held / f64::from(rounds), share / f64::from(rounds));
    assert!(share > 2.4 && share < 2.6, "x = {share}");
    assert!(
        (held - share).abs() < 0.08,
        "held {held} on average, x = {share}"
    );
}
