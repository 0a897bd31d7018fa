use super::*;
use proptest::prelude::*;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gpulet-2080ti")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn reads_the_gpulet_tables() {
    let p = Profiles::load_gpulet(&data()).unwrap();
    let models: Vec<&str> = p.models().collect();
    assert_eq!(
        models,
        [
            "bert",
            "densenet161",
            "googlenet",
            "lenet",
            "mnasnet1_0",
            "mobilenet_v2",
            "resnet50",
            "ssd-mobilenetv1",
            "vgg16"
        ]
    );
    assert_eq!(models.iter().map(|m| p.point_count(m)).sum::<usize>(), 90);
    assert_eq!(p.memory_mb("lenet"), Some(50));
    assert_eq!(p.memory_mb("vgg16"), Some(2920));
    // avg_duration is seconds: vgg16 at batch 1 = 0.06743… s.
    assert!(close(
        p.latency_ms("vgg16", 1, 100).unwrap(),
        67.43208955223878
    ));
    let e = p.estimate("resnet50", 8, 100).unwrap();
    assert!(close(e.util.sm, 0.46522163212061784));
    assert!(close(e.util.dram, 0.5132452611818465));
    assert_eq!(p.key_for("lenet4"), Some("lenet"));
    assert_eq!(p.key_for("resnet50"), Some("resnet50"));
    assert_eq!(p.key_for("lenetx"), None);
}

#[test]
fn exact_on_monotone_points_and_cleaned_elsewhere() {
    let p = Profiles::load_gpulet(&data()).unwrap();
    let mut cleaned = 0;
    for m in p.models().collect::<Vec<_>>() {
        let mut floor = 0.0_f64;
        for pt in p.points(m) {
            let got = p.latency_ms(m, pt.batch, 100).unwrap();
            if pt.latency_ms >= floor {
                assert!(close(got, pt.latency_ms), "{m} batch {}", pt.batch);
            } else {
                cleaned += 1;
                assert!(close(got, floor));
            }
            floor = floor.max(pt.latency_ms);
        }
    }
    // bert 2 < 1, bert 24 < 20, densenet161 32 < 28 (etc.): noise the cleaning absorbs.
    assert!(cleaned > 0 && cleaned < 15, "{cleaned}");
}

#[test]
fn batch_interpolation_and_extrapolation() {
    let p = Profiles::load_gpulet(&data()).unwrap();
    let l4 = p.latency_ms("googlenet", 4, 100).unwrap();
    let l8 = p.latency_ms("googlenet", 8, 100).unwrap();
    assert!(close(
        p.latency_ms("googlenet", 6, 100).unwrap(),
        0.5 * (l4 + l8)
    ));
    let l32 = p.latency_ms("googlenet", 32, 100).unwrap();
    assert!(close(
        p.latency_ms("googlenet", 64, 100).unwrap(),
        2.0 * l32
    ));
    assert_eq!(p.latency_ms("googlenet", 0, 100), None);
    assert_eq!(p.latency_ms("googlenet", 1, 0), None);
    assert_eq!(p.latency_ms("googlenet", 1, 101), None);
    assert_eq!(p.latency_ms("nope", 1, 100), None);
}

#[test]
fn shares_are_derived_from_sm_utilisation() {
    let p = Profiles::load_gpulet(&data()).unwrap();
    let full = p.estimate("resnet50", 8, 100).unwrap();
    // U = 46.5%: a 50% share costs nothing, 20% stretches by U / 0.2.
    assert!(close(
        p.latency_ms("resnet50", 8, 50).unwrap(),
        full.latency_ms
    ));
    let small = p.estimate("resnet50", 8, 20).unwrap();
    let stretch = full.util.sm / 0.2;
    assert!(close(small.latency_ms, full.latency_ms * stretch));
    assert!(close(small.util.dram, full.util.dram / stretch));
}

