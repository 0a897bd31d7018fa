//! 1,000 workers' leases against one etcd (simulated workers as lease holders in this
//! process): joins and losses are seen by a router's watch within the TTL + 1 s (the test
//! allows 0.5 s more for a loaded machine).

mod common;

use common::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_leases_joins_and_losses_seen_within_ttl_plus_1s() {
    let dir = common::tempdir();
    let etcd = Etcd::start(dir.path());
    let ttl = 4;
    let r = sluice_cluster::scale::run(std::slice::from_ref(&etcd.url), 1000, ttl)
        .await
        .expect("measurement");
    eprintln!("{}", serde_json::to_string(&r).unwrap_or_default());
    let limit_ms = (ttl as f64 + 1.0) * 1e3;
    assert_eq!(r.losses_missed, 0, "{r:?}");
    assert!(r.join_seen_ms[2] <= limit_ms, "{r:?}");
    // A loss is due at TTL after the last renewal; the target is to see it within 1 s after
    // that (0.5-0.7 s measured: etcd checks expiry every 500 ms). The bound here leaves 0.5 s
    // for a loaded CI machine; `examples/lease_scale.rs` reports the figure itself.
    assert!(r.loss_seen_ms[2] <= 1500.0, "{r:?}");
}
