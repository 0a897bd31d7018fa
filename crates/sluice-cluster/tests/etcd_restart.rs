//! etcd going away and coming back, with real processes: while it is down, routers keep
//! serving invocations from their caches (registrations get 503); a worker that cannot renew
//! its lease within the TTL drains itself (fencing); once etcd is back, workers renew or join
//! again and take work, and registrations work again.

mod common;

use common::http::json;
use common::{call, function, wait_for, Cluster};
use std::time::Duration;

#[test]
fn routers_serve_from_cache_and_workers_fence_then_rejoin() {
    let ttl = 4;
    let mut c = Cluster::start(2, 2, ttl, "");
    c.register(0, &function("echo"));
    let (a, b) = (c.routers[0].addr, c.routers[1].addr);
    wait_for(Duration::from_secs(10), "echo runs", || {
        call(b, "POST", "/v1/functions/echo/invoke", Some("{}")).0 == 200
    });

    // A short outage: within the TTL nothing stops.
    c.etcd.kill9();
    for _ in 0..10 {
        for r in [a, b] {
            let x = call(r, "POST", "/v1/functions/echo/invoke", Some(r#"{"k": 1}"#));
            assert_eq!(x.0, 200, "served from the cache while etcd is down: {x:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reg = call(
        a,
        "POST",
        "/v1/functions",
        Some(&function("other").to_string()),
    );
    assert_eq!(reg.0, 503, "registration needs etcd: {reg:?}");
    c.etcd.restart();
    wait_for(Duration::from_secs(10), "registration works again", || {
        call(
            a,
            "POST",
            "/v1/functions",
            Some(&function("other").to_string()),
        )
        .0 == 201
    });

    // A long outage: workers fence themselves (drain) after the TTL.
    c.etcd.kill9();
    wait_for(
        Duration::from_secs(ttl + 3),
        "workers drain without their lease",
        || {
            c.workers
                .iter()
                .all(|w| json(&call(w.addr, "GET", "/v1/load", None))["draining"] == true)
        },
    );
    let x = call(a, "POST", "/v1/functions/echo/invoke", Some("{}"));
    assert_eq!(x.0, 503, "no worker takes work while fenced: {x:?}");
    c.etcd.restart();
    wait_for(
        Duration::from_secs(ttl + 6),
        "workers rejoin and take work",
        || {
            c.workers
                .iter()
                .all(|w| json(&call(w.addr, "GET", "/v1/load", None))["draining"] == false)
        },
    );
    wait_for(Duration::from_secs(10), "routers see both workers", || {
        c.routers.iter().all(|r| r.workers() == 2)
    });
    wait_for(Duration::from_secs(10), "invocations run again", || {
        call(b, "POST", "/v1/functions/echo/invoke", Some("{}")).0 == 200
    });
}
