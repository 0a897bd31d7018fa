//! Tests of the balancer's use of the placement policy: routers agree on a function's home,
//! skip excluded and draining workers, prefer warm ones, and answer none without members.
use super::*;

fn member(id: &str, tokens: u32) -> (Vec<u8>, Vec<u8>, i64) {
    let m = Member {
        id: id.into(),
        addr: format!("{id}:1"),
        gpus: Vec::new(),
        devices: "simulated".into(),
        tokens_per_gpu: 2,
        cpu_slots: tokens,
        isolation: "plain".into(),
        labels: Default::default(),
        joined_ms: 0,
    };
    (
        format!("{}{id}", crate::keys::WORKERS).into_bytes(),
        serde_json::to_vec(&m).unwrap_or_default(),
        1,
    )
}

/// Three equal workers; every function counts as popular (hints apply).
fn balancer(seed: u64) -> Arc<Balancer> {
    let members: Arc<Cache<Member>> = Cache::new(crate::keys::WORKERS);
    members.reset(&[member("w1", 4), member("w2", 4), member("w3", 4)], 1);
    let cfg = RoutingConfig {
        popular_rps: 0.0,
        ..RoutingConfig::default()
    };
    Balancer::new(members, &cfg, seed).expect("balancer")
}

#[test]
fn every_router_sends_a_function_home_and_skips_excluded_and_draining() {
    let (a, b) = (balancer(1), balancer(2));
    let home = a.pick("resnet", None, &[]).expect("a worker").id;
    assert_eq!(b.pick("resnet", None, &[]).expect("a worker").id, home);
    let other = a
        .pick("resnet", None, std::slice::from_ref(&home))
        .expect("a worker")
        .id;
    assert_ne!(other, home);
    // The home, then a spill past the excluded home.
    assert_eq!(a.placements(), [1, 0, 1, 0]);
    a.report(
        &home,
        LoadReport {
            draining: true,
            ..LoadReport::default()
        },
    );
    for _ in 0..20 {
        assert_ne!(a.pick("resnet", None, &[]).expect("a worker").id, home);
    }
    let only = vec![home.clone()];
    assert!(
        a.pick("resnet", Some(&only), &[]).is_none(),
        "only a draining worker: none"
    );
}

#[test]
fn a_warm_worker_wins_and_no_member_means_none() {
    let b = balancer(3);
    let home = b.pick("f", None, &[]).expect("a worker").id;
    b.done(&home, Some(Load::default()), None);
    let warm = ["w1", "w2", "w3"]
        .into_iter()
        .find(|w| *w != home)
        .unwrap_or("w1");
    b.report(
        warm,
        LoadReport {
            warm: vec!["f".into()],
            ..LoadReport::default()
        },
    );
    assert_eq!(b.pick("f", None, &[]).expect("a worker").id, warm);
    // One pick found the home, one the warm worker.
    assert_eq!(b.placements(), [1, 1, 0, 0]);
    let empty: Arc<Cache<Member>> = Cache::new(crate::keys::WORKERS);
    empty.reset(&[], 1);
    let none = Balancer::new(empty, &RoutingConfig::default(), 0).expect("balancer");
    assert!(none.pick("f", None, &[]).is_none());
}
