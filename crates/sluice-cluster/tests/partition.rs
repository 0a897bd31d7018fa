//! A partitioned worker fences itself. The worker runs in its own network namespace, joined to
//! the host by a veth pair (link-local addresses inside namespaces this test creates), with
//! etcd and the router on the host. iptables DROP inside the namespace cuts it off: routers
//! drop it within the lease TTL + 1 s and it drains itself; when the rules go, it joins again
//! and takes work. Needs root (skipped loudly otherwise).

mod common;

use common::http::call;
use common::procs::{bound_addr, Etcd, Proc, RouterProc};
use common::{function, wait_for};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const HOST_IP: &str = "169.254.213.1";
const NS_IP: &str = "169.254.213.2";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A network namespace with a veth pair to the host; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    ns_if: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        let id = std::process::id() % 100_000;
        let n = Netns {
            name: format!("sluice-part-{id}"),
            host_if: format!("slh{id}"),
            ns_if: format!("sln{id}"),
        };
        let ok = sh(&["ip", "netns", "add", &n.name])
            && sh(&[
                "ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &n.ns_if,
            ])
            && sh(&["ip", "link", "set", &n.ns_if, "netns", &n.name])
            && sh(&[
                "ip",
                "addr",
                "add",
                &format!("{HOST_IP}/30"),
                "dev",
                &n.host_if,
            ])
            && sh(&["ip", "link", "set", &n.host_if, "up"])
            && n.exec(&["ip", "addr", "add", &format!("{NS_IP}/30"), "dev", &n.ns_if])
            && n.exec(&["ip", "link", "set", &n.ns_if, "up"])
            && n.exec(&["ip", "link", "set", "lo", "up"]);
        // `ip netns exec` can fail for a moment while another process sets up /run/netns.
        let usable = ok
            && (0..5).any(|_| {
                n.exec(&["true"]) || {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    false
                }
            });
        usable.then_some(n)
    }

    fn exec(&self, args: &[&str]) -> bool {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    fn partition(&self, on: bool) -> bool {
        let op = if on { "-I" } else { "-D" };
        self.exec(&[
            "iptables",
            "-w",
            "5",
            op,
            "INPUT",
            "-i",
            &self.ns_if,
            "-j",
            "DROP",
        ]) && self.exec(&[
            "iptables",
            "-w",
            "5",
            op,
            "OUTPUT",
            "-o",
            &self.ns_if,
            "-j",
            "DROP",
        ])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.name]);
        sh(&["ip", "link", "del", &self.host_if]);
    }
}

#[test]
fn partitioned_worker_drains_and_rejoins() {
    if !common::is_root() {
        eprintln!(
            "SKIPPED partitioned_worker_drains_and_rejoins: needs root for network namespaces"
        );
        return;
    }
    let Some(ns) = Netns::create() else {
        eprintln!(
            "SKIPPED partitioned_worker_drains_and_rejoins: cannot create a network namespace here"
        );
        return;
    };
    let dir = common::tempdir();
    let etcd = Etcd::start_also_on(dir.path(), Some(HOST_IP));
    let ttl = 3u64;
    let home = dir.path().join("w");
    std::fs::create_dir_all(&home).expect("worker dir");
    let cfg = format!(
        "listen = \"{NS_IP}:0\"\nauth_token = \"cluster-secret\"\ndata_dir = \"{}\"\n[gpu]\nforce_simulated = true\n[cluster]\netcd = [\"http://{HOST_IP}:{}\"]\nlease_ttl_s = {ttl}\n",
        home.join("data").display(),
        etcd.ports[0]
    );
    std::fs::write(home.join("worker.toml"), cfg).expect("config");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(common::sluice_bin())
        .args(["worker", "--config"])
        .arg(home.join("worker.toml"))
        .current_dir(common::repo());
    let mut worker = Proc::spawn(cmd, home.join("worker.log"));
    let mut addr: Option<SocketAddr> = None;
    wait_for(Duration::from_secs(30), "worker start line", || {
        assert!(worker.alive(), "worker exited: {}", worker.log_text());
        addr = bound_addr(&worker.log_text());
        addr.is_some()
    });
    let router = RouterProc::start(
        dir.path(),
        "r",
        &etcd.url,
        None,
        "cluster_token = \"cluster-secret\"\n",
    );
    wait_for(
        Duration::from_secs(10),
        "the router sees the worker",
        || router.workers() == 1,
    );
    let spec = function("echo").to_string();
    assert_eq!(
        call(router.addr, "POST", "/v1/functions", Some(&spec)).0,
        201
    );
    wait_for(
        Duration::from_secs(15),
        "an invocation crosses the veth",
        || call(router.addr, "POST", "/v1/functions/echo/invoke", Some("{}")).0 == 200,
    );

    assert!(ns.partition(true), "iptables DROP in the namespace");
    let cut = Instant::now();
    wait_for(
        Duration::from_secs(ttl + 4),
        "the router drops the partitioned worker",
        || router.workers() == 0,
    );
    let seen = cut.elapsed();
    wait_for(
        Duration::from_secs(ttl + 2),
        "the worker drains itself",
        || {
            worker
                .log_text()
                .contains("draining until it is (etcd unreachable)")
                || worker
                    .log_text()
                    .contains("cluster lease not renewed (etcd unreachable)")
        },
    );
    // Target TTL + 1 s; 1 s more allowed for a loaded CI machine.
    assert!(
        seen <= Duration::from_secs(ttl + 2),
        "dropped after {seen:?}"
    );
    let refused = call(router.addr, "POST", "/v1/functions/echo/invoke", Some("{}"));
    assert_eq!(refused.0, 503, "{refused:?}");

    assert!(ns.partition(false), "iptables rules removed");
    let deadline = Instant::now() + Duration::from_secs(15);
    while router.workers() != 1 {
        assert!(
            Instant::now() < deadline,
            "the worker did not join again:\n{}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(Duration::from_secs(15), "and takes work", || {
        call(router.addr, "POST", "/v1/functions/echo/invoke", Some("{}")).0 == 200
    });
    worker.kill9();
}
