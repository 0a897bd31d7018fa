//! Failures under asynchronous load, with real processes (short variants of
//! `scripts/cluster-chaos.sh`): SIGKILL of a worker while invocations run on it, and of a
//! router while it dispatches. Nothing accepted is lost: every accepted invocation finishes
//! and succeeds (some run twice: at least once), and routing drops the dead worker within
//! its lease TTL.

mod common;

use common::http::{call_with, json};
use common::{call, function, wait_for, Cluster, RouterProc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROUTER_CFG: &str = "[async]\nack_wait_s = 2.0\nmax_attempts = 4\n";

fn submit(router: SocketAddr, id: &str, seconds: f64) {
    let body = format!(r#"{{"do": "sleep", "seconds": {seconds}}}"#);
    let a = call_with(
        router,
        "POST",
        "/v1/functions/sleepy/invoke-async",
        Some(&body),
        &[("Idempotency-Key", id)],
    );
    assert_eq!(a.0, 202, "accept {id}: {a:?}");
}

/// Waits until every id is done; returns the records.
fn all_done(router: SocketAddr, ids: &[String], limit: Duration) -> Vec<serde_json::Value> {
    let mut recs = Vec::new();
    wait_for(limit, "every accepted invocation finishes", || {
        recs = ids
            .iter()
            .map(|id| json(&call(router, "GET", &format!("/v1/invocations/{id}"), None)))
            .collect();
        recs.iter().all(|r| r["done"] == true)
    });
    recs
}

#[test]
fn worker_sigkill_loses_nothing_accepted() {
    let mut c = Cluster::start(3, 1, 3, ROUTER_CFG);
    let r = c.routers[0].addr;
    c.register(0, &function("sleepy"));
    let mut ids = Vec::new();
    for i in 0..24 {
        let id = format!("wk-{i}");
        submit(r, &id, 0.4);
        ids.push(id);
    }
    // Kill a worker that is running something.
    let mut victim = None;
    wait_for(Duration::from_secs(20), "a worker runs invocations", || {
        victim = c.workers.iter().position(|w| {
            json(&call(w.addr, "GET", "/v1/load", None))["running"]
                .as_u64()
                .unwrap_or(0)
                > 0
        });
        victim.is_some()
    });
    let v = victim.unwrap_or(0);
    let killed = Instant::now();
    c.workers[v].proc.kill9();
    for i in 24..40 {
        let id = format!("wk-{i}");
        submit(r, &id, 0.2);
        ids.push(id);
    }
    wait_for(
        Duration::from_secs(8),
        "routing drops the dead worker",
        || c.routers[0].workers() == 2,
    );
    let healed = killed.elapsed();
    // Target: TTL + 1 s (etcd expires leases within about 0.7 s of their due time); the
    // bound leaves 1 s more for a loaded CI machine.
    assert!(
        healed <= Duration::from_secs(5),
        "healed after {healed:?} (TTL 3 s)"
    );
    let recs = all_done(r, &ids, Duration::from_secs(90));
    for rec in &recs {
        assert_eq!(rec["status"], "succeeded", "{rec}");
    }
}

#[test]
fn router_sigkill_mid_dispatch_the_other_finishes() {
    let mut c = Cluster::start(2, 1, 3, ROUTER_CFG);
    let a = c.routers[0].addr;
    c.register(0, &function("sleepy"));
    let ids: Vec<String> = (0..6).map(|i| format!("rt-{i}")).collect();
    for id in &ids {
        submit(a, id, 2.5);
    }
    wait_for(Duration::from_secs(20), "router A dispatches", || {
        ids.iter().any(|id| {
            json(&call(a, "GET", &format!("/v1/invocations/{id}"), None))["status"] == "running"
        })
    });
    let b = RouterProc::start(
        c.dir.path(),
        "rb",
        &c.etcd.url,
        Some(&c.nats.url),
        ROUTER_CFG,
    );
    c.routers[0].proc.kill9();
    let recs = all_done(b.addr, &ids, Duration::from_secs(90));
    for rec in &recs {
        assert_eq!(rec["status"], "succeeded", "{rec}");
    }
    assert!(
        recs.iter()
            .any(|r| r["attempts"].as_u64().unwrap_or(0) >= 2),
        "some invocation was redelivered after the router died: {recs:?}"
    );
}
