use super::*;

fn spec(s: &str) -> SyntheticSpec {
    s.parse().expect("valid spec")
}

#[test]
fn deterministic_per_seed_and_sorted() {
    let s = spec("functions=500;invocations=20000;seed=3");
    let a: Vec<Arrival> = SyntheticDay::new(&s, 0).arrivals().collect();
    let b: Vec<Arrival> = SyntheticDay::new(&s, 99).arrivals().collect();
    assert_eq!(a, b, "the spec's seed wins over the default");
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    let c: Vec<Arrival> = SyntheticDay::new(&spec("functions=500;invocations=20000;seed=4"), 0)
        .arrivals()
        .collect();
    assert_ne!(a, c);
    // A function's profile does not depend on how many others there are.
    let small = SyntheticDay::new(&spec("functions=10;seed=3"), 0);
    assert_eq!(
        small.functions()[7],
        SyntheticDay::new(&s, 0).functions()[7]
    );
}

#[test]
fn total_is_close_to_the_expected_count() {
    let n = SyntheticDay::new(&spec("functions=2000;invocations=100000;seed=1"), 0)
        .arrivals()
        .count() as f64;
    assert!((n / 100_000.0 - 1.0).abs() < 0.05, "{n}");
}

#[test]
fn popularity_is_heavy_tailed() {
    let day = SyntheticDay::new(&spec("functions=10000;invocations=1000000;seed=1"), 0);
    let mut counts = vec![0u64; 10_000];
    for a in day.arrivals() {
        counts[a.func.index()] += 1;
    }
    let total: u64 = counts.iter().sum();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top10: u64 = counts[..1000].iter().sum();
    let share = top10 as f64 / total as f64;
    assert!(share > 0.7, "top 10% carry {share}");
    // Most functions are rare: fewer than one invocation an hour over the day.
    let rare = counts.iter().filter(|&&c| c < 24).count();
    assert!(rare > 4000, "{rare} rare functions");
}

#[test]
fn diurnal_peak_at_noon() {
    let day = SyntheticDay::new(&spec("functions=300;invocations=200000;seed=2"), 0);
    let mut hours = [0u64; 24];
    for a in day.arrivals() {
        hours[(a.at.as_micros() / 3_600_000_000) as usize] += 1;
    }
    let noon = hours[11] + hours[12];
    let midnight = hours[23] + hours[0];
    let ratio = noon as f64 / midnight as f64;
    // (1 + 0.5) / (1 - 0.5) = 3 at the extremes; about 2.6 averaged over two hours.
    assert!((2.0..3.5).contains(&ratio), "{ratio} {hours:?}");
}

#[test]
fn profiles_stay_in_their_ranges() {
    let day = SyntheticDay::new(&spec("functions=3000;seed=5"), 0);
    for f in day.functions() {
        assert!((10_000..=120_000_000).contains(&f.gpu_warm.as_micros()));
        assert!(f.gpu_mem_bytes >= 256 << 20 && f.gpu_mem_bytes <= 16 << 30);
        assert!(f.cold_start >= Dur::from_secs(1));
    }
    assert!(day.expected_work_s() > 0.0);
}

#[test]
fn bad_specs_are_named() {
    for (s, needle) in [
        ("functions=0", "functions must be"),
        ("functions=x", "functions must be"),
        ("swing=1", "swing must be"),
        ("colour=red", "unknown option `colour`"),
        ("seed=-1", "seed must be"),
        ("functions", "expected <key>=<value>"),
    ] {
        let e = s.parse::<SyntheticSpec>().unwrap_err().to_string();
        assert!(e.contains(needle), "{s}: {e}");
    }
    let s = spec("functions=10;invocations=5;seed=2;swing=0.2");
    assert_eq!(s.to_string().parse::<SyntheticSpec>().unwrap(), s);
}
