//! Networked sandboxes under load and over time: many started at once all come up (bubblewrap
//! sets its loopback up while `slirp4netns` is started against the same namespace), and the
//! network outlives the thread that connected it (the launcher connects it from a blocking-pool
//! thread, which ends when idle).

mod support;

use serde_json::json;
use sluice_sandbox::Isolation;
use std::time::Duration;
use support::*;

/// How many networked sandboxes start at once: before the launcher waited for bubblewrap's
/// loopback, about one bubblewrap start in ten failed with four at once.
const AT_ONCE: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_networked_sandboxes_started_at_once_all_come_up() {
    if !network_usable() {
        return;
    }
    for iso in ISOLATED {
        let Some((l, _t)) = launcher(iso) else {
            continue;
        };
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..AT_ONCE {
            let l = l.clone();
            set.spawn(async move {
                let mut s = spec(&[]);
                s.network = true;
                let mut sb = l.spawn(s).await.map_err(|e| format!("spawn: {e}"))?;
                let ready = wait_ready(&mut sb, READY).await;
                let tail = sb.stderr_tail();
                sb.kill().await;
                ready.map_err(|e| format!("not ready: {e}; stderr: {tail}"))
            });
        }
        let mut failed = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Err(e) = r.expect("task") {
                failed.push(e);
            }
        }
        assert!(
            failed.is_empty(),
            "{iso}: {} of {AT_ONCE} failed: {failed:#?}",
            failed.len()
        );
    }
}

/// The host's first non-loopback IPv4 address, if it has one.
fn host_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn the_network_outlives_the_thread_that_connected_it() {
    if !network_usable() {
        return;
    }
    let Some(outside) = host_address().and_then(|ip| std::net::TcpListener::bind((ip, 0)).ok())
    else {
        eprintln!("SKIPPING: this host has no non-loopback IPv4 address to connect out to");
        return;
    };
    let target = outside.local_addr().expect("addr");
    // Idle blocking-pool threads end after 20 ms here, not the default 10 s.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_millis(20))
        .build()
        .expect("runtime");
    rt.block_on(async {
        for iso in [Isolation::Bubblewrap, Isolation::Unshare] {
            let Some((l, _t)) = launcher(iso) else {
                continue;
            };
            let mut s = spec(&[]);
            s.network = true;
            let mut sb = start(&l, s).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c = call(
                &sb,
                json!({"op": "connect", "host": target.ip().to_string(), "port": target.port()}),
            )
            .await
            .expect("connect");
            assert_eq!(c["escaped"], true, "{iso}: outbound after 500 ms: {c}");
            sb.kill().await;
        }
    });
}
