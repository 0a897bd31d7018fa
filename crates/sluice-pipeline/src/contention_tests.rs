use super::*;
use std::path::PathBuf;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/gpulet-2080ti")
}

fn u(l2: f64, dram: f64) -> Util {
    Util { sm: 0.5, l2, dram }
}

#[test]
fn reads_the_gpulet_coefficients() {
    let c = Contention::load_gpulet(&data())
        .unwrap()
        .coefficients()
        .unwrap();
    assert!((c.l2_self - 0.11290838746224496).abs() < 1e-12);
    assert!((c.l2_other - 0.7159598718755424).abs() < 1e-12);
    assert!((c.dram_self - 0.35486591956022895).abs() < 1e-12);
    assert!((c.dram_other - 0.0882038259888065).abs() < 1e-12);
    assert!((c.constant - 0.8953693917277343).abs() < 1e-12);
}

#[test]
fn slowdown_rules() {
    let c = Contention::load_gpulet(&data()).unwrap();
    let vgg = u(0.31, 0.56);
    assert_eq!(c.slowdown(vgg, &[]), 1.0);
    let pair = c.slowdown(vgg, &[vgg]);
    let by_hand = 0.11290838746224496 * 0.31
        + 0.7159598718755424 * 0.31
        + 0.35486591956022895 * 0.56
        + 0.0882038259888065 * 0.56
        + 0.8953693917277343;
    assert!((pair - by_hand).abs() < 1e-12);
    // Near-idle pairs are clamped at 1, more co-runners never help, pressure saturates.
    assert_eq!(c.slowdown(u(0.01, 0.01), &[u(0.01, 0.01)]), 1.0);
    assert!(c.slowdown(vgg, &[vgg, vgg]) >= pair);
    let many = vec![vgg; 10];
    assert!((c.slowdown(vgg, &many) - c.slowdown(vgg, &[u(1.0, 1.0)])).abs() < 1e-12);
    assert_eq!(Contention::none().slowdown(vgg, &[vgg]), 1.0);
}

#[test]
fn pair_table_and_error_hook() {
    let p = Profiles::load_gpulet(&data()).unwrap();
    let c = Contention::load_gpulet(&data()).unwrap();
    let table = c.pair_table(&p, 8);
    assert_eq!(table.len(), 81);
    assert!(table.iter().all(|(_, _, s)| *s >= 1.0 && *s < 2.0));
    let (_, _, predicted) = table
        .iter()
        .find(|(a, b, _)| a == "vgg16" && b == "resnet50")
        .unwrap()
        .clone();
    let csv = format!(
        "{PAIR_CSV_HEADER}\nvgg16,8,50,resnet50,8,50,{predicted}\nvgg16,8,50,resnet50,8,50,{}\nfoo,1,50,bar,1,50,1.2\n",
        predicted * 1.1
    );
    let measured = PairMeasurement::from_csv(&csv).unwrap();
    let r = c.prediction_error(&p, &measured);
    assert_eq!((r.count, r.skipped), (2, 1));
    let second = (1.0 - 1.0 / 1.1) * 100.0;
    assert!((r.max_abs_pct - second).abs() < 1e-9);
    assert!((r.mean_abs_pct - second / 2.0).abs() < 1e-9);
    assert!(PairMeasurement::from_csv(&format!("{PAIR_CSV_HEADER}\na,0,50,b,1,50,1.0\n")).is_err());
}

#[test]
fn bad_coefficients_are_refused() {
    assert!(Contention::parse("l2_util_m1\n0.1\n", "x").is_err());
    let two = "l2_util_m1,l2_util_m2,dram_util_m1,dram_util_m2,constant\n1,1,1,1,1\n1,1,1,1,1\n";
    assert!(Contention::parse(two, "x")
        .unwrap_err()
        .to_string()
        .contains("one row"));
}