#[test]
fn csv_round_trip_and_share_interpolation() {
    let text = format!(
        "{CSV_HEADER}\nm,1,50,20,40,10,20,100\nm,1,100,10,60,20,30,100\nm,4,100,16,80,30,40,100\nm,4,50,30,45,15,25,100\n"
    );
    let p = Profiles::from_csv(&text).unwrap();
    assert_eq!(p.point_count("m"), 4);
    assert!(close(p.latency_ms("m", 1, 75).unwrap(), 15.0));
    // Below the smallest measured share (50%, U = 40%): stretch by 0.4 / 0.25.
    assert!(close(p.latency_ms("m", 1, 25).unwrap(), 20.0 * 1.6));
    let back = Profiles::from_csv(&p.to_csv()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn bad_csv_is_refused_with_the_line() {
    let missing = Profiles::from_csv("model,batch\nm,1\n").unwrap_err();
    assert!(missing.to_string().contains("no column"), "{missing}");
    let bad = Profiles::from_csv(&format!("{CSV_HEADER}\nm,1,100,abc,1,1,1,1\n")).unwrap_err();
    assert!(bad.to_string().contains("line 2"), "{bad}");
    let share = Profiles::from_csv(&format!("{CSV_HEADER}\nm,1,0,1,1,1,1,1\n")).unwrap_err();
    assert!(share.to_string().contains("share"), "{share}");
    let util = Profiles::from_csv(&format!("{CSV_HEADER}\nm,1,100,1,150,1,1,1\n")).unwrap_err();
    assert!(util.to_string().contains("utilisation"), "{util}");
    assert!(Profiles::load_gpulet(Path::new("/nonexistent")).is_err());
}

proptest! {
    #[test]
    fn interpolation_is_monotone(
        rows in proptest::collection::vec((1u32..40, 1u32..=100, 0.1f64..100.0, 0.0f64..100.0), 1..20),
        b in 1u32..80,
        s in 1u32..100,
    ) {
        let mut text = String::from(CSV_HEADER);
        for (batch, share, lat, u) in &rows {
            text.push_str(&format!("\nm,{batch},{share},{lat},{u},10,10,5"));
        }
        let p = Profiles::from_csv(&text).unwrap();
        let a = p.latency_ms("m", b, s).unwrap();
        let bigger = p.latency_ms("m", b + 1, s).unwrap();
        prop_assert!(bigger >= a - 1e-9, "batch {} → {} ms, {} → {} ms", b, a, b + 1, bigger);
        // With whole-GPU points only, a larger share is never slower.
        let mut whole = String::from(CSV_HEADER);
        for (batch, _, lat, u) in &rows {
            whole.push_str(&format!("\nm,{batch},100,{lat},{u},10,10,5"));
        }
        let w = Profiles::from_csv(&whole).unwrap();
        prop_assert!(w.latency_ms("m", b, s + 1).unwrap() <= w.latency_ms("m", b, s).unwrap() + 1e-9);
    }
}

#[test]
fn measured_floor_only_for_profiles_measured_at_several_shares() {
    let csv = "model,batch,share,latency_ms,sm_util,l2_util,dram_util,mem_mb\n\
               a,1,10,90,10,0,0,1\na,1,50,20,50,0,0,1\nb,1,100,5,30,0,0,1\n";
    let p = Profiles::from_csv(csv).unwrap();
    assert_eq!(p.measured_floor("a"), Some(10));
    assert_eq!(
        p.measured_floor("b"),
        None,
        "one share: smaller ones are derived"
    );
    assert_eq!(p.measured_floor("zz"), None);
}

#[test]
fn a_bigger_batch_is_never_faster_below_the_measured_shares() {
    // Found by `interpolation_is_monotone`: SM utilisation falling with the batch made batch 2
    // faster than batch 1 once stretched to a share below the measured one.
    let csv = format!(
        "{CSV_HEADER}\nm,1,7,26.551265574596677,66.80220413166022,10,10,5\nm,20,7,0.1,0.0,10,10,5"
    );
    let p = Profiles::from_csv(&csv).unwrap();
    let one = p.latency_ms("m", 1, 1).unwrap();
    let two = p.latency_ms("m", 2, 1).unwrap();
    assert!(two >= one, "batch 1 → {one} ms, 2 → {two} ms");
}
