//! Pipelines across a cluster: a pipeline registered through a router is placed by the elected
//! controller as whole replicas on workers with free GPUs (min_replicas of them), each worker
//! deploys its replica, invocations through the router reach one; lowering max_replicas removes
//! a replica, deleting the pipeline removes them all. When the leading router dies, another
//! takes over the election within the controller's lease TTL and places new replicas.

mod common;

use common::http::json;
use common::{call, repo, wait_for, Cluster};
use serde_json::json;
use std::time::Duration;

/// A directory of the test's own for the stages to run in (not `/tmp` itself, nor one holding
/// a worker's data: the sandbox launcher refuses both).
fn stages_dir(c: &Cluster) -> std::path::PathBuf {
    let d = c.dir.path().join("stages");
    std::fs::create_dir_all(&d).expect("stages dir");
    d
}

/// The deploy request; stages run in `base`.
fn request(base: &std::path::Path) -> String {
    let script = repo().join("crates/sluice-cli/tests/fixtures/stages/stage.py");
    json!({
        "spec": {"name": "shout", "slo_ms": 1000, "stages": [{
            "name": "up",
            "command": ["python3", script.display().to_string(), "upper"],
            "env": {"SLUICE_SDK": repo().join("sdk/python").display().to_string()},
            "after": [], "max_batch": 4, "max_wait_ms": 2}]},
        "base_dir": base.display().to_string(),
    })
    .to_string()
}

fn deployed_on(c: &Cluster) -> usize {
    c.workers
        .iter()
        .filter(|w| {
            json(&call(w.addr, "GET", "/v1/load", None))["pipelines"]
                .as_array()
                .is_some_and(|p| p.iter().any(|n| n == "shout"))
        })
        .count()
}

#[test]
fn controller_places_replicas_and_workers_reconcile() {
    let c = Cluster::start(2, 1, 3, "[controller]\ninterval_ms = 300\n");
    let r = c.routers[0].addr;
    let created = call(
        r,
        "POST",
        "/v1/pipelines?min_replicas=2&max_replicas=2",
        Some(&request(&stages_dir(&c))),
    );
    assert_eq!(created.0, 201, "{created:?}");
    let again = call(r, "POST", "/v1/pipelines", Some(&request(&stages_dir(&c))));
    assert_eq!(again.0, 409, "{again:?}");
    wait_for(
        Duration::from_secs(40),
        "both workers deploy a replica",
        || deployed_on(&c) == 2,
    );
    wait_for(
        Duration::from_secs(10),
        "the router routes to a replica",
        || {
            let a = call(r, "POST", "/v1/pipelines/shout/invoke", Some("hello"));
            a.0 == 200 && a.1.contains("HELLO")
        },
    );
    let view = json(&call(r, "GET", "/v1/pipelines/shout", None));
    assert_eq!(view["workers"].as_array().map_or(0, Vec::len), 2, "{view}");
    assert!(c.routers[0].status()["controller_leader"] == true);

    let fewer = call(
        r,
        "PUT",
        "/v1/pipelines/shout?min_replicas=1&max_replicas=1",
        Some(&request(&stages_dir(&c))),
    );
    assert_eq!(fewer.0, 200, "{fewer:?}");
    wait_for(Duration::from_secs(30), "one replica is removed", || {
        deployed_on(&c) == 1
    });
    assert_eq!(call(r, "DELETE", "/v1/pipelines/shout", None).0, 204);
    wait_for(Duration::from_secs(30), "every replica is removed", || {
        deployed_on(&c) == 0
    });
}

#[test]
fn another_router_takes_over_the_controller_when_the_leader_dies() {
    let cfg = "[controller]\ninterval_ms = 300\nlease_ttl_s = 3\n";
    let mut c = Cluster::start(2, 2, 3, cfg);
    let leader = |c: &Cluster| {
        c.routers
            .iter()
            .position(|r| r.status()["controller_leader"] == true)
    };
    let mut first = None;
    wait_for(Duration::from_secs(15), "a controller is elected", || {
        first = leader(&c);
        first.is_some()
    });
    let dead = first.unwrap_or(0);
    c.routers[dead].proc.kill9();
    let other = 1 - dead;
    wait_for(
        Duration::from_secs(10),
        "the other router leads within the lease TTL",
        || c.routers[other].status()["controller_leader"] == true,
    );
    let r = c.routers[other].addr;
    let created = call(
        r,
        "POST",
        "/v1/pipelines?min_replicas=1",
        Some(&request(&stages_dir(&c))),
    );
    assert_eq!(created.0, 201, "{created:?}");
    wait_for(
        Duration::from_secs(40),
        "the new leader places the replica",
        || deployed_on(&c) == 1,
    );
}
